"""Sequence packing (issue 13 item 4): several records in one row, each one seeing only itself.

Real parts: the real Gemma 3 tokenizer and chat template, a tiny randomly initialised Gemma3ForCausalLM with
the same architecture as the 270M (sliding-window and full-attention layers; the records here are longer
than its 128-token window, so the sliding masks are exercised), sdpa attention as in training.
"""

from __future__ import annotations

import random

import pytest
import torch

from agentscaler_dagster.sft.base_model import prepare_base_model
from agentscaler_dagster.sft.records import IGNORE_INDEX, build_sft_records, tokenize_for_sft
from agentscaler_dagster.sft.train import _assistant_token_loss_module, collate_rows, pack_rows
from test_sft import TOOLS, trajectory


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = prepare_base_model(tmp_path_factory.mktemp("tiny") / "base", source="tiny", seed=0)
    model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa", dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(path))


def _examples(tokenizer, count: int) -> list[dict]:
    """Records of different lengths: i extra user/assistant exchanges after the tool call."""
    examples = []
    for i in range(count):
        record = build_sft_records([trajectory(i + 1)], {"shop": TOOLS}, phase=1)[0]
        for j in range(i):
            record.messages += [{"role": "user", "content": f"And what about parcel number {j} of order W{i}?"},
                                {"role": "assistant", "content": f"Parcel {j} left the warehouse on day {j + 3}."}]
        examples.append(tokenize_for_sft(record, tokenizer, 4096))
    return examples


def _hidden(model, batch: dict) -> torch.Tensor:
    # use_cache=False as in training: with a KV cache transformers does not look for packed rows
    with torch.no_grad():
        return model.model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).last_hidden_state


def test_pack_rows_is_first_fit_deterministic_and_complete():
    rng = random.Random(3)
    lengths = [rng.randint(50, 900) for _ in range(200)]
    rows = pack_rows(lengths, 1024, seed=5, packing=True)
    assert rows == pack_rows(lengths, 1024, seed=5, packing=True)
    assert sorted(i for row in rows for i in row) == list(range(200))  # every example exactly once
    assert all(sum(lengths[i] for i in row) <= 1024 for row in rows)
    assert len(rows) < 0.7 * len(lengths)  # rows are shared
    assert len(rows) <= -(-sum(lengths) // 1024) * 1.15  # first-fit: close to the lower bound
    assert [len(r) for r in pack_rows(lengths, 1024, seed=5, packing=False)] == [1] * 200
    assert pack_rows(lengths, 1024, seed=6, packing=True) != rows


def test_packed_row_equals_the_records_alone_and_attends_within_each(tiny):
    model, tokenizer = tiny
    a, b, c = _examples(tokenizer, 3)
    assert min(len(a["input_ids"]), len(b["input_ids"]), len(c["input_ids"])) > model.config.sliding_window
    packed = collate_rows([[a, b, c]], pad_id=0, packing=True)
    assert "attention_mask" not in packed
    lengths = [len(e["input_ids"]) for e in (a, b, c)]
    starts = [0, lengths[0], lengths[0] + lengths[1]]
    positions = packed["position_ids"][0].tolist()
    assert [positions[s] for s in starts] == [0, 0, 0] and positions[starts[1] - 1] == lengths[0] - 1

    together = _hidden(model, packed)[0]
    for example, start, length in zip((a, b, c), starts, lengths):
        alone = _hidden(model, collate_rows([[example]], pad_id=0, packing=False))[0]
        assert torch.allclose(together[start : start + length], alone, atol=1e-4), "a packed record saw another one"

    # nothing of record a reaches record b or c: change a's tokens, the rest of the row stays the same
    changed = packed["input_ids"].clone()
    changed[0, 1 : lengths[0]] = torch.randint(1000, 2000, (lengths[0] - 1,))
    other = _hidden(model, {**packed, "input_ids": changed})[0]
    assert not torch.allclose(other[: lengths[0]], together[: lengths[0]])
    assert torch.allclose(other[lengths[0] :], together[lengths[0] :], atol=1e-5)

    # without the position ids the same row would be one long causal sequence: record b would see a
    leaky = _hidden(model, {"input_ids": packed["input_ids"]})[0]
    assert not torch.allclose(leaky[starts[1] : starts[1] + lengths[1]], together[starts[1] : starts[1] + lengths[1]], atol=1e-3)


def test_packed_loss_is_the_token_weighted_loss_of_the_records_on_assistant_tokens_only(tiny):
    model, tokenizer = tiny
    a, b, c = _examples(tokenizer, 3)
    loss = _assistant_token_loss_module(model)
    with torch.no_grad():
        packed = float(loss(**collate_rows([[a, b, c]], pad_id=0, packing=True)))
        separate = [(float(model(**{k: torch.tensor([v]) for k, v in e.items()}).loss),
                     sum(label != IGNORE_INDEX for label in e["labels"][1:])) for e in (a, b, c)]
    weighted = sum(value * n for value, n in separate) / sum(n for _, n in separate)
    assert packed == pytest.approx(weighted, abs=1e-4)

    # a label on a record's first token would be predicted from the previous record: it is never scored
    b_first = {**b, "labels": [b["input_ids"][0]] + b["labels"][1:]}
    with torch.no_grad():
        assert float(loss(**collate_rows([[a, b_first, c]], pad_id=0, packing=True))) == pytest.approx(packed, abs=1e-6)

    # two rows of different lengths in one micro-batch: the short one is padded with an unlabelled block
    batch = collate_rows([[a, b], [c]], pad_id=0, packing=True)
    assert batch["input_ids"].shape[1] == len(a["input_ids"]) + len(b["input_ids"])
    pad_start = len(c["input_ids"])
    assert (batch["labels"][1, pad_start:] == IGNORE_INDEX).all() and batch["position_ids"][1, pad_start] == 0
    rows_hidden = _hidden(model, batch)
    alone = _hidden(model, collate_rows([[c]], pad_id=0, packing=False))[0]
    assert torch.allclose(rows_hidden[1, :pad_start], alone, atol=1e-4)
    with torch.no_grad():
        two_rows = float(loss(**batch))
    assert two_rows == pytest.approx(weighted, abs=1e-4)
