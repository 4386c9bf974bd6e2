"""Where each stage writes its artifacts, and the content hashes used as data versions.

Artifacts are plain files (Parquet, JSON, JSONL, Python source, safetensors) under one root,
so they can be read without Dagster and rebuilt stage by stage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from agentscaler_dagster.contracts import canonical_json


class ArtifactLayout:
    """The folder layout under an artifact root; one place that knows every path."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def stage(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def corpus(self) -> Path:
        return self.stage("corpus")

    @property
    def domains(self) -> Path:
        return self.stage("domains")

    @property
    def embedding_cache(self) -> Path:
        return self.stage("cache", "embeddings")

    def environment(self, domain_id: str) -> Path:
        return self.stage("environments", domain_id)

    def tasks(self, domain_id: str) -> Path:
        return self.stage("tasks", domain_id)

    def trajectories(self, domain_id: str) -> Path:
        return self.stage("trajectories", domain_id)

    def filtered(self, domain_id: str) -> Path:
        return self.stage("filtered_trajectories", domain_id)

    @property
    def sft(self) -> Path:
        return self.stage("sft")

    def model(self, name: str) -> Path:
        return self.stage("models", name)

    @property
    def evaluation(self) -> Path:
        return self.stage("evaluation")


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Fields a re-run changes on its own while the content stays the same (a trajectory's wall-clock timings):
# left out of a record file's data version, so an identical re-run leaves everything downstream fresh.
RUN_DEPENDENT_FIELDS = frozenset({"timings"})


def records_digest(path: str | Path, *, drop: Iterable[str] = RUN_DEPENDENT_FIELDS) -> str:
    """sha256 over the records of a JSONL file, in order, each as canonical JSON without the top-level ``drop``
    fields: the same records give the same digest however they were written (key order, spacing)."""
    skip = set(drop)
    digest = hashlib.sha256()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            if isinstance(record, dict):
                record = {k: v for k, v in record.items() if k not in skip}
            digest.update(canonical_json(record).encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()


def tree_digest(root: str | Path, *, exclude: Iterable[str] = ()) -> str:
    """sha256 over the relative paths and bytes of every file under ``root`` (sorted)."""
    root = Path(root)
    skip = set(exclude)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in skip or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(file_digest(path).encode())
    return digest.hexdigest()


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def png_markdown(path: str | Path, alt: str = "") -> str:
    """A markdown image with the PNG inlined, which the Dagster UI renders in asset metadata."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{data})"


def read_model_jsonl(path: str | Path, model, what: str) -> list:
    """Validate every non-blank line of a JSONL file as ``model``; a bad line names the file, line and ``what``.
    A file its writer sealed is first checked against the seal (``verify``): one cut short or edited is refused."""
    path = Path(path)
    verify(path)
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(model.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not {what}: {exc}") from exc
    return rows


# ---- integrity: what a writer recorded, checked by the next stage's reader -----------------------------------
#
# A stage's file is sealed when written: ``<name>.manifest.json`` beside it holds the file's sha256, size and
# record count. The reader (the core load functions: read_corpus, read_domains, read_model_jsonl behind
# read_tasks / read_trajectories / read_sft_dataset, the model loader) checks the file against it before using
# it, so the CLI and the Dagster assets both refuse a file cut short or changed after it was written, naming it.
# An environment package is checked against the ``files`` of its own manifest.json (``verify_package``).
# A file with no seal (written before seals existed, or by hand) is read as it is.

SEAL_SUFFIX = ".manifest.json"
# files at least this big (checkpoints) are hashed once per process while their size and times stay the same
_HASH_ONCE_BYTES = 64 << 20
_verified: dict[tuple, str] = {}


class ArtifactMismatch(RuntimeError):
    """An artifact differs from what its writer recorded (cut short, edited, replaced) or was never finished.

    Not a ValueError on purpose: readers that skip malformed input (a bad JSONL line, a row that does not
    parse) must not swallow it."""


def seal_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SEAL_SUFFIX)


def _count_records(path: Path) -> int | None:
    """Rows of a Parquet file (from its footer), non-blank lines of a JSONL file; None for other files."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if path.suffix == ".jsonl":
            with open(path, "rb") as handle:
                return sum(1 for line in handle if line.strip())
    except Exception:  # a file too broken to count: the hash says so already
        return None
    return None


def _write_json_atomic(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def seal(path: str | Path, *, records: int | None = None) -> Path:
    """Record ``path``'s sha256, size and record count in ``<path>.manifest.json`` (written atomically; no clock,
    so the same file gives the same seal). Call it once the file is complete; returns the seal's path."""
    path = Path(path)
    value = {"file": path.name, "sha256": _digest_checked(path), "bytes": path.stat().st_size,
             "records": records if records is not None else _count_records(path)}
    target = seal_path(path)
    _write_json_atomic(target, value)
    return target


def mark_unfinished(path: str | Path) -> Path:
    """Seal ``path`` as being written: a reader refuses it until ``seal`` replaces the mark (a writer that
    appends for a while, and may be killed, calls this first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = seal_path(path)
    _write_json_atomic(target, {"file": path.name, "unfinished": True})
    return target


def _read_seal(target: Path) -> dict:
    try:
        value = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactMismatch(f"{target}: the seal of {target.name[: -len(SEAL_SUFFIX)]} is unreadable ({exc}); "
                               "rebuild the stage that wrote it") from exc
    if not isinstance(value, dict):
        raise ArtifactMismatch(f"{target}: the seal is not a JSON object; rebuild the stage that wrote it")
    return value


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _digest_checked(path: Path) -> str:
    """sha256 of ``path``; a big file unchanged since it was last hashed in this process is not read again."""
    key = _stat_key(path)
    if key[1] >= _HASH_ONCE_BYTES and key in _verified:
        return _verified[key]
    digest = file_digest(path)
    if key[1] >= _HASH_ONCE_BYTES:
        _verified[key] = digest
    return digest


def verify(path: str | Path) -> dict | None:
    """Check ``path`` against its seal; raise ``ArtifactMismatch`` naming the file, what was recorded and what
    is there. Returns the seal, or None when the file has none (read as it is)."""
    path = Path(path)
    target = seal_path(path)
    if not target.is_file():
        return None
    recorded = _read_seal(target)
    if recorded.get("unfinished"):
        raise ArtifactMismatch(f"{path}: its writer started it and never finished (the run writing it stopped); "
                               "rebuild the stage that writes it")
    if not path.is_file():
        raise ArtifactMismatch(f"{path}: missing, though its seal {target.name} records it "
                               f"(sha256 {recorded.get('sha256')}); rebuild the stage that writes it")
    size = path.stat().st_size
    actual = _digest_checked(path) if size == recorded.get("bytes") else None
    if actual is None or actual != recorded.get("sha256"):
        found = actual or file_digest(path)

        def described(sha, size, records):
            return f"sha256 {sha}, {size} bytes" + (f", {records} records" if records is not None else "")

        raise ArtifactMismatch(
            f"{path}: changed since it was written (cut short, edited or replaced): its seal {target.name} records "
            f"{described(recorded.get('sha256'), recorded.get('bytes'), recorded.get('records'))}; the file has "
            f"{described(found, size, _count_records(path) if recorded.get('records') is not None else None)}. "
            "Rebuild the stage that wrote it")
    return recorded


# ---- environment packages: checked against their own manifest.json ------------------------------------------

PACKAGE_MANIFEST = "manifest.json"


def package_manifest(package_dir: str | Path) -> dict:
    """A package's manifest.json ({} when it has none); an unreadable one raises naming it."""
    path = Path(package_dir) / PACKAGE_MANIFEST
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactMismatch(f"{path}: unreadable ({exc}); rebuild the environment") from exc
    if not isinstance(value, dict):
        raise ArtifactMismatch(f"{path}: not a JSON object; rebuild the environment")
    return value


def verify_package(package_dir: str | Path, names: Iterable[str] | None = None) -> dict:
    """Check a package's files against the sha256s its manifest.json records, before anything runs from it:
    every listed file (pictures aside: nothing reads them), or only ``names``; a state file the manifest does not
    list is refused too (it would become an initial state). Raises ``ArtifactMismatch`` naming the file; returns
    the manifest ({} for a package without one, read as it is)."""
    package_dir = Path(package_dir)
    manifest = package_manifest(package_dir)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return manifest
    wanted = [n for n in files if not n.endswith(".png")] if names is None else list(names)
    for name in wanted:
        path = package_dir / name
        if name not in files:
            raise ArtifactMismatch(f"{path}: not listed in {package_dir / PACKAGE_MANIFEST}; rebuild the environment")
        if not path.is_file():
            raise ArtifactMismatch(f"{path}: missing, though {package_dir / PACKAGE_MANIFEST} lists it; "
                                   "rebuild the environment")
        actual = file_digest(path)
        if actual != files[name]:
            raise ArtifactMismatch(
                f"{path}: changed since the environment was built (cut short, edited or replaced): "
                f"{package_dir / PACKAGE_MANIFEST} records sha256 {files[name]}, the file has {actual} "
                f"({path.stat().st_size} bytes). Rebuild the environment")
    if names is None:
        for state in sorted((package_dir / "states").glob("*.json")):
            rel = state.relative_to(package_dir).as_posix()
            if rel not in files:
                raise ArtifactMismatch(f"{state}: a state file {package_dir / PACKAGE_MANIFEST} does not list; "
                                       "rebuild the environment")
    return manifest


def read_package_json(package_dir: str | Path, name: str) -> Any:
    """One JSON file of an environment package (tools.json, tool_specs.json, ...), checked against the manifest."""
    verify_package(package_dir, [name])
    return json.loads((Path(package_dir) / name).read_text(encoding="utf-8"))


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Records as canonical JSON lines, written atomically (a kill leaves the old file or none), then sealed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(canonical_json(record) + "\n")
            count += 1
    os.replace(tmp, path)
    seal(path, records=count)
    return path
