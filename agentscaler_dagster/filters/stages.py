"""The three-stage trajectory filter (paper, step 6), applied in the paper's order.

1. **Validity control.** The episode finished (``termination == "user_stop"``) and its messages are
   a well-formed dialogue: an optional system message first, then a user message; an assistant
   message only after a user or tool message; every tool message answers a tool call of the
   assistant message before it, and every tool call is answered before the dialogue goes on; tool
   call arguments are JSON objects; the dialogue ends with an assistant reply or the user's stop
   message. No assistant message may repeat itself severely: a word n-gram (``ngram_n``, default
   4, lower-cased ``\\w+`` tokens) occurring more than ``max_ngram_repeat`` times (default 3) in one
   message is the degenerate loop of a sampling failure; a 4-gram said four times in one reply is
   rare in a sound answer, and repetition across different turns (a closing question) is allowed.
2. **Environment state alignment.** The final state hash equals the gold state hash. This applies
   to read-only tasks too: their gold state is the initial state, so a stray write fails here.
3. **Function-calling exact match.** The successful tool calls match the gold actions (writes in order,
   lookups in any order) and every expected output was told to the user.

Stages 2 and 3 are the one judge's checks (``agentscaler_dagster.judge``), which the evaluation uses too:
a kept trajectory is exactly one the evaluation would count as a success.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Collection, Iterable

from agentscaler_dagster.contracts import Task, Trajectory
from agentscaler_dagster.judge import judge

STAGES = ("validity", "state_alignment", "exact_match")
STOP_MARKER = "###STOP###"
_ROLES = {"system", "user", "assistant", "tool"}


@dataclass
class FilterResult:
    kept: list[Trajectory] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (trajectory_id, stage, reason)
    funnel: dict[str, int] = field(default_factory=dict)

    def rejected_at(self, stage: str) -> list[tuple[str, str, str]]:
        return [r for r in self.rejected if r[1] == stage]


def apply_filters(
    trajectories: Iterable[Trajectory],
    tasks_by_id: dict[str, Task],
    *,
    ngram_n: int = 4,
    max_ngram_repeat: int = 3,
    write_tools: Collection[str] | None = None,
) -> FilterResult:
    """Run the three stages; a trajectory leaves at the first stage it fails.

    ``write_tools`` are the environment's writing tools (lookups may then come in any order); without them
    the whole call sequence must match in order.
    """
    if ngram_n < 1 or max_ngram_repeat < 1:
        raise ValueError(f"ngram_n and max_ngram_repeat must be >= 1, got {ngram_n}, {max_ngram_repeat}")
    result = FilterResult()
    passed = {stage: 0 for stage in STAGES}
    n_input = 0
    for trajectory in trajectories:
        n_input += 1
        task = tasks_by_id.get(trajectory.task_id)
        checks = (
            ("validity", lambda: _unknown_task(trajectory, task) or check_validity(trajectory, ngram_n=ngram_n, max_ngram_repeat=max_ngram_repeat)),
            ("state_alignment", lambda: check_state_alignment(trajectory, task)),
            ("exact_match", lambda: check_exact_match(trajectory, task, write_tools=write_tools)),
        )
        for stage, check in checks:
            reason = check()
            if reason is not None:
                result.rejected.append((trajectory.trajectory_id, stage, reason))
                break
            passed[stage] += 1
        else:
            result.kept.append(trajectory)
    result.funnel = {"input": n_input, **passed}
    return result


def _unknown_task(trajectory: Trajectory, task: Task | None) -> str | None:
    if task is None:
        return f"task {trajectory.task_id} is not among the given tasks"
    return None


# ---- stage 1 ---------------------------------------------------------------------------------


def check_validity(trajectory: Trajectory, *, ngram_n: int = 4, max_ngram_repeat: int = 3) -> str | None:
    """The reason the trajectory is not a valid, finished dialogue; None when it is."""
    if trajectory.termination != "user_stop":
        detail = f": {trajectory.error}" if trajectory.error else ""
        return f"episode did not finish (termination={trajectory.termination}{detail})"
    reason = check_structure(trajectory.messages)
    if reason:
        return reason
    for k, m in enumerate(trajectory.messages):
        if m.get("role") == "assistant" and m.get("content"):
            gram, count = most_repeated_ngram(m["content"], ngram_n)
            if count > max_ngram_repeat:
                return (
                    f"assistant message {k} repeats the {ngram_n}-gram '{gram}' {count} times "
                    f"(at most {max_ngram_repeat} allowed)"
                )
    return None


def check_structure(messages: list[dict]) -> str | None:
    """Well-formed alternation of an OpenAI-format dialogue; the reason when it is not."""
    if not messages:
        return "no messages"
    pending: list[str] = []
    prev = None
    for k, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in _ROLES:
            return f"message {k} has role {role!r}; expected one of {sorted(_ROLES)}"
        if role == "system":
            if k != 0:
                return f"system message at position {k}; only the first message may be a system message"
        elif role == "user":
            if pending:
                return f"user message {k} while tool calls {pending} are unanswered"
            if prev == "user":
                return f"two user messages in a row at {k}"
            if prev == "tool":
                return f"user message {k} right after a tool output; the assistant must answer first"
            if not isinstance(m.get("content"), str) or not m["content"].strip():
                return f"user message {k} has no text"
        elif role == "assistant":
            if prev not in ("user", "tool"):
                return f"assistant message {k} follows {prev or 'nothing'}; it must follow a user or tool message"
            if pending:
                return f"assistant message {k} while tool calls {pending} are unanswered"
            reason = _check_assistant(k, m)
            if reason:
                return reason
            pending = [tc["id"] for tc in m.get("tool_calls") or []]
        else:  # tool
            if m.get("tool_call_id") not in pending:
                return f"tool message {k} answers {m.get('tool_call_id')!r}, which is not an open tool call"
            pending.remove(m["tool_call_id"])
            if not isinstance(m.get("content"), str):
                return f"tool message {k} content is not text"
        if role != "system":
            prev = role
    if pending:
        return f"tool calls {pending} are never answered"
    last = messages[-1]
    if last.get("role") == "assistant" and not last.get("tool_calls"):
        return None
    if last.get("role") == "user" and STOP_MARKER in str(last.get("content", "")):
        return None
    return f"dialogue ends with a {last.get('role')} message; it must end with an assistant reply or the user's stop"


def _check_assistant(k: int, m: dict) -> str | None:
    seen_ids: set[str] = set()
    calls = m.get("tool_calls") or []
    content = m.get("content")
    if content is not None and not isinstance(content, str):
        return f"assistant message {k} content is not text"
    if not calls and not (content or "").strip():
        return f"assistant message {k} is empty (no text, no tool calls)"
    for i, tc in enumerate(calls):
        function = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            return f"assistant message {k} tool call {i} has no function name"
        call_id = tc.get("id")
        if not isinstance(call_id, str) or not call_id:
            return f"assistant message {k} tool call {i} has no id"
        # ids must tell apart the calls awaiting answers; a later turn may reuse one (some servers do)
        if call_id in seen_ids:
            return f"assistant message {k} has two tool calls with id {call_id!r}"
        seen_ids.add(call_id)
        try:
            arguments = json.loads(function.get("arguments") or "")
        except (json.JSONDecodeError, TypeError):
            return f"assistant message {k} tool call {i} ({function['name']}) arguments are not valid JSON"
        if not isinstance(arguments, dict):
            return f"assistant message {k} tool call {i} ({function['name']}) arguments are not a JSON object"
    return None


def most_repeated_ngram(text: str, n: int) -> tuple[str, int]:
    tokens = re.findall(r"\w+", text.lower())
    if len(tokens) < n:
        return "", 0
    counts = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    gram, count = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return " ".join(gram), count


# ---- stages 2 and 3: the judge ---------------------------------------------------------------


def check_state_alignment(trajectory: Trajectory, task: Task) -> str | None:
    verdict = judge(task, trajectory)
    return None if verdict.state_match else verdict.reason


def check_exact_match(trajectory: Trajectory, task: Task, *, write_tools: Collection[str] | None = None) -> str | None:
    verdict = judge(task, trajectory, write_tools=write_tools)
    return None if verdict.success else verdict.reason


# ---- how well the funnel finds the injected mistakes --------------------------------------------


def injected_error_scores(trajectories: Iterable[Trajectory], result: FilterResult,
                          recovered: Collection[str] = ("recovered_wrong_argument",)) -> dict:
    """Precision and recall of the funnel against the mistakes the oracle agent injected.

    Ground truth: a trajectory is wrong when its ``agent_mistakes`` hold a kind not in ``recovered`` (a
    recovered mistake - a wrong call the tool refused, then the right one - is a correct trajectory). For
    each stage the prediction is "rejected at this stage or an earlier one", so the last stage's numbers are
    the whole funnel's. ``by_kind`` gives each mistake kind's recall and the stage that caught it.
    """
    stage_of = {tid: stage for tid, stage, _ in result.rejected}
    truth: dict[str, list[str]] = {}
    for t in trajectories:
        truth[t.trajectory_id] = [k for k in (getattr(t, "agent_mistakes", None) or []) if k not in recovered]
    scores: dict = {"trajectories": len(truth), "with_errors": sum(bool(v) for v in truth.values())}
    for i, stage in enumerate(STAGES):
        caught = {tid for tid, s in stage_of.items() if STAGES.index(s) <= i}
        tp = sum(1 for tid in caught if truth.get(tid))
        fp = sum(1 for tid in caught if tid in truth and not truth[tid])
        fn = sum(1 for tid, kinds in truth.items() if kinds and tid not in caught)
        scores[stage] = {"true_positives": tp, "false_positives": fp, "false_negatives": fn,
                         "precision": round(tp / (tp + fp), 4) if tp + fp else None,
                         "recall": round(tp / (tp + fn), 4) if tp + fn else None}
    by_kind: dict[str, dict] = {}
    for tid, kinds in truth.items():
        for kind in kinds:
            row = by_kind.setdefault(kind, {"injected": 0, "caught": 0, "caught_at": {}})
            row["injected"] += 1
            if tid in stage_of:
                row["caught"] += 1
                row["caught_at"][stage_of[tid]] = row["caught_at"].get(stage_of[tid], 0) + 1
    for row in by_kind.values():
        row["recall"] = round(row["caught"] / row["injected"], 4)
    scores["by_kind"] = {k: by_kind[k] for k in sorted(by_kind)}
    return scores
