"""SFT records from filtered trajectories, their JSONL file, and the loss mask.

The paper trains only on the assistant's tool calls and replies: system prompt, user turns and tool
outputs are context, so their labels are -100. The mask is found by rendering the conversation turn by
turn with the chat template (each assistant turn is the text between the generation prompt before it and
the end of its turn), then tokenising the full text once and labelling the tokens whose characters lie in
an assistant span - so a token merge at a turn boundary can never shift the mask.
"""

from __future__ import annotations

import json
from pathlib import Path

from agentscaler_dagster.artifacts import read_model_jsonl, write_jsonl
from agentscaler_dagster.contracts import SFTRecord, Trajectory, canonical_json
from agentscaler_dagster.sft.chat_template import normalize_messages, render

IGNORE_INDEX = -100


def build_sft_records(
    trajectories: list[Trajectory],
    tools_by_domain: dict[str, list[dict]],
    *,
    phase: int,
    skipped: list[dict] | None = None,
) -> list[SFTRecord]:
    """One SFT record per usable trajectory, in input order.

    A trajectory is skipped (and reported in ``skipped`` as ``{"trajectory_id", "reason"}`` when a list
    is given) when its domain has no tools, it has no assistant turn, or a message cannot be rendered;
    the other trajectories still become records.
    """
    if phase not in (1, 2):
        raise ValueError(f"phase must be 1 (general domains) or 2 (vertical domains), got {phase!r}")
    records: list[SFTRecord] = []
    for trajectory in trajectories:
        trajectory_id = getattr(trajectory, "trajectory_id", None)
        try:
            tools = tools_by_domain.get(trajectory.domain_id)
            if tools is None:
                known = ", ".join(sorted(tools_by_domain)[:10]) or "none"
                raise ValueError(f"no tools for domain {trajectory.domain_id!r} (domains with tools: {known})")
            shown = set(getattr(trajectory, "tool_names", None) or ())
            if shown:
                # the record's prompt is the one the agent saw: the task's prompt_tools, not the whole domain
                tools = [tool for tool in tools if tool["function"]["name"] in shown]
            messages = normalize_messages(trajectory.messages)
            if not any(m["role"] == "assistant" for m in messages):
                raise ValueError("no assistant turn to learn from")
            records.append(
                SFTRecord(
                    messages=messages,
                    tools=[json.loads(canonical_json(tool)) for tool in tools],
                    phase=phase,
                    domain_id=trajectory.domain_id,
                    trajectory_id=trajectory_id,
                )
            )
        except (ValueError, AttributeError, TypeError) as exc:
            if skipped is not None:
                skipped.append({"trajectory_id": trajectory_id, "reason": str(exc)})
    return records


def write_sft_dataset(records: list[SFTRecord], path: Path) -> Path:
    """JSONL, one record a line: ``{"messages", "tools", "phase", "domain_id", "trajectory_id"}``."""
    # atomic and sealed (artifacts.write_jsonl): read_sft_dataset refuses the file if it is cut short or edited
    return write_jsonl(path, (record.model_dump(mode="json") for record in records))


def read_sft_dataset(path: Path) -> list[SFTRecord]:
    """Read a JSONL written by ``write_sft_dataset``; a bad line raises naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SFT dataset {path} does not exist; write it with write_sft_dataset")
    return read_model_jsonl(path, SFTRecord, "an SFT record")


def assistant_spans(record: SFTRecord | dict, tokenizer) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant turn in it."""
    messages = record["messages"] if isinstance(record, dict) else record.messages
    tools = (record["tools"] if isinstance(record, dict) else record.tools) or None
    full = render(tokenizer, messages, tools)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:index], tools, add_generation_prompt=True)
        through = render(tokenizer, messages[: index + 1], tools)
        if not through.startswith(before) or not full.startswith(through):
            raise ValueError(
                f"chat template is not prefix-stable at message {index}; the loss mask needs a template whose "
                "rendering of a conversation prefix is a prefix of the whole rendering"
            )
        spans.append((len(before), len(through)))
    return full, spans


def tokenize_for_sft(record: SFTRecord | dict, tokenizer, max_length: int) -> dict:
    """``{"input_ids", "labels", "attention_mask"}`` (lists), truncated on the right to ``max_length``.

    Labels equal the input ids on the assistant's turns (text, tool-call lines and the closing
    ``<end_of_turn>``) and are -100 everywhere else.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    text, spans = assistant_spans(record, tokenizer)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])[:max_length]
    offsets = list(encoded["offset_mapping"])[:max_length]
    labels = []
    for token_id, (start, end) in zip(input_ids, offsets):
        inside = any(lo <= start < hi for lo, hi in spans) and end > start
        labels.append(token_id if inside else IGNORE_INDEX)
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}
