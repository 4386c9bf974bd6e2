"""Where each stage writes its artifacts, and the content hashes used as data versions.

Artifacts are plain files (Parquet, JSON, JSONL, Python source, safetensors) under one root,
so they can be read without Dagster and rebuilt stage by stage.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Iterable

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
    """Validate every non-blank line of a JSONL file as ``model``; a bad line names the file, line and ``what``."""
    path = Path(path)
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
