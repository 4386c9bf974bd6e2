import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from agentscaler_dagster.assets._metadata import picture, preview, result
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.contracts import EnvironmentManifest, content_hash
from agentscaler_dagster.corpus import read_corpus
from agentscaler_dagster.domains.embed import make_embedder
from agentscaler_dagster.domains.store import read_domains
from agentscaler_dagster.envgen import build_environment
from agentscaler_dagster.envgen.fieldmatch import FieldMatcher
from agentscaler_dagster.envgen.kinds import kinds_markdown
from agentscaler_dagster.llm import LLMCodeGenerator, LLMEdgeVerifier, LLMPolicyWriter
from agentscaler_dagster.resources import ArtifactStore, LlamaCppServer, LLMEndpoint, VLLMServer


class EnvironmentConfig(dg.Config):
    n_states: int = Field(default=3, ge=1, description="Initial states per domain.")
    seed: int = Field(default=0, ge=0, description="Seed for schema, code and initial states.")
    min_pass_rate: float = Field(default=0.8, ge=0.0, le=1.0, description="An environment below this validation pass rate is not used downstream.")
    code_generator: str = Field(default="programmatic", description="programmatic, or llm (the `llm` resource writes the tool module; validated, with fallback).")
    max_generator_attempts: int = Field(default=3, ge=1, description="LLM attempts before falling back to the programmatic generator.")
    policy_writer: str = Field(default="programmatic", description="programmatic, or llm (the `llm` resource writes the policy's prose; the checkable rules stay programmatic and are appended).")
    verify_edges: bool = Field(default=False, description="Ask the `llm` resource to veto candidate dependency edges.")
    edge_embedder: str = Field(default="minilm", description="Embedder that links a required input to a differently named output (contactid <- contact_id): minilm, hashing, or none (exact names only).")
    edge_similarity: float = Field(default=0.8, ge=-1.0, le=1.0, description="Cosine similarity of the two names' words above which they link (measured: benchmarks/RESULTS.md, Dependency edges).")


def tool_metadata(manifest: EnvironmentManifest, package: Path) -> dict:
    """The count and preview of the tools the package serves (read from its tool_specs.json, so a tool that the
    quarantine left out is not among them), the number quarantined, and, when any, each one with the reason."""
    kept = json.loads((Path(package) / "tool_specs.json").read_text("utf-8"))
    metadata = {
        "tools": len(kept),
        "quarantined_tools": len(manifest.quarantined_tools),
        "preview": preview([{"tool": t["name"], "operation": t["operation"]} for t in kept], limit=10),
    }
    if manifest.quarantined_tools:
        metadata["quarantine"] = dg.MetadataValue.json(dict(manifest.quarantined_tools))
    return metadata


@dg.asset(
    # the tools' specs come from the corpus: an edited spec changes the environment though its domain stays
    deps=["domains", "api_corpus"],
    partitions_def=domain_partitions,
    group_name="environments",
    code_version="4",  # 4: failing tools quarantined instead of blocking the domain; a `state` parameter works
    kinds={"python", "json"},
    # one result per domain (a check spec without the partitions keeps only the last domain's on the checks page)
    check_specs=[dg.AssetCheckSpec("environment_validation", asset="environment", blocking=True,
                                   partitions_def=domain_partitions,
                                   description="Every tool of the domain runs in the sandbox on every initial state "
                                               "and keeps its kind's contract (envgen/semantics.py); blocks the "
                                               "domain's tasks when it fails.")],
)
def environment(
    context: dg.AssetExecutionContext, config: EnvironmentConfig, artifacts: ArtifactStore, llm: LLMEndpoint,
    vllm_server: VLLMServer, llamacpp_server: LlamaCppServer,
) -> dg.MaterializeResult:
    """Programmatic materialisation: dependency graph, database schema, tool code, initial states."""
    layout = artifacts.layout
    domain_id = context.partition_key
    domain = read_domains(layout.domains)[domain_id]
    wanted = set(domain.tool_ids)
    tools = [t for t in read_corpus(layout.corpus) if t.tool_id in wanted]
    out = layout.environment(domain_id)
    if config.code_generator not in ("programmatic", "llm"):
        raise ValueError(f"code_generator must be programmatic or llm, got {config.code_generator!r}")
    clients: list = []

    def client():
        # one client for every LLM use of this step; a managed server (kind vllm / llamacpp) starts on first use
        if not clients:
            clients.append(llm.client(vllm_server=vllm_server, llamacpp_server=llamacpp_server))
        return clients[0]

    generator = LLMCodeGenerator(client(), seed=config.seed) if config.code_generator == "llm" else None
    verifier = LLMEdgeVerifier(client()) if config.verify_edges else None
    if config.policy_writer not in ("programmatic", "llm"):
        raise ValueError(f"policy_writer must be programmatic or llm, got {config.policy_writer!r}")
    policy_writer = LLMPolicyWriter(client(), seed=config.seed) if config.policy_writer == "llm" else None
    if config.edge_embedder not in ("minilm", "hashing", "none"):
        raise ValueError(f"edge_embedder must be minilm, hashing or none, got {config.edge_embedder!r}")
    matcher = None if config.edge_embedder == "none" else FieldMatcher(
        make_embedder(config.edge_embedder), threshold=config.edge_similarity)
    manifest = build_environment(
        domain, tools, out, seed=config.seed, n_states=config.n_states, min_pass_rate=config.min_pass_rate,
        code_generator=generator, edge_verifier=verifier, field_matcher=matcher,
        max_attempts=config.max_generator_attempts, policy_writer=policy_writer,
    )
    tool_counts = tool_metadata(manifest, out)
    left_out = f" ({tool_counts['quarantined_tools']} quarantined)" if manifest.quarantined_tools else ""
    context.log.info(f"{domain_id}: {tool_counts['tools']} tools{left_out}, generator {manifest.generator}, "
                     f"validation pass rate {manifest.pass_rate:.2f}")
    # the package's files less its pictures: a new matplotlib must not make every domain downstream stale
    content = {name: sha for name, sha in manifest.files.items() if not name.endswith(".png")}
    return result(
        path=out,
        digest=content_hash(content),
        metadata={
            **tool_counts,
            "collections": manifest.n_collections,
            "dependency_edges": manifest.n_edges,
            "dependency_edges_by_embedding": manifest.n_embedding_edges,
            "edge_matcher": manifest.edge_matcher,
            "initial_states": config.n_states,
            "pass_rate": float(manifest.pass_rate),
            "generator": manifest.generator,
            "policy_generator": json.loads((out / "policy.json").read_text("utf-8"))["generator"],
            "generator_attempts": dg.MetadataValue.json(manifest.generator_attempts),
            "dependency_graph": picture(out / "dependency_graph.png", f"dependency graph of {domain_id}"),
            "tool_kinds": dg.MetadataValue.md(kinds_markdown(manifest.tool_kinds, manifest.failed_properties)),
            "policy": dg.MetadataValue.md((out / (manifest.policy_file or "policy.md")).read_text("utf-8")),
        },
        checks=[
            dg.AssetCheckResult(
                check_name="environment_validation",
                passed=bool(manifest.usable),
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{domain_id}: validation pass rate {manifest.pass_rate:.2f} (floor {config.min_pass_rate:.2f}), "
                            f"{len(manifest.failed_properties)} tools failing their kind's contract",
                metadata={
                    "pass_rate": float(manifest.pass_rate), "min_pass_rate": config.min_pass_rate,
                    "skipped_tools": len(manifest.skipped_tools), "semantic_valid": manifest.semantic_valid,
                    "tools_failing_semantics": len(manifest.failed_properties),
                    "failed_properties": dg.MetadataValue.json(manifest.failed_properties),
                    "tool_kinds": dg.MetadataValue.md(kinds_markdown(manifest.tool_kinds, manifest.failed_properties)),
                },
            )
        ],
    )
