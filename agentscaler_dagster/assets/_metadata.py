"""Small helpers shared by the thin assets: data versions, previews, pictures."""

import json
from pathlib import Path
from typing import Any

import dagster as dg

from agentscaler_dagster.artifacts import png_markdown


def picture(path: Path, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(png_markdown(path, alt)) if path.exists() else dg.MetadataValue.text(f"missing: {path}")


def preview(rows: list[Any], limit: int = 5) -> dg.MetadataValue:
    shown = [r.model_dump(mode="json") if hasattr(r, "model_dump") else r for r in rows[:limit]]
    return dg.MetadataValue.json(json.loads(json.dumps(shown, default=str)))


def result(
    *,
    path: Path,
    digest: str,
    metadata: dict[str, Any],
    checks: list[dg.AssetCheckResult] | None = None,
    asset_key: str | None = None,
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key=asset_key,
        metadata={"path": dg.MetadataValue.path(str(path)), "content_hash": digest, **metadata},
        data_version=dg.DataVersion(digest),
        check_results=checks or [],
    )
