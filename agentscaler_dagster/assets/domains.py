import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import picture, preview, result
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.corpus import read_corpus
from agentscaler_dagster.domains import DomainConfig, discover_domains, largest_domain_share
from agentscaler_dagster.domains.community import split_cap
from agentscaler_dagster.resources import ArtifactStore


class DomainsConfig(dg.Config):
    embedder: str = Field(default="minilm", description="minilm (all-MiniLM-L6-v2, offline) or hashing (no model).")
    text_fields: str | None = Field(default=None, description="What is embedded per tool (domains.DomainConfig.text_fields); empty: the measured default.")
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0, description="Cosine similarity above which two tools are linked; empty: chosen from the corpus's own similarity distribution (domains/auto.py).")
    algorithm: str = Field(default="leiden", description="leiden (default) or louvain (the paper's choice).")
    resolution: float | None = Field(default=None, gt=0.0, description="Community detection resolution; empty: chosen from a target range of domain sizes (domains/auto.py).")
    seed: int = Field(default=0, ge=0, description="Seed for community detection.")
    twin_min_shared: int = Field(default=3, ge=0, description="Two APIs in one domain sharing at least this many tool names are cut apart (one environment cannot hold both); 0: off.")
    # a domain's tools all go into the agent's prompt: bounded domains keep that prompt trainable
    max_domain_share: float = Field(default=0.1, gt=0.0, le=1.0, description="Communities above this share of all tools are split again; the domain check fails if one still is.")


@dg.multi_asset(
    specs=[
        dg.AssetSpec("tool_graph", deps=["api_corpus"], group_name="domains", code_version="1", kinds={"igraph", "parquet"},
                     description="Tools linked where their parameter embeddings are similar (blockwise cosine)."),
        dg.AssetSpec("domains", deps=["tool_graph"], group_name="domains", code_version="2",  # 2: API fragments, twin APIs kinds={"leiden", "parquet"},
                     description="Communities of the tool graph; each becomes a `domain` partition."),
    ],
    check_specs=[dg.AssetCheckSpec("largest_domain_share", asset="domains",
                                   description="No domain holds more than max_domain_share of the tools (never below "
                                               "split_min_tools): its tools all go into the agent's prompt.")],
)
def tool_graph_and_domains(context: dg.AssetExecutionContext, config: DomainsConfig, artifacts: ArtifactStore):
    """Embed each tool's parameter list, link similar tools, detect communities, register domains."""
    layout = artifacts.layout
    tools = read_corpus(layout.corpus)
    settings = {k: v for k, v in config.model_dump().items() if v is not None}
    domain_config = DomainConfig(cache_dir=str(layout.embedding_cache), **settings)
    found = discover_domains(tools, layout.domains, domain_config, progress=context.log.info)
    keys = [d.domain_id for d in found.domains]
    instance = context.instance
    registered = instance.get_dynamic_partitions(domain_partitions.name)
    added = [key for key in keys if key not in set(registered)]
    # a domain whose tools changed has a new id; its old key is retired: deleting a dynamic partition removes
    # the key only, its materialisations stay in the event log and on the asset's Events page (Dagster 1.13)
    retired = sorted(set(registered) - set(keys))
    for key in retired:
        instance.delete_dynamic_partition(domain_partitions.name, key)
    instance.add_dynamic_partitions(domain_partitions.name, added)
    context.log.info(f"{len(keys)} domains: {len(added)} new partitions, {len(retired)} retired")

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
            "threshold_chosen_by": report["auto"].get("threshold", {}).get("rule", "config"),
            "text_fields": report["text_fields"],
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
            "new_domains": dg.MetadataValue.json(added),
            "retired_domains": dg.MetadataValue.json(retired),
            "modularity": float(report["modularity"]),
            "resolution": float(report["resolution"]),
            "resolution_chosen_by": report["auto"].get("resolution", {}).get("rule", "config"),
            "largest_domain_share": share,
            "api_fragments_joined": len(report["api_fragments_joined"]),
            "twin_api_cuts": sum(len(e["parts"]) - 1 - len(e["kept_together"]) for e in report["twin_apis"]),
            "largest_domains": dg.MetadataValue.md(
                "| domain | label | tools |\n|---|---|---|\n"
                + "\n".join(f"| {d.domain_id} | {d.label} | {len(d.tool_ids)} |" for d in largest)
            ),
            "size_distribution": picture(found.paths["sizes_png"], "domain sizes"),
            "preview": preview([{"domain_id": d.domain_id, "label": d.label, "tools": len(d.tool_ids)} for d in largest]),
        },
    )
    # the same bound the split applies: a share of the corpus, but never below split_min_tools
    cap = split_cap(report["n_tools"], config.max_domain_share, domain_config.split_min_tools)
    largest_size = max(len(d.tool_ids) for d in found.domains)
    yield dg.AssetCheckResult(
        asset_key="domains",
        check_name="largest_domain_share",
        passed=largest_size <= cap,
        metadata={"largest_domain_share": share, "max_domain_share": config.max_domain_share,
                  "largest_domain_tools": largest_size, "cap_tools": cap},
    )
