"""Read the domains a `discover_domains` run wrote (domains.parquet: tool_id, domain_id, label)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from agentscaler_dagster.artifacts import verify
from agentscaler_dagster.contracts import Domain


def read_domains(path: str | Path) -> dict[str, Domain]:
    """``{domain_id: Domain}`` from a domains folder or its domains.parquet, tools in file order."""
    path = Path(path)
    if path.is_dir():
        path = path / "domains.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no domains.parquet; materialise `domains` (or run `agentscaler domains`) first")
    verify(path)  # against the seal discover_domains wrote: a file cut short or edited later is refused
    domains: dict[str, Domain] = {}
    for row in pq.read_table(path, columns=["tool_id", "domain_id", "label"]).to_pylist():
        domain = domains.setdefault(row["domain_id"], Domain(domain_id=row["domain_id"], label=row["label"], tool_ids=[]))
        domain.tool_ids.append(row["tool_id"])
    return domains
