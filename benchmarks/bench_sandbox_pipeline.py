"""What the sandbox's jail costs the main job: the per-domain stages with and without it, side by side.

Run: .venv/bin/python benchmarks/bench_sandbox_pipeline.py [--rounds 2] [--append]

The corpus job runs once (the embedded default: the starter corpus, all its domains); then every domain's
`domain_job` (environment, tasks, trajectories, filtered trajectories: the only stages that run tool code)
runs in this process, alternately with the jailed worker (bubblewrap + seccomp, the default) and with the
same worker unjailed (rlimits only), ``--rounds`` times each, interleaved so load changes hit both alike.
The rest of the main job (corpus, training, evaluation) runs no tool code.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--append", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()

    import dagster as dg

    from agentscaler_dagster.assets import domain_partitions
    from agentscaler_dagster.definitions import build_defs
    from agentscaler_dagster.pipeline_cli import run_config_for
    from agentscaler_dagster.sandbox import jail

    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        defs = build_defs(str(Path(tmp) / "artifacts"))
        started = time.monotonic()
        corpus = defs.resolve_job_def("corpus_job").execute_in_process(
            instance=instance, run_config={**run_config_for(defs, "default", "corpus_job"), **quiet})
        assert corpus.success
        corpus_seconds = time.monotonic() - started
        domains = instance.get_dynamic_partitions(domain_partitions.name)
        job = defs.resolve_job_def("domain_job")
        real_probe = jail.probe
        unjailed = lambda python, script: jail.JailSupport(False, "benchmark baseline", None)  # noqa: E731
        os.environ["AGENTSCALER_SANDBOX_ISOLATION"] = "strict"
        times: dict[str, list[float]] = {"jailed": [], "unjailed": []}
        for _ in range(args.rounds):
            for mode in ("jailed", "unjailed"):
                jail.probe = real_probe if mode == "jailed" else unjailed
                os.environ["AGENTSCALER_SANDBOX_ISOLATION"] = "strict" if mode == "jailed" else "weak"
                t0 = time.monotonic()
                for domain in domains:
                    result = job.execute_in_process(instance=instance, partition_key=domain, raise_on_error=False,
                                                    run_config={**run_config_for(defs, "default", "domain_job"),
                                                                **quiet})
                    assert result.success, f"{mode} {domain} failed"
                times[mode].append(time.monotonic() - t0)
        jail.probe = real_probe

    best = {mode: min(values) for mode, values in times.items()}
    lines = [
        f"{len(domains)} domains of the embedded default, domain_job in process, best of {args.rounds} interleaved "
        f"rounds; {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f} at the end; corpus_job (once) {corpus_seconds:.1f} s",
        "",
        "| sandbox worker | all domains (s), best | rounds (s) | ÷ unjailed |",
        "|---|---|---|---|",
    ]
    for mode in ("jailed", "unjailed"):
        rounds = ", ".join(f"{v:.1f}" for v in times[mode])
        lines.append(f"| {mode} | {best[mode]:.1f} | {rounds} | {best[mode] / best['unjailed']:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.append:
        results = Path(__file__).with_name("RESULTS.md")
        block = (f"\n### The jail's cost to the main job's domain stages\n\nCommand: `.venv/bin/python "
                 f"benchmarks/bench_sandbox_pipeline.py --rounds {args.rounds} --append`\n\n{text}\n")
        results.write_text(results.read_text(encoding="utf-8").rstrip("\n") + "\n" + block, encoding="utf-8")


if __name__ == "__main__":
    main()
