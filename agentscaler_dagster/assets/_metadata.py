"""Small helpers shared by the thin assets: data versions, previews, pictures."""

import json
from pathlib import Path
from typing import Any

import dagster as dg

from agentscaler_dagster.artifacts import png_markdown, records_digest, seal_path


def picture(path: Path, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(png_markdown(path, alt)) if path.exists() else dg.MetadataValue.text(f"missing: {path}")


def preview(rows: list[Any], limit: int = 5) -> dg.MetadataValue:
    shown = [r.model_dump(mode="json") if hasattr(r, "model_dump") else r for r in rows[:limit]]
    return dg.MetadataValue.json(json.loads(json.dumps(shown, default=str)))


def data_version(path: Path, digest: str) -> str:
    """The content's version, never how or when it was made: a JSONL file of records is versioned by its records
    without the fields a re-run changes on its own (``artifacts.RUN_DEPENDENT_FIELDS``: a trajectory's timings),
    whatever digest its asset computed; anything else by ``digest``. An identical re-run then leaves everything
    downstream fresh (Dagster's stale status compares these versions)."""
    path = Path(path)
    if path.suffix == ".jsonl" and path.is_file():
        return records_digest(path)
    return digest


def sealed_records(path: Path) -> int | None:
    """The record count the file's seal holds (Parquet rows, JSONL lines), None for a file without one: the UI's
    standard row count, taken from what the writer recorded rather than counted again."""
    try:
        value = json.loads(seal_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    records = value.get("records") if isinstance(value, dict) else None
    return records if isinstance(records, int) and not isinstance(records, bool) else None


def result(
    *,
    path: Path,
    digest: str,
    metadata: dict[str, Any],
    checks: list[dg.AssetCheckResult] | None = None,
    asset_key: str | None = None,
) -> dg.MaterializeResult:
    version = data_version(path, digest)
    rows = sealed_records(path)
    standard = {"dagster/row_count": rows} if rows is not None else {}
    return dg.MaterializeResult(
        asset_key=asset_key,
        metadata={"path": dg.MetadataValue.path(str(path)), "content_hash": version, **standard, **metadata},
        data_version=dg.DataVersion(version),
        check_results=checks or [],
    )
