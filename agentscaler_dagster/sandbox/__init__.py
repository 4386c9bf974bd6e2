"""Sandboxed runtime for generated tool code: static check, isolated worker, environment serving."""

from agentscaler_dagster.contracts import state_hash
from agentscaler_dagster.sandbox.argcheck import check_arguments, check_value
from agentscaler_dagster.sandbox.environment import Environment, Session, ToolCallResult, copy_state
from agentscaler_dagster.sandbox.jail import SandboxUnavailable
from agentscaler_dagster.sandbox.runtime import Limits, ModuleRejected, RawResult, Runtime, module_id
from agentscaler_dagster.sandbox.static_check import ALLOWED_MODULES, check_module, tool_functions

__all__ = [
    "ALLOWED_MODULES", "Environment", "Limits", "ModuleRejected", "RawResult", "Runtime", "SandboxUnavailable", "Session",
    "ToolCallResult", "check_arguments", "check_module", "check_value", "copy_state", "module_id",
    "state_hash", "tool_functions",
]
