"""Programmatic materialisation of a domain's environment (paper section: environment construction).

Schema from the tools' parameters, a directed tool dependency graph, tool code, diverse initial states,
validation in the sandbox, all written as one package folder per domain (see package.py).
"""

from agentscaler_dagster.envgen.codegen import CodeGenerator, ProgrammaticCodeGenerator
from agentscaler_dagster.envgen.depgraph import build_dependency_graph, graph_to_json
from agentscaler_dagster.envgen.fieldmatch import FieldMatcher
from agentscaler_dagster.envgen.package import (
    EnvironmentManifest, build_environment, build_environment_from_snapshot,
)
from agentscaler_dagster.envgen.schema import derive_schema, infer_snapshot_schema
from agentscaler_dagster.envgen.states import generate_states, state_problems
from agentscaler_dagster.envgen.validation import (
    ToolCheck, ValidationReport, default_value, sample_arguments, validate_environment, validate_parts,
)

__all__ = [
    "CodeGenerator", "EnvironmentManifest", "FieldMatcher", "ProgrammaticCodeGenerator", "ToolCheck", "ValidationReport",
    "build_dependency_graph", "build_environment", "build_environment_from_snapshot", "default_value",
    "derive_schema", "generate_states", "graph_to_json", "infer_snapshot_schema", "sample_arguments",
    "state_problems", "validate_environment", "validate_parts",
]
