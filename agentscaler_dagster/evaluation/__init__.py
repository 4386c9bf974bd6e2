"""Evaluation (pipeline step 8): held-out tasks, pass^k, fine-tuned vs base."""

from agentscaler_dagster.evaluation.agent import TransformersAgent
from agentscaler_dagster.evaluation.evaluate import EpisodeResult, EvalReport, ModelEval, episode_seed, evaluate, write_report
from agentscaler_dagster.evaluation.metrics import judge_episode, mean_pass_hat_k, pass_hat_k, tool_calls_of

__all__ = [
    "EpisodeResult",
    "EvalReport",
    "ModelEval",
    "TransformersAgent",
    "episode_seed",
    "evaluate",
    "judge_episode",
    "mean_pass_hat_k",
    "pass_hat_k",
    "tool_calls_of",
    "write_report",
]
