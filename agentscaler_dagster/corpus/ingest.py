"""Ingest: files and folders of API specs -> ``corpus.parquet`` + ``ingest_report.json``.

Stages: discover files (sorted) -> per file (cached by content hash, in a process pool when there are
many): decode, parse, detect the format, load operations, normalise -> over the union: dedup, unique
names, optional description rewrite -> write.

Accounting: every operation a loader saw ends as exactly one of ingested, duplicate, filtered or
quarantined (``operations_seen == ingested + duplicates + filtered + quarantined_operations``). A file
that cannot be read at all is quarantined as a file (its operations were never seen); both kinds of
entry are in ``quarantined``, an operation's entry names the operation.

Incremental: ``out_dir/.cache/<key>.json`` holds one file's normalised, pre-dedup result; the key is the
sha256 of the file's bytes together with its label, the forced format and ``CACHE_VERSION``. An
unchanged file is never parsed again; dedup and naming run over the union every time (they are cheap).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

from pydantic import BaseModel, Field

from agentscaler_dagster.corpus import loaders
from agentscaler_dagster.corpus.normalise import explicit_description, normalise
from agentscaler_dagster.corpus.quality import assign_unique_names, dedup
from agentscaler_dagster.corpus.readers import FORCE_CHOICES, FileProblem, detect_format, parse
from agentscaler_dagster.corpus.store import CORPUS_FILE, row_to_tool, write_rows

CACHE_VERSION = "corpus-1"  # bump whenever loaders or normalisation change what a file yields
REPORT_FILE = "ingest_report.json"
CACHE_DIR = ".cache"
SPEC_SUFFIXES = (".json", ".jsonl", ".ndjson", ".yaml", ".yml")
# below this many files to parse, starting worker processes costs more than it saves
_POOL_MIN_FILES = 16


class IngestReport(BaseModel):
    """What one ingest run read and what became of every operation."""

    inputs: int = Field(description="Files read (after discovery).")
    ingested: int = Field(description="Tools written to corpus.parquet.")
    duplicates: int = Field(description="Operations dropped as exact or near duplicates.")
    filtered: int = Field(description="Operations dropped by the quality filter.")
    quarantined: list[dict] = Field(default_factory=list, description="{path, reason[, operation]} per unreadable file or operation.")
    quarantined_files: int = 0
    quarantined_operations: int = 0
    operations_seen: int = Field(0, description="== ingested + duplicates + filtered + quarantined_operations")
    input_files: list[str] = Field(default_factory=list)
    skipped_files: list[str] = Field(default_factory=list, description="Files in input folders without a spec extension.")
    files_per_format: dict[str, int] = Field(default_factory=dict)
    ingested_per_format: dict[str, int] = Field(default_factory=dict)
    operations: dict[str, int] = Field(default_factory=dict, description="Ingested tools per read/write class.")
    filtered_reasons: list[dict] = Field(default_factory=list, description="{path, name, reason} per filtered operation.")
    filter_counts: dict[str, int] = Field(default_factory=dict)
    duplicate_list: list[dict] = Field(default_factory=list)
    renamed: int = Field(0, description="Tools whose name got a suffix to stay unique.")
    api_titles: int = 0
    categories: int = 0
    rewritten: int = 0
    rewrite_errors: list[dict] = Field(default_factory=list)
    reused_files: int = Field(0, description="Files taken from the cache unchanged.")
    parsed_files: int = 0
    workers: int = 1
    seconds: float = 0.0
    corpus_path: str = ""
    corpus_sha256: str = ""

    def counts_add_up(self) -> bool:
        return self.operations_seen == self.ingested + self.duplicates + self.filtered + self.quarantined_operations


class IngestError(Exception):
    """Ingestion could not run at all (missing input path, unwritable output)."""


# ---------------------------------------------------------------- discovery


def discover(paths: Sequence[str | Path], out_dir: Path | None = None) -> tuple[list[tuple[Path, str, str | None]], list[str]]:
    """(files, skipped): files as (path, label, folder) sorted by label; folders are read recursively.

    A label is the path relative to the ingested root, prefixed by the root folder's name.
    """
    out_res = out_dir.resolve() if out_dir is not None else None
    found: dict[Path, tuple[str, str | None]] = {}
    skipped: list[str] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise IngestError(f"input path does not exist: {raw}")
        if root.is_file():
            found.setdefault(root.resolve(), (root.name, None))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and (out_res is None or (here / d).resolve() != out_res)
            )
            in_out = out_res is not None and here.resolve() == out_res
            for fname in sorted(filenames):
                if fname.startswith(".") or (in_out and fname == REPORT_FILE):
                    continue
                full = here / fname
                rel = PurePosixPath(full.relative_to(root).as_posix())
                label = f"{root.resolve().name}/{rel}"
                if not fname.lower().endswith(SPEC_SUFFIXES):
                    skipped.append(label)
                    continue
                folder = rel.parent.name if str(rel.parent) not in ("", ".") else None
                found.setdefault(full.resolve(), (label, folder))
    files: list[tuple[Path, str, str | None]] = []
    labels: set[str] = set()
    for path, (label, folder) in sorted(found.items(), key=lambda kv: (kv[1][0], str(kv[0]))):
        if label in labels:  # two roots with the same name: fall back to the full path
            label = path.as_posix()
        labels.add(label)
        files.append((path, label, folder))
    files.sort(key=lambda f: f[1])
    return files, sorted(skipped)


# ---------------------------------------------------------------- one file


def _file_key(data: bytes, label: str, folder: str | None, force: str | None) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}\0{force}\0{label}\0{folder}\0".encode())
    h.update(data)
    return h.hexdigest()


@contextlib.contextmanager
def _no_gc():
    # parsing a big spec allocates millions of acyclic objects; the cyclic collector would rescan them
    # all many times over (measured: a third of the run). Reference counting still frees everything.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def process_bytes(data: bytes, label: str, folder: str | None = None, force_format: str | None = None) -> dict:
    """One file's bytes -> its pre-dedup result (tools, filtered, quarantined, operations seen)."""
    with _no_gc():
        return _process_bytes(data, label, folder, force_format)


def _process_bytes(data: bytes, label: str, folder: str | None, force_format: str | None) -> dict:
    name = PurePosixPath(label).name
    stem = PurePosixPath(name).stem or name
    out: dict[str, Any] = {"file": label, "format": None, "seen": 0, "tools": [], "filtered": [], "quarantined": [], "file_error": None}
    try:
        parsed = parse(data, name)
        doc = parsed.doc
        if force_format:
            detected = detect_format(doc)
            if force_format == "openapi":
                if detected not in ("openapi3", "swagger2"):
                    raise FileProblem("forced format openapi, but the document has no 'openapi: 3.x' or 'swagger: 2.0' field")
                fmt = detected
            else:
                fmt = force_format
        else:
            fmt = detect_format(doc)
            if fmt is None:
                raise FileProblem(
                    "no known format (expected OpenAPI 3.x, Swagger 2.0, OpenAI tools, MCP tools/list, ToolBench or BFCL)"
                )
        out["format"] = fmt
        result = loaders.load(fmt, doc, loaders.FileContext(label=label, stem=stem, folder=folder))
    except FileProblem as exc:
        out["file_error"] = str(exc)
        return out
    except RecursionError:
        out["file_error"] = "nested too deeply to walk"
        return out
    except Exception as exc:  # a loader that cannot make sense of the document at all
        out["file_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        return out
    for lineno, why in parsed.bad_lines:
        result.quarantine(f"line {lineno}", why)
    seen_ids: dict[tuple, int] = {}
    for op in result.ops:
        ident = (op["original_name"], op.get("http_method"), op.get("http_path"))
        occurrence = seen_ids.get(ident, 0)
        seen_ids[ident] = occurrence + 1
        record, reason = normalise(op, fmt, label, occurrence)
        if record is None:
            out["filtered"].append({"path": label, "name": op["original_name"], "reason": reason})
        else:
            out["tools"].append(record)
    for f in result.filtered:
        out["filtered"].append({"path": label, "name": f["operation"], "reason": f["reason"]})
    out["quarantined"] = [{"path": label, "operation": q["operation"], "reason": q["reason"]} for q in result.quarantined]
    out["seen"] = result.seen
    if result.seen == 0:
        out["file_error"] = f"no operations found in this {fmt} document"
    return out


def _process_path(task: tuple) -> dict:
    path, label, folder, force, cache_path = task
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return {"file": label, "format": None, "seen": 0, "tools": [], "filtered": [], "quarantined": [],
                "file_error": f"cannot read: {exc.strerror or exc}"}
    result = process_bytes(data, label, folder, force)
    if cache_path:
        _write_cache(Path(cache_path), result)
    return result


def _write_cache(path: Path, result: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time next run


def _read_cache(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            result = json.load(fh)
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and "tools" in result else None


# ---------------------------------------------------------------- the run


def _pool_context():
    # fork is the cheapest start, and safe in a single-threaded parent; a parent that holds threads
    # (a Dagster run does) gets forkserver, whose workers start clean
    if sys.platform.startswith("linux"):
        return mp.get_context("fork" if threading.active_count() == 1 else "forkserver")
    return mp.get_context("spawn")


def ingest(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    force_format: str | None = None,
    rewriter: Callable[[Any], str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    rewrite_descriptions: bool = False,
    workers: int | None = None,
    use_cache: bool = True,
) -> IngestReport:
    """Ingest spec files/folders into ``out_dir/corpus.parquet`` and ``out_dir/ingest_report.json``.

    ``force_format``: one of readers.FORCE_CHOICES, else detected per file. ``rewriter``: ToolSpec -> new
    description (an LLM hook); ``rewrite_descriptions=True`` without a rewriter uses
    :func:`explicit_description`. ``workers``: processes for parsing (default: up to 2 when there are many
    files to parse). Raises IngestError only when the run cannot happen at all.
    """
    with _no_gc():
        return _ingest(paths, out_dir, force_format, rewriter, progress, rewrite_descriptions, workers, use_cache)


def _ingest(paths, out_dir, force_format, rewriter, progress, rewrite_descriptions, workers, use_cache) -> IngestReport:
    started = time.perf_counter()
    if force_format is not None and force_format not in FORCE_CHOICES:
        raise IngestError(f"unknown format {force_format!r}; choose one of {', '.join(FORCE_CHOICES)}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise IngestError(f"output folder {out} is not writable: {exc.strerror or exc}") from None
    files, skipped = discover(paths, out)
    cache_dir = out / CACHE_DIR

    results: list[dict | None] = [None] * len(files)
    todo: list[tuple[int, tuple]] = []
    used_keys: set[str] = set()
    reused = 0
    done = 0
    for i, (path, label, folder) in enumerate(files):
        cache_path = None
        if use_cache:
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            key = _file_key(data, label, folder, force_format)
            used_keys.add(key)
            cache_path = cache_dir / f"{key}.json"
            hit = _read_cache(cache_path) if cache_path.exists() else None
            if hit is not None:
                results[i] = hit
                reused += 1
                done += 1
                if progress:
                    progress(done, len(files))
                continue
        todo.append((i, (str(path), label, folder, force_format, str(cache_path) if cache_path else None)))

    n_workers = workers if workers is not None else (min(2, os.cpu_count() or 1) if len(todo) >= _POOL_MIN_FILES else 1)
    n_workers = max(1, min(n_workers, len(todo) or 1))
    # largest files first, so that two workers finish together; results are placed by index
    todo.sort(key=lambda t: -_size(t[1][0]))
    if n_workers > 1:
        with _pool_context().Pool(n_workers) as pool:
            for (i, _), res in zip(todo, pool.imap(_process_path, [t for _, t in todo], chunksize=1)):
                results[i] = res
                done += 1
                if progress:
                    progress(done, len(files))
    else:
        for i, task in todo:
            results[i] = _process_path(task)
            done += 1
            if progress:
                progress(done, len(files))
    if use_cache and cache_dir.is_dir():
        for stale in cache_dir.glob("*.json"):
            if stale.stem not in used_keys:
                stale.unlink(missing_ok=True)

    report = _union(results, out, rewriter, rewrite_descriptions)
    report.inputs = len(files)
    report.input_files = [label for _, label, _ in files]
    report.skipped_files = skipped
    report.reused_files = reused
    report.parsed_files = len(todo)
    report.workers = n_workers
    report.seconds = round(time.perf_counter() - started, 3)
    (out / REPORT_FILE).write_text(json.dumps(report.model_dump(), sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    return report


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _union(results: list[dict | None], out: Path, rewriter, rewrite_descriptions: bool) -> IngestReport:
    records: list[dict] = []
    quarantined: list[dict] = []
    filtered: list[dict] = []
    files_per_format: dict[str, int] = {}
    seen = q_ops = q_files = 0
    for res in results:
        assert res is not None
        if res.get("file_error"):
            q_files += 1
            quarantined.append({"path": res["file"], "reason": res["file_error"]})
        if res.get("format"):
            files_per_format[res["format"]] = files_per_format.get(res["format"], 0) + 1
        seen += res["seen"]
        q_ops += len(res["quarantined"])
        quarantined.extend(res["quarantined"])
        filtered.extend(res["filtered"])
        records.extend(res["tools"])
    kept, dups = dedup(records)
    renamed = assign_unique_names(kept)

    rewritten = 0
    rewrite_errors: list[dict] = []
    if rewriter is not None or rewrite_descriptions:
        fn = rewriter or explicit_description
        for rec in kept:
            try:
                new = fn(row_to_tool(rec))
            except Exception as exc:  # an LLM hiccup keeps the original description, on the record
                rewrite_errors.append({"tool_id": rec["tool_id"], "name": rec["name"], "reason": f"{type(exc).__name__}: {str(exc)[:200]}"})
                continue
            if isinstance(new, str) and new.strip():
                rec["description"] = new.strip()
                rewritten += 1
            else:
                rewrite_errors.append({"tool_id": rec["tool_id"], "name": rec["name"], "reason": "rewriter returned no text"})

    path = write_rows(kept, out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    per_format: dict[str, int] = {}
    ops: dict[str, int] = {"read": 0, "write": 0}
    titles: set[str] = set()
    cats: set[str] = set()
    for rec in kept:
        per_format[rec["source_format"]] = per_format.get(rec["source_format"], 0) + 1
        ops[rec["operation"]] += 1
        if rec.get("api_title"):
            titles.add(rec["api_title"])
        cats.update(json.loads(rec["categories"]))
    counts: dict[str, int] = {}
    for f in filtered:
        key = f["reason"].split(":", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    return IngestReport(
        inputs=0,
        ingested=len(kept),
        duplicates=len(dups),
        filtered=len(filtered),
        quarantined=quarantined,
        quarantined_files=q_files,
        quarantined_operations=q_ops,
        operations_seen=seen,
        files_per_format=dict(sorted(files_per_format.items())),
        ingested_per_format=dict(sorted(per_format.items())),
        operations=ops,
        filtered_reasons=filtered,
        filter_counts=dict(sorted(counts.items())),
        duplicate_list=dups,
        renamed=renamed,
        api_titles=len(titles),
        categories=len(cats),
        rewritten=rewritten,
        rewrite_errors=rewrite_errors,
        corpus_path=str(path),
        corpus_sha256=digest,
    )


__all__ = ["IngestError", "IngestReport", "ingest", "discover", "process_bytes", "CORPUS_FILE", "REPORT_FILE"]
