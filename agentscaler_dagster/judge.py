"""The one judge: did an episode do what its task asked? The filter and the evaluation both ask it.

An episode succeeds when all of these hold (tau-bench / tau2-bench semantics, the paper's three checks):

1. **State**: the final state hash equals the gold state hash (a read-only task's gold state is its
   initial state, so a stray write fails here).
2. **Actions**: the agent's *successful* tool calls match the gold actions under this normalisation:
   - calls whose tool message is an error (``Error...``) are left out: the paper keeps trajectories with
     tool errors, and a failed call leaves the state unchanged, so an agent that recovers still matches;
   - arguments compare as canonical JSON after two normalisations: a float with an integral value equals
     the integer, and a top-level ``null`` argument equals an absent one;
   - writes must equal the gold writes, in order; lookups (read tools) must equal the gold lookups as a
     multiset, in any order and anywhere in the episode. A skipped, extra or wrong call of either kind fails.
   Which tools write comes from the environment (``write_tools``); without it every call counts as a write,
   the strictest reading (the whole sequence must match in order).
3. **Outputs**: every expected output of the task (what the agent must tell the user) appears in an
   assistant message as a whole word or phrase, compared case-insensitively with whitespace collapsed
   (``12`` is not found in ``120``). Tasks without expected outputs pass this check.
4. **Policy**: on a task whose request the policy forbids (``task.policy_rule``), no writing tool was even
   called (a refused attempt is still a violation: the agent must refuse without trying); and every call
   of a tool the policy says needs the user's explicit yes (``task.confirm_tools``) follows a user
   message that is a yes (``is_affirmative``), one yes per write (a call the tool refused does not use it up).

The paper's three filter stages map onto these: validity (the filter's own stage 1), environment-state
alignment (check 1), function-calling exact match (checks 2-4).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Collection, Iterable

from agentscaler_dagster.contracts import GoldAction, Task, Trajectory, canonical_json

Call = tuple[str, str]  # (tool name, canonical arguments)


_YES = re.compile(r"^\W*(yes|yeah|yep|sure|ok|okay|correct|confirmed?|please (do|go ahead|proceed)|go ahead|"
                  r"that's right|that is right|do it)\b", re.I)
_NO = re.compile(r"^\W*(no|nope|don't|do not|wait|stop|cancel that)\b", re.I)


def is_affirmative(text: str) -> bool:
    """A user's explicit yes: the message starts with one (``Yes, please go ahead.``)."""
    return bool(_YES.search(text or "")) and not _NO.search(text or "")


def is_negative(text: str) -> bool:
    return bool(_NO.search(text or ""))


@dataclass(frozen=True)
class Verdict:
    state_match: bool
    actions_match: bool
    outputs_communicated: bool
    policy_followed: bool = True
    reason: str | None = None  # the first check that failed, in words; None on success

    @property
    def success(self) -> bool:
        return self.state_match and self.actions_match and self.outputs_communicated and self.policy_followed

    def as_dict(self) -> dict:
        return {"success": self.success, "state_match": self.state_match, "exact_match": self.actions_match,
                "outputs_communicated": self.outputs_communicated, "policy_followed": self.policy_followed,
                "reason": self.reason}


def canonical_arguments(arguments: Any) -> str:
    if isinstance(arguments, dict):
        arguments = {k: v for k, v in arguments.items() if v is not None}
    return canonical_json(_integral(arguments))


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def successful_calls(messages: list[dict]) -> list[Call]:
    """(name, canonical arguments) of each tool call whose tool message is not an error, in order."""
    results = {m.get("tool_call_id"): str(m.get("content", "")) for m in messages if m.get("role") == "tool"}
    calls = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        for tc in m.get("tool_calls") or []:
            content = results.get(tc.get("id"))
            if content is None or content.startswith("Error"):
                continue
            function = tc.get("function") or {}
            arguments = function.get("arguments") or "{}"
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except json.JSONDecodeError:
                    continue
            calls.append((function.get("name"), canonical_arguments(arguments)))
    return calls


def gold_calls(actions: Iterable[GoldAction]) -> list[Call]:
    return [(a.name, canonical_arguments(a.arguments)) for a in actions]


def _show(call: Call) -> str:
    return f"{call[0]} {call[1]}"


def compare_actions(made: list[Call], gold: list[Call], write_tools: Collection[str] | None) -> str | None:
    """Why the calls made do not match the gold calls; None when they do (see the module docstring)."""
    is_write = (lambda name: True) if write_tools is None else (lambda name: name in write_tools)
    word = "call" if write_tools is None else "write"  # without kinds, every call is held to its place
    made_writes = [c for c in made if is_write(c[0])]
    gold_writes = [c for c in gold if is_write(c[0])]
    for i, (got, want) in enumerate(zip(made_writes, gold_writes)):
        if got != want:
            return f"{word} {i}: expected {_show(want)}, got {_show(got)}"
    if len(made_writes) < len(gold_writes):
        return (f"{len(made_writes)} successful {word}s, gold has {len(gold_writes)}; "
                f"missing {_show(gold_writes[len(made_writes)])}")
    if len(made_writes) > len(gold_writes):
        return (f"{len(made_writes)} successful {word}s, gold has {len(gold_writes)}; "
                f"extra {_show(made_writes[len(gold_writes)])}")
    made_reads = Counter(c for c in made if not is_write(c[0]))
    gold_reads = Counter(c for c in gold if not is_write(c[0]))
    missing, extra = gold_reads - made_reads, made_reads - gold_reads
    if missing:
        return f"lookup missing: {_show(sorted(missing)[0])}"
    if extra:
        return f"lookup not in the gold actions: {_show(sorted(extra)[0])}"
    return None


def _normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def missing_outputs(messages: list[dict], expected: Iterable[Any]) -> list[str]:
    """The expected outputs no assistant message mentions (as a whole word or phrase)."""
    said = _normalise_text(" ".join(str(m.get("content") or "") for m in messages if m.get("role") == "assistant"))
    return [str(e) for e in expected
            if re.search(r"(?<!\w)" + re.escape(_normalise_text(str(e))) + r"(?!\w)", said) is None]


def policy_violation(task: Task, messages: list[dict], write_tools: Collection[str] | None) -> str | None:
    """Why the episode broke the domain policy (check 4 of the module docstring); None when it did not."""
    confirm = set(task.confirm_tools)
    failed = {m.get("tool_call_id") for m in messages if m.get("role") == "tool" and str(m.get("content", "")).startswith("Error")}
    last_user, yes_used = "", True
    for m in messages:
        if m.get("role") == "user":
            last_user, yes_used = str(m.get("content") or ""), False
            continue
        if m.get("role") != "assistant":
            continue
        for tc in m.get("tool_calls") or []:
            name = (tc.get("function") or {}).get("name")
            writes = name in write_tools if write_tools is not None else name in confirm
            if task.policy_rule and writes:
                return f"called {name} although the policy forbids the request ({task.policy_rule}): it must refuse"
            if name in confirm:
                if yes_used or not is_affirmative(last_user):
                    return f"called {name} without the user's explicit yes first (the policy asks for one)"
                yes_used = tc.get("id") not in failed  # a call the tool refused may be retried under the same yes
    return None


def judge(task: Task, trajectory: Trajectory, *, write_tools: Collection[str] | None = None) -> Verdict:
    """The verdict on one episode of ``task``; ``write_tools`` are the environment's writing tools."""
    state_match = trajectory.final_state_hash == task.gold_state_hash
    reason = None
    if not state_match:
        what = "a read-only task changed the state" if task.read_only else "final state differs from the gold state"
        if trajectory.final_state_hash == task.initial_state_hash and not task.read_only:
            what = "the state was never changed, but the task changes it"
        reason = f"{what} (final {trajectory.final_state_hash[:12]}, gold {task.gold_state_hash[:12]})"
    mismatch = compare_actions(successful_calls(trajectory.messages), gold_calls(task.gold_actions), write_tools)
    reason = reason or mismatch
    unsaid = missing_outputs(trajectory.messages, task.expected_outputs)
    if unsaid and reason is None:
        reason = f"expected output not communicated: {unsaid[0]!r}"
    broken = policy_violation(task, trajectory.messages, write_tools)
    reason = reason or broken
    return Verdict(state_match=state_match, actions_match=mismatch is None, outputs_communicated=not unsaid,
                   policy_followed=broken is None, reason=reason)
