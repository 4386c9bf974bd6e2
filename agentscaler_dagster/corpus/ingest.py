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
import errno
import gc
import hashlib
import json
import multiprocessing as mp
import os
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

from pydantic import BaseModel, Field

from agentscaler_dagster.corpus import loaders
from agentscaler_dagster.corpus.normalise import explicit_description, normalise
from agentscaler_dagster.corpus.quality import assign_unique_names, dedup
from agentscaler_dagster.corpus.readers import FORCE_CHOICES, MAX_BYTES, FileProblem, detect_format, parse
from agentscaler_dagster.corpus.store import CORPUS_FILE, row_to_tool, write_rows

CACHE_VERSION = "corpus-2"  # bump whenever loaders or normalisation change what a file yields
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
    skipped: list[dict] = Field(default_factory=list, description="{path, reason} per entry not read: no spec extension, "
                                "FIFO / device / socket (never opened), hidden, symlink to a folder.")
    entries: int = Field(0, description="Entries found under the inputs: == inputs + len(skipped) + entries quarantined "
                         "before reading (symlink loops, undecodable names, too large).")
    files_per_format: dict[str, int] = Field(default_factory=dict)
    ingested_per_format: dict[str, int] = Field(default_factory=dict)
    operations: dict[str, int] = Field(default_factory=dict, description="Ingested tools per read/write class.")
    filtered_reasons: list[dict] = Field(default_factory=list, description="{path, name, reason} per filtered operation.")
    filter_counts: dict[str, int] = Field(default_factory=dict)
    duplicate_list: list[dict] = Field(default_factory=list)
    renamed: int = Field(0, description="Tools whose name got a suffix to stay unique.")
    api_titles: int = 0
    categories: int = 0
    rewritten: int = Field(0, description="Tools whose description the optional rewrite (rewriter / "
                           "rewrite_descriptions) replaced; the old text is kept in original_description.")
    descriptions: dict[str, int] = Field(default_factory=dict, description="Ingested tools per description origin: "
                                         "source (its own text), summary (fell back to the summary), composed (fewer "
                                         "than 3 words in both: written from method, path, summary, parameter names and "
                                         "API title; nothing is dropped for a short description), and the rewrite's.")
    rewrite_errors: list[dict] = Field(default_factory=list)
    reused_files: int = Field(0, description="Files taken from the cache unchanged.")
    parsed_files: int = 0
    workers: int = 1
    seconds: float = 0.0
    corpus_path: str = ""
    corpus_sha256: str = ""

    def counts_add_up(self) -> bool:
        return self.operations_seen == self.ingested + self.duplicates + self.filtered + self.quarantined_operations

    def entries_add_up(self) -> bool:
        """Every entry under the inputs is read, skipped or quarantined, exactly once."""
        unread = sum(1 for q in self.quarantined if q.get("stage") == "discovery")
        return self.entries == self.inputs + len(self.skipped) + unread


class IngestError(Exception):
    """Ingestion could not run at all (missing input path, unwritable output)."""


# ---------------------------------------------------------------- discovery

# what a directory entry that is not a regular file or a folder is called in the report
_SPECIAL_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                  (stat.S_ISSOCK, "socket"))


@dataclass
class Discovery:
    """Every entry under the input paths, each in exactly one list."""

    files: list[tuple[Path, str, str | None]] = field(default_factory=list)  # (path, label, folder) to read
    skipped: list[dict] = field(default_factory=list)  # {path, reason}: not a spec, never opened
    quarantined: list[dict] = field(default_factory=list)  # {path, reason}: an entry that could not be looked at

    @property
    def entries(self) -> int:
        return len(self.files) + len(self.skipped) + len(self.quarantined)


def _printable(name: str) -> str:
    """A name as it can be reported: undecodable bytes (surrogate-escaped by os) shown as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _decodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _special_kind(mode: int) -> str | None:
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "special file"


def _stat_target(path: str) -> tuple[os.stat_result | None, str | None]:
    """(stat of what ``path`` points to, None) or (None, why it cannot be looked at); never opens it."""
    try:
        return os.stat(path), None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symlink loop (too many levels of symbolic links)"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return None, f"broken symlink (target {_printable(os.readlink(path))!r} does not exist)"
        return None, f"cannot stat: {exc.strerror or exc}"


def discover(paths: Sequence[str | Path], out_dir: Path | None = None) -> Discovery:
    """Every entry under ``paths``: files to read (sorted by label), skipped and quarantined entries.

    A label is the path relative to the ingested root, prefixed by the root folder's name. Nothing is
    opened here: each entry is classified by ``stat``. Special files (FIFOs, devices, sockets), files
    without a spec extension, hidden entries and symlinks to folders (not followed: they can loop or
    leave the input) are skipped with the reason; symlink loops, broken symlinks, names that are not
    UTF-8 and folders that cannot be listed are quarantined with the reason. Only a root that does not
    exist at all raises :class:`IngestError`.
    """
    out_res = os.path.realpath(out_dir) if out_dir is not None else None
    found: dict[str, tuple[str, str | None]] = {}
    disc = Discovery()

    def place(full: str, label: str, folder: str | None, st: os.stat_result, name: str, named: bool = False) -> None:
        # named: a file given on the command line is read whatever its extension (--format may say what it is)
        kind = _special_kind(st.st_mode)
        if kind is not None:
            disc.skipped.append({"path": label, "reason": f"{kind}, not a regular file (not opened)"})
        elif not named and not name.lower().endswith(SPEC_SUFFIXES):
            disc.skipped.append({"path": label, "reason": "no spec extension (" + ", ".join(SPEC_SUFFIXES) + ")"})
        elif st.st_size > MAX_BYTES:
            disc.quarantined.append({"path": label, "reason": f"file too large ({st.st_size} bytes > {MAX_BYTES})"})
        else:
            found.setdefault(os.path.realpath(full), (label, folder))

    for raw in paths:
        root = os.fspath(raw)
        shown = _printable(root)
        if not os.path.lexists(root):
            raise IngestError(f"input path does not exist: {shown}")
        if not _decodable(root):
            disc.quarantined.append({"path": shown, "reason": "path is not valid UTF-8"})
            continue
        st, why = _stat_target(root)
        if st is None:
            disc.quarantined.append({"path": shown, "reason": why})
            continue
        if not stat.S_ISDIR(st.st_mode):
            place(root, os.path.basename(root.rstrip("/")) or root, None, st, root, named=True)
            continue
        top = os.path.basename(os.path.realpath(root))
        stack = [""]  # folders relative to root, walked depth first in sorted order
        while stack:
            rel_dir = stack.pop()
            here = os.path.join(root, rel_dir) if rel_dir else root
            try:
                with os.scandir(here) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                disc.quarantined.append({"path": f"{top}/{rel_dir}".rstrip("/"), "reason": f"cannot list folder: {exc.strerror or exc}"})
                continue
            subdirs = []
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                label = f"{top}/{_printable(rel)}"
                if not _decodable(entry.name):
                    disc.quarantined.append({"path": label, "reason": "file name is not valid UTF-8 (undecodable bytes shown as \\xNN)"})
                    continue
                if entry.name.startswith("."):
                    disc.skipped.append({"path": label, "reason": "hidden entry"})
                    continue
                full = entry.path
                is_link = entry.is_symlink()
                st, why = _stat_target(full)
                if st is None:
                    disc.quarantined.append({"path": label, "reason": why})
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if out_res is not None and os.path.realpath(full) == out_res:
                        disc.skipped.append({"path": label, "reason": "the output folder of this run"})
                        continue
                    if is_link:
                        disc.skipped.append({"path": label, "reason": "symlink to a folder (not followed)"})
                    else:
                        subdirs.append(rel)
                    continue
                if rel_dir == "" and out_res is not None and os.path.realpath(root) == out_res and entry.name == REPORT_FILE:
                    continue
                folder = PurePosixPath(rel).parent.name or None
                place(full, label, folder, st, entry.name)
            stack.extend(reversed(subdirs))
    labels: set[str] = set()
    for path, (label, folder) in sorted(found.items(), key=lambda kv: (kv[1][0], kv[0])):
        if label in labels:  # two roots with the same name: fall back to the full path
            label = path
        labels.add(label)
        disc.files.append((Path(path), label, folder))
    disc.files.sort(key=lambda f: f[1])
    disc.skipped.sort(key=lambda s: s["path"])
    disc.quarantined.sort(key=lambda q: q["path"])
    return disc


def read_spec_bytes(path: str | Path) -> bytes:
    """The bytes of one spec file, read with a bound; raises FileProblem with the reason.

    Opened non-blocking so that an entry swapped for a FIFO after discovery cannot hang the run; the
    size is checked with ``fstat`` before reading and the read stops one byte past ``MAX_BYTES`` (a
    file that grows while it is read, or a device behind it, is never read whole).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileProblem(f"cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        kind = _special_kind(st.st_mode)
        if kind is not None or stat.S_ISDIR(st.st_mode):
            raise FileProblem(f"{kind or 'folder'}, not a regular file (changed after discovery)")
        if st.st_size > MAX_BYTES:
            raise FileProblem(f"file too large ({st.st_size} bytes > {MAX_BYTES})")
        chunks, total = [], 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_BYTES:
            raise FileProblem(f"file too large (more than {MAX_BYTES} bytes; it grew while being read)")
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


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


def _unreadable(label: str, why: str) -> dict:
    return {"file": label, "format": None, "seen": 0, "tools": [], "filtered": [], "quarantined": [], "file_error": why}


def _process_path(task: tuple) -> dict:
    path, label, folder, force, cache_path = task
    try:
        data = read_spec_bytes(path)
    except FileProblem as exc:
        return _unreadable(label, str(exc))
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


def _worker_signals() -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means


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
    rewrite_scope: str = "all",
) -> IngestReport:
    """Ingest spec files/folders into ``out_dir/corpus.parquet`` and ``out_dir/ingest_report.json``.

    ``force_format``: one of readers.FORCE_CHOICES, else detected per file. ``rewriter``: ToolSpec -> new
    description (an LLM hook); ``rewrite_descriptions=True`` without a rewriter uses
    :func:`explicit_description`. ``workers``: processes for parsing (default: up to 2 when there are many
    files to parse). ``rewrite_scope``: 'all' tools, or only those whose description was 'composed' (the
    source had fewer than 3 words; the LLM option of the paper's rewriting, see ``describe.LLMDescriber``).
    Raises IngestError only when the run cannot happen at all.
    """
    with _no_gc():
        return _ingest(paths, out_dir, force_format, rewriter, progress, rewrite_descriptions, workers, use_cache,
                       rewrite_scope)


def _ingest(paths, out_dir, force_format, rewriter, progress, rewrite_descriptions, workers, use_cache,
            rewrite_scope="all") -> IngestReport:
    started = time.perf_counter()
    if force_format is not None and force_format not in FORCE_CHOICES:
        raise IngestError(f"unknown format {force_format!r}; choose one of {', '.join(FORCE_CHOICES)}")
    if rewrite_scope not in ("all", "composed"):
        raise IngestError(f"unknown rewrite scope {rewrite_scope!r}; choose 'all' or 'composed'")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise IngestError(f"workers must be a whole number >= 1, got {workers!r}")
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
    found = discover(paths, out)
    files = found.files
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
                data = read_spec_bytes(path)
            except FileProblem as exc:
                results[i] = _unreadable(label, str(exc))
                done += 1
                continue
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
        # workers get the default SIGTERM handler and a graceful close: a worker forked from a Dagster
        # step inherits its deferring SIGTERM handler, so Pool.terminate() (what `with Pool()` does on
        # exit) could wait forever for one blocked on the task queue's lock (seen in a corpus run)
        pool = _pool_context().Pool(n_workers, initializer=_worker_signals)
        try:
            for (i, _), res in zip(todo, pool.imap(_process_path, [t for _, t in todo], chunksize=1)):
                results[i] = res
                done += 1
                if progress:
                    progress(done, len(files))
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
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

    report = _union(results, out, rewriter, rewrite_descriptions, rewrite_scope)
    report.quarantined = [{**q, "stage": "discovery"} for q in found.quarantined] + report.quarantined
    report.quarantined_files += len(found.quarantined)
    report.inputs = len(files)
    report.entries = found.entries
    report.input_files = [label for _, label, _ in files]
    report.skipped = found.skipped
    report.skipped_files = [s["path"] for s in found.skipped if s["reason"].startswith("no spec extension")]
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


def _union(results: list[dict | None], out: Path, rewriter, rewrite_descriptions: bool,
           rewrite_scope: str = "all") -> IngestReport:
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
            if rewrite_scope == "composed" and rec["description_origin"] != "composed":
                continue
            try:
                new = fn(row_to_tool(rec))
            except Exception as exc:  # an LLM hiccup keeps the original description, on the record
                rewrite_errors.append({"tool_id": rec["tool_id"], "name": rec["name"], "reason": f"{type(exc).__name__}: {str(exc)[:200]}"})
                continue
            if isinstance(new, str) and new.strip():
                if rec.get("original_description") is None:
                    rec["original_description"] = rec["description"]
                rec["description"] = new.strip()
                rec["description_origin"] = "llm" if rewriter is not None else "explicit"
                rewritten += 1
            else:
                rewrite_errors.append({"tool_id": rec["tool_id"], "name": rec["name"], "reason": "rewriter returned no text"})

    path = write_rows(kept, out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    per_format: dict[str, int] = {}
    ops: dict[str, int] = {"read": 0, "write": 0}
    titles: set[str] = set()
    cats: set[str] = set()
    origins: dict[str, int] = {}
    for rec in kept:
        origins[rec["description_origin"]] = origins.get(rec["description_origin"], 0) + 1
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
        descriptions=dict(sorted(origins.items())),
        rewrite_errors=rewrite_errors,
        corpus_path=str(path),
        corpus_sha256=digest,
    )


__all__ = ["IngestError", "IngestReport", "ingest", "discover", "process_bytes", "CORPUS_FILE", "REPORT_FILE"]
