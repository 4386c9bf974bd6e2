"""The `environment` asset on one domain: its blocking check reports the semantic validation, its metadata the
tool kinds table and the policy.

Real: a Dagster instance (temporary), the asset materialised through `dg.materialize` with the project's
resources (programmatic LLM endpoint, artifact store on a temporary root), envgen and the sandbox runtime.
"""

from __future__ import annotations

import dagster as dg
from test_envgen_semantics import KINDS, write_inputs

from agentscaler_dagster.assets.environment import environment
from agentscaler_dagster.resources import ArtifactStore, LlamaCppServer, LLMEndpoint, VLLMServer


def test_environment_asset_reports_semantics_kinds_and_policy(tmp_path):
    write_inputs(tmp_path)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("domain", ["shop"])
        result = dg.materialize(
            [environment], partition_key="shop", instance=instance,
            resources={"artifacts": ArtifactStore(root=str(tmp_path)), "llm": LLMEndpoint(),
                       "vllm_server": VLLMServer(), "llamacpp_server": LlamaCppServer()},
            run_config={"ops": {"environment": {"config": {"edge_embedder": "hashing"}}}},
        )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "environment_validation" and check.passed
    assert check.metadata["semantic_valid"].value is True
    assert check.metadata["tools_failing_semantics"].value == 0
    (mat,) = result.asset_materializations_for_node("environment")
    table = mat.metadata["tool_kinds"].value
    for tool, kind in KINDS.items():
        assert f"| `{tool}` | {kind} | pass |" in table
    assert mat.metadata["policy"].value.startswith("# Policy: shop orders")
    assert "`cancel_order` sets an order's order_status to 'cancelled'" in mat.metadata["policy"].value
