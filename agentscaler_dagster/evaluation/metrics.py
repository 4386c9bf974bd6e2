"""Judging an episode against its task, and pass^k (tau-bench)."""

from __future__ import annotations

import json
from math import comb

from typing import Collection

from agentscaler_dagster.contracts import Task, Trajectory
from agentscaler_dagster.judge import judge


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """Unbiased estimate of the probability that k i.i.d. trials of a task all succeed: C(c,k) / C(n,k)."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must lie in [0, {trials}], got {successes}")
    if not 1 <= k <= trials:
        raise ValueError(f"k must lie in [1, trials={trials}], got {k}: run at least k trials per task")
    return comb(successes, k) / comb(trials, k)


def mean_pass_hat_k(successes_per_task: list[int], trials: int, k: int) -> float:
    """pass^k averaged over tasks (each task run ``trials`` times)."""
    if not successes_per_task:
        return 0.0
    return sum(pass_hat_k(c, trials, k) for c in successes_per_task) / len(successes_per_task)


def tool_calls_of(messages: list[dict]) -> list[dict]:
    """The agent's tool calls in order, as ``{"name", "arguments"}`` (argument text parsed when it is JSON)."""
    calls = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            fn = call.get("function", call)
            arguments = fn.get("arguments", {})
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except json.JSONDecodeError:
                    pass
            calls.append({"name": fn.get("name"), "arguments": arguments})
    return calls


def judge_episode(task: Task, trajectory: Trajectory, *, write_tools: Collection[str] | None = None) -> dict:
    """``{"success", "state_match", "exact_match", "outputs_communicated", "reason"}`` from the one judge
    (``agentscaler_dagster.judge``), the same verdict the filter keeps trajectories by."""
    return judge(task, trajectory, write_tools=write_tools).as_dict()
