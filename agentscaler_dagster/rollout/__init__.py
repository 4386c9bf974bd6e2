"""Agent experience: simulated user-agent episodes on a domain's environment (paper, step 5)."""

from agentscaler_dagster.rollout.episode import (
    TERMINATIONS,
    AgentOutputError,
    EnvironmentPool,
    arun_episode,
    backend_failed,
    episode_seed,
    read_trajectories,
    run_episode,
    run_rollouts,
    trajectory_id,
    write_trajectories,
)
from agentscaler_dagster.rollout.protocols import AgentPolicy, UserSimulator
from agentscaler_dagster.rollout.simulators import (
    MISTAKE_KINDS,
    RECOVERED,
    STOP_MARKER,
    OracleAgentSimulator,
    ScenarioUserSimulator,
    scenario_of,
)

__all__ = [
    "MISTAKE_KINDS",
    "STOP_MARKER",
    "TERMINATIONS",
    "AgentOutputError",
    "AgentPolicy",
    "EnvironmentPool",
    "OracleAgentSimulator",
    "RECOVERED",
    "ScenarioUserSimulator",
    "UserSimulator",
    "arun_episode",
    "backend_failed",
    "episode_seed",
    "read_trajectories",
    "scenario_of",
    "run_episode",
    "run_rollouts",
    "trajectory_id",
    "write_trajectories",
]
