"""Task construction: directed random walks on a domain's dependency graph (paper, step 4)."""

from agentscaler_dagster.tasks.environment import (
    EnvironmentLike,
    ToolCallResultLike,
    domain_instructions,
    policy_of,
)
from agentscaler_dagster.tasks.policy import policy_tasks, refusal_count
from agentscaler_dagster.tasks.sampling import (
    describe_action,
    humanise,
    read_tasks,
    sample_tasks,
    summarise_tasks,
    user_intent,
    with_prompt_tools,
    write_tasks,
)

__all__ = [
    "EnvironmentLike",
    "ToolCallResultLike",
    "describe_action",
    "domain_instructions",
    "humanise",
    "policy_of",
    "policy_tasks",
    "read_tasks",
    "refusal_count",
    "sample_tasks",
    "summarise_tasks",
    "user_intent",
    "with_prompt_tools",
    "write_tasks",
]
