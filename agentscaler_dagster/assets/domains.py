import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import picture, preview, result
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.corpus import read_corpus
from agentscaler_dagster.domains import DomainConfig, discover_domains, largest_domain_share
from agentscaler_dagster.resources import ArtifactStore


# best NMI/ARI against the source grouping in the threshold sweep (benchmarks/RESULTS.md, Domain discovery)
MEASURED_THRESHOLDS = {"minilm": 0.65, "hashing": 0.5}


class DomainsConfig(dg.Config):
    embedder: str = Field(default="minilm", description="minilm (all-MiniLM-L6-v2, offline) or hashing (no model).")
    threshold: float | None = Field(default=None, description="Cosine similarity above which two tools are linked; empty: the measured default of the embedder (minilm 0.65, hashing 0.5; benchmarks/RESULTS.md).")
    algorithm: str = Field(default="leiden", description="leiden (default) or louvain (the paper's choice).")
    resolution: float = Field(default=1.0, description="Community detection resolution.")
    seed: int = Field(default=0, description="Seed for community detection.")
    # a domain's tools all go into the agent's prompt: bounded domains keep that prompt trainable
    max_domain_share: float = Field(default=0.1, description="Communities above this share of all tools are split again; the domain check fails if one still is.")


@dg.multi_asset(
    specs=[
        dg.AssetSpec("tool_graph", deps=["api_corpus"], group_name="domains", code_version="1", kinds={"igraph", "parquet"},
                     description="Tools linked where their parameter embeddings are similar (blockwise cosine)."),
        dg.AssetSpec("domains", deps=["tool_graph"], group_name="domains", code_version="1", kinds={"leiden", "parquet"},
                     description="Communities of the tool graph; each becomes a `domain` partition."),
    ],
    check_specs=[dg.AssetCheckSpec("largest_domain_share", asset="domains")],
)
def tool_graph_and_domains(context: dg.AssetExecutionContext, config: DomainsConfig, artifacts: ArtifactStore):
    """Embed each tool's parameter list, link similar tools, detect communities, register domains."""
    layout = artifacts.layout
    tools = read_corpus(layout.corpus)
    settings = {k: v for k, v in config.model_dump().items() if v is not None}
    if config.threshold is None and config.embedder in MEASURED_THRESHOLDS:
        settings["threshold"] = MEASURED_THRESHOLDS[config.embedder]
    domain_config = DomainConfig(cache_dir=str(layout.embedding_cache), **settings)
    found = discover_domains(tools, layout.domains, domain_config, progress=context.log.info)
    keys = [d.domain_id for d in found.domains]
    instance = context.instance
    stale = sorted(set(instance.get_dynamic_partitions(domain_partitions.name)) - set(keys))
    for key in stale:
        instance.delete_dynamic_partition(domain_partitions.name, key)
    instance.add_dynamic_partitions(domain_partitions.name, keys)
    context.log.info(f"{len(keys)} domains registered as partitions ({len(stale)} stale removed)")

    report = found.report
    edges = found.paths["edges"]
    yield result(
        asset_key="tool_graph",
        path=edges,
        digest=file_digest(edges),
        metadata={
            "n_tools": report["n_tools"],
            "n_edges": report["n_edges"],
            "threshold": report["threshold"],
            "graphml": dg.MetadataValue.path(str(found.paths["graphml"])),
        },
    )
    share = largest_domain_share(found)
    largest = sorted(found.domains, key=lambda d: -len(d.tool_ids))[:10]
    yield result(
        asset_key="domains",
        path=found.paths["domains"],
        digest=file_digest(found.paths["domains"]),
        metadata={
            "n_domains": len(keys),
            "modularity": float(report["modularity"]),
            "largest_domain_share": share,
            "largest_domains": dg.MetadataValue.md(
                "| domain | label | tools |\n|---|---|---|\n"
                + "\n".join(f"| {d.domain_id} | {d.label} | {len(d.tool_ids)} |" for d in largest)
            ),
            "size_distribution": picture(found.paths["sizes_png"], "domain sizes"),
            "preview": preview([{"domain_id": d.domain_id, "label": d.label, "tools": len(d.tool_ids)} for d in largest]),
        },
    )
    yield dg.AssetCheckResult(
        asset_key="domains",
        check_name="largest_domain_share",
        passed=share <= config.max_domain_share,
        metadata={"largest_domain_share": share, "max_domain_share": config.max_domain_share},
    )
