import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import preview, result
from agentscaler_dagster.corpus import ingest, read_corpus
from agentscaler_dagster.resources import ArtifactStore
from agentscaler_dagster.starter_corpus import starter_corpus_files


class CorpusConfig(dg.Config):
    paths: list[str] = Field(default_factory=list, description="Spec files or folders to ingest; empty: the embedded starter corpus.")
    max_files: int | None = Field(default=None, ge=1, description="Ingest only the first N files (sorted): a small slice for smoke runs.")
    rewrite_descriptions: bool = Field(default=False, description="Rewrite descriptions into explicit input/output form.")


@dg.asset(
    group_name="corpus",
    code_version="1",
    kinds={"python", "parquet"},
    check_specs=[dg.AssetCheckSpec("corpus_not_empty", asset="api_corpus", blocking=True,
                                   description="The inputs gave at least one tool; blocks the domains when not.")],
)
def api_corpus(context: dg.AssetExecutionContext, config: CorpusConfig, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Scenario collection: every input spec normalised into one corpus of ToolSpecs."""
    paths = list(config.paths) or [str(p) for p in starter_corpus_files()]
    if config.max_files is not None:
        paths = sorted(paths)[: config.max_files]
    out = artifacts.layout.corpus
    report = ingest(
        paths,
        out,
        rewrite_descriptions=config.rewrite_descriptions,
        progress=lambda done, total: context.log.info(f"ingested {done}/{total} files"),
    )
    tools = read_corpus(out)
    context.log.info(f"{report.ingested} tools ingested, {report.duplicates} duplicates, {report.filtered} filtered, {len(report.quarantined)} quarantined")
    return result(
        path=out / "corpus.parquet",
        digest=file_digest(out / "corpus.parquet"),
        metadata={
            "inputs": report.inputs,
            "ingested": report.ingested,
            "duplicates": report.duplicates,
            "filtered": report.filtered,
            "quarantined": len(report.quarantined),
            "entries": report.entries,
            "skipped": len(report.skipped),
            "descriptions": dg.MetadataValue.json(report.descriptions),
            "quarantine": dg.MetadataValue.json([q.model_dump() if hasattr(q, "model_dump") else q for q in report.quarantined[:20]]),
            "preview": preview([{"name": t.name, "operation": t.operation, "api": t.source.api_title} for t in tools]),
        },
        checks=[dg.AssetCheckResult(check_name="corpus_not_empty", passed=len(tools) > 0, metadata={"tools": len(tools)})],
    )
