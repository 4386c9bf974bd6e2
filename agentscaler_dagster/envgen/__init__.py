"""Programmatic materialisation of a domain's environment (paper section: environment construction).

Schema from the tools' parameters, a kind per tool (kinds.py) and tool code that does what the kind says,
a directed tool dependency graph, diverse coherent initial states, a policy document (policy.py), validation
in the sandbox by the properties of each kind (semantics.py), all written as one package folder per domain
(see package.py).
"""

from agentscaler_dagster.envgen.codegen import CodeGenerator, ProgrammaticCodeGenerator
from agentscaler_dagster.envgen.depgraph import build_dependency_graph, graph_to_json
from agentscaler_dagster.envgen.fieldmatch import FieldMatcher
from agentscaler_dagster.envgen.kinds import KINDS, kinds_markdown
from agentscaler_dagster.envgen.package import (
    EnvironmentManifest,
    PackageManifest,
    build_environment,
    build_environment_from_snapshot,
)
from agentscaler_dagster.envgen.policy import build_policy
from agentscaler_dagster.envgen.schema import derive_schema, infer_snapshot_schema
from agentscaler_dagster.envgen.semantics import ToolSemantics, check_semantics
from agentscaler_dagster.envgen.states import generate_states, state_problems
from agentscaler_dagster.envgen.validation import (
    ToolCheck,
    ValidationReport,
    default_value,
    sample_arguments,
    validate_environment,
    validate_parts,
)

__all__ = [
    "KINDS",
    "CodeGenerator",
    "EnvironmentManifest",
    "FieldMatcher",
    "PackageManifest",
    "ProgrammaticCodeGenerator",
    "ToolCheck",
    "ToolSemantics",
    "ValidationReport",
    "build_dependency_graph",
    "build_environment",
    "build_environment_from_snapshot",
    "build_policy",
    "check_semantics",
    "default_value",
    "derive_schema",
    "generate_states",
    "graph_to_json",
    "infer_snapshot_schema",
    "kinds_markdown",
    "sample_arguments",
    "state_problems",
    "validate_environment",
    "validate_parts",
]
