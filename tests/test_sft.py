"""Two-phase SFT: base model, chat template, loss mask, the DeepSpeed recipe, configs.

Real parts: the real Gemma 3 tokenizer (converted from the packaged GGUF, cached), a tiny randomly
initialised Gemma3ForCausalLM, the real training entry point run as a subprocess with DeepSpeed on its
CPU accelerator. The real 270M conversion is the one ``slow`` test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import torch

from agentscaler_dagster.contracts import Trajectory
from agentscaler_dagster.sft.base_model import model_summary, prepare_base_model
from agentscaler_dagster.sft.chat_template import parse_assistant_output, render
from agentscaler_dagster.sft.records import (
    IGNORE_INDEX,
    build_sft_records,
    read_sft_dataset,
    tokenize_for_sft,
    write_sft_dataset,
)
from agentscaler_dagster.sft.train import ConfigError, SFTRecipe, TrainConfig, load_config, main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "agentscaler_dagster" / "sft" / "configs"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "Look up an order by id.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    }
]


def conversation(i: int = 1) -> list[dict]:
    return [
        {"role": "system", "content": "You are a shop agent."},
        {"role": "user", "content": f"Where is order W{i}?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_order", "arguments": f'{{"order_id": "W{i}"}}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": f"Order W{i} has shipped."},
    ]


def trajectory(i: int, domain: str = "shop") -> Trajectory:
    return Trajectory(
        trajectory_id=f"traj-{i}", task_id=f"task-{i}", domain_id=domain, trial=0, messages=conversation(i),
        final_state_hash="h", termination="user_stop", backend="test",
    )


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return prepare_base_model(tmp_path_factory.mktemp("tiny") / "base", source="tiny", seed=0)


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_dir))


# -- base model ---------------------------------------------------------------------------------------


def test_tiny_base_model_reloads_and_generates(tiny_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    names = {p.name for p in tiny_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", "generation_config.json"} <= names
    summary = model_summary(tiny_dir)
    assert summary["architecture"] == "Gemma3ForCausalLM"
    assert summary["vocab_size"] == len(tokenizer) == 262144
    assert summary["num_hidden_layers"] == 2 and summary["hidden_size"] == 64
    # tied lm_head is not stored twice: embeddings (262144 x 64) dominate the count
    assert 262144 * 64 < summary["params"] < 262144 * 64 * 1.1

    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    prompt = render(tokenizer, [{"role": "user", "content": "hi"}], add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 4 or out[0, -1].item() in (1, 106)

    # same seed -> same weights, byte for byte
    again = prepare_base_model(tiny_dir.parent / "again", source="tiny", seed=0)
    assert (again / "model.safetensors").read_bytes() == (tiny_dir / "model.safetensors").read_bytes()


def test_tool_signatures_keep_types_enums_defaults_and_optionality():
    from agentscaler_dagster.sft.chat_template import tool_signature

    tool = {"type": "function", "function": {
        "name": "update_ticket",
        "description": "Change a ticket. Only open tickets can change.",
        "parameters": {"type": "object", "required": ["ticket_id"], "properties": {
            "ticket_id": {"type": "string", "description": "long prose that the signature leaves out"},
            "priority": {"type": "integer", "minimum": 1, "default": 3},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "due": {"type": "string", "format": "date"},
        }},
    }}
    assert tool_signature(tool) == (
        'update_ticket(ticket_id: string, priority?: integer = 3, status?: "open"|"closed", tags?: list[string], '
        "due?: string(date)) - Change a ticket."
    )


def test_unknown_source_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown base model source 'llama'.*gemma3-270m, tiny"):
        prepare_base_model(tmp_path, source="llama")


# -- chat template ------------------------------------------------------------------------------------


def test_chat_template_renders_tools_calls_and_results(tokenizer):
    text = render(tokenizer, conversation(7), TOOLS)
    assert text.startswith("<bos><start_of_turn>user\nYou are a shop agent.\n\n")
    # tools in the first user turn, one compact signature line each
    assert "\nget_order(order_id: string) - Look up an order by id.\n\n" in text.split("Where is order W7?")[0]
    assert (
        "Where is order W7?<end_of_turn>\n<start_of_turn>model\n"
        '<tool_call>{"name": "get_order", "arguments": {"order_id": "W7"}}</tool_call><end_of_turn>\n'
        '<start_of_turn>user\n<tool_response>{"status": "shipped"}</tool_response><end_of_turn>\n'
        "<start_of_turn>model\nOrder W7 has shipped.<end_of_turn>\n"
    ) in text
    assert render(tokenizer, conversation(7)[:2], TOOLS, add_generation_prompt=True).endswith(
        "Where is order W7?<end_of_turn>\n<start_of_turn>model\n"
    )
    # parallel tool results share one user turn
    two = conversation(7)[:3] + [
        {"role": "tool", "content": "a"},
        {"role": "tool", "content": "b"},
    ]
    assert render(tokenizer, two).endswith(
        "<start_of_turn>user\n<tool_response>a</tool_response>\n<tool_response>b</tool_response><end_of_turn>\n"
    )


def test_assistant_turn_round_trips_through_parser(tokenizer):
    message = {
        "role": "assistant",
        "content": "Let me check both.",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_order", "arguments": {"order_id": "W1"}}},
            {"type": "function", "function": {"name": "cancel_order", "arguments": {"order_id": "W2", "reason": "no ñ"}}},
        ],
    }
    before = render(tokenizer, [{"role": "user", "content": "x"}], add_generation_prompt=True)
    full = render(tokenizer, [{"role": "user", "content": "x"}, message])
    generated = full[len(before):]
    parsed = parse_assistant_output(generated, first_index=3)
    assert parsed["content"] == "Let me check both."
    assert [c["id"] for c in parsed["tool_calls"]] == ["call_3", "call_4"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in parsed["tool_calls"]] == [
        ("get_order", {"order_id": "W1"}),
        ("cancel_order", {"order_id": "W2", "reason": "no ñ"}),
    ]
    # and the parsed message renders back to the same text
    assert render(tokenizer, [{"role": "user", "content": "x"}, parsed]) == full


def test_malformed_output_is_a_text_reply():
    for text in (
        '<tool_call>{"name": "get_order", "arguments": {"order_id": </tool_call>',
        '<tool_call>{"arguments": {}}</tool_call>',
        '<tool_call>{"name": "get_order", "arguments": [1]}</tool_call>',
        '<tool_call>{"name": "get_order", "arguments": {"order_id": "W1"}}',  # cut off
    ):
        parsed = parse_assistant_output(text)
        assert parsed == {"role": "assistant", "content": text}
    assert parse_assistant_output("") == {"role": "assistant", "content": ""}
    assert parse_assistant_output("All done.<end_of_turn>") == {"role": "assistant", "content": "All done."}


# -- records and the loss mask ------------------------------------------------------------------------


def test_records_are_built_written_and_bad_items_skipped(tmp_path):
    broken = trajectory(3)
    broken.messages = [{"role": "user", "content": "hello"}]  # nothing to learn from
    skipped: list[dict] = []
    records = build_sft_records([trajectory(1), trajectory(2, domain="nowhere"), broken, trajectory(4)],
                                {"shop": TOOLS}, phase=2, skipped=skipped)
    assert [r.trajectory_id for r in records] == ["traj-1", "traj-4"]
    assert [s["trajectory_id"] for s in skipped] == ["traj-2", "traj-3"]
    assert "no tools for domain 'nowhere'" in skipped[0]["reason"]
    assert records[0].phase == 2 and records[0].tools == TOOLS
    assert records[0].messages[2]["tool_calls"][0]["function"]["arguments"] == {"order_id": "W1"}

    path = write_sft_dataset(records, tmp_path / "d.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert set(json.loads(lines[0])) == {"messages", "tools", "phase", "domain_id", "trajectory_id"}
    assert read_sft_dataset(path) == records
    write_sft_dataset(records, tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="phase must be 1"):
        build_sft_records([], {}, phase=3)


def test_loss_mask_token_by_token(tokenizer):
    record = build_sft_records([trajectory(5)], {"shop": TOOLS}, phase=1)[0]
    out = tokenize_for_sft(record, tokenizer, max_length=4096)

    context_1 = render(tokenizer, record.messages[:2], TOOLS, add_generation_prompt=True)
    answer_1 = '<tool_call>{"name": "get_order", "arguments": {"order_id": "W5"}}</tool_call><end_of_turn>\n'
    context_2 = (
        '<start_of_turn>user\n<tool_response>{"status": "shipped"}</tool_response><end_of_turn>\n'
        "<start_of_turn>model\n"
    )
    answer_2 = "Order W5 has shipped.<end_of_turn>\n"
    expected_ids, expected_labels = [], []
    for piece, learn in ((context_1, False), (answer_1, True), (context_2, False), (answer_2, True)):
        ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
        expected_ids += ids
        expected_labels += ids if learn else [IGNORE_INDEX] * len(ids)

    assert out["input_ids"] == expected_ids
    assert out["labels"] == expected_labels
    assert out["attention_mask"] == [1] * len(expected_ids)
    learned = tokenizer.decode([t for t, l in zip(out["input_ids"], out["labels"]) if l != IGNORE_INDEX])
    assert learned == answer_1 + answer_2
    assert "shop agent" not in learned and "status" not in learned

    cut = tokenize_for_sft(record, tokenizer, max_length=20)
    assert cut["input_ids"] == expected_ids[:20] and cut["labels"] == expected_labels[:20]


# -- configs -------------------------------------------------------------------------------------------


def test_every_config_file_validates_and_says_how_to_run_it():
    files = sorted(CONFIGS.rglob("*.yaml"))
    assert {f.name for f in files} >= {"phase1.yaml", "phase2.yaml", "tiny.yaml"}
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# python -m agentscaler_dagster.sft.train --config "), path
        config = load_config(path)
        assert isinstance(config, TrainConfig)
    phase1, phase2 = load_config(CONFIGS / "phase1.yaml"), load_config(CONFIGS / "phase2.yaml")
    assert phase2.model_dir == phase1.output_dir  # phase 2 starts from phase 1
    assert (phase1.phase, phase2.phase) == (1, 2)


def test_incompatible_settings_are_rejected_with_what_to_change(tmp_path, tiny_dir):
    tiny = CONFIGS / "tiny.yaml"
    with pytest.raises(ConfigError, match="zero_stage 3 .* set zero_stage to 2"):
        load_config(tiny, ["zero_stage=3"])
    with pytest.raises(ConfigError, match="output_dir equals model_dir"):
        load_config(tiny, ["model_dir=/x", "output_dir=/x"])
    with pytest.raises(ConfigError, match="warmup_steps .* lower warmup_steps"):
        load_config(tiny, ["warmup_steps=5"])
    with pytest.raises(ConfigError, match="lr_schedul"):
        load_config(tiny, ["lr_scheduler=wavy"])
    with pytest.raises(ConfigError, match="--set expects key=value"):
        load_config(tiny, ["max_steps"])
    assert main(["--config", str(tiny), "--set", "zero_stage=3"]) == 2

    data = write_sft_dataset(build_sft_records([trajectory(1)], {"shop": TOOLS}, phase=1), tmp_path / "d.jsonl")
    ok = load_config(tiny, [f"model_dir={tiny_dir}", f"dataset={data}", f"output_dir={tmp_path / 'o'}"])
    SFTRecipe(ok).check_runtime()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="set bf16: false"):
            SFTRecipe(ok.model_copy(update={"bf16": True})).check_runtime()
    with pytest.raises(ConfigError, match="has no config.json.*prepare_base_model"):
        SFTRecipe(ok.model_copy(update={"model_dir": tmp_path})).check_runtime()
    with pytest.raises(ConfigError, match="write it with write_sft_dataset"):
        SFTRecipe(ok.model_copy(update={"dataset": tmp_path / "missing.jsonl"})).check_runtime()


# -- the recipe, through its real entry point -------------------------------------------------------------


def _run_train(*overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DAGSTER_PIPES_CONTEXT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "agentscaler_dagster.sft.train", "--config", str(CONFIGS / "tiny.yaml")]
    for item in overrides:
        cmd += ["--set", item]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _run_train_through_pipes(settings: dict):
    @dg.asset
    def sft_model(context, pipes: dg.PipesSubprocessClient):
        command = [sys.executable, "-m", "agentscaler_dagster.sft.train", "--config", str(CONFIGS / "tiny.yaml")]
        env = {"PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        return pipes.run(command=command, context=context, extras={"config_overrides": settings}, env=env,
                         cwd=str(REPO)).get_materialize_result()

    result = dg.materialize([sft_model], resources={"pipes": dg.PipesSubprocessClient()},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return event.materialization


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_phase_training_with_deepspeed(tmp_path, tiny_dir, tokenizer):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    records = build_sft_records([trajectory(1), trajectory(2)], {"shop": TOOLS}, phase=1)
    data1 = write_sft_dataset(records, tmp_path / "phase1.jsonl")
    out1, out2 = tmp_path / "phase1", tmp_path / "phase2"

    started = time.perf_counter()
    done = _run_train(f"model_dir={tiny_dir}", f"dataset={data1}", f"output_dir={out1}")
    assert done.returncode == 0, done.stderr[-3000:]
    phase1_seconds = time.perf_counter() - started
    rows = _metrics(out1)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and r["label_tokens"] > 0 and r["tokens"] > r["label_tokens"] for r in rows)
    assert rows[1]["loss"] < rows[0]["loss"]  # same two records again: the first update helped
    assert (out1 / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out1 / "train_result.json").read_text())
    assert result["steps"] == 2 and result["world_size"] == 1 and result["device"] == "cpu"

    model = AutoModelForCausalLM.from_pretrained(str(out1))
    prompt = render(tokenizer, conversation(1)[:2], TOOLS, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] > ids["input_ids"].shape[1]
    base_weights = load_file(str(tiny_dir / "model.safetensors"))
    trained = load_file(str(out1 / "model.safetensors"))
    assert set(trained) == set(base_weights) and "lm_head.weight" not in trained
    assert json.loads((out1 / "config.json").read_text())["use_cache"] is True
    assert not torch.equal(trained["model.embed_tokens.weight"], base_weights["model.embed_tokens.weight"])

    # phase 2 starts from the phase-1 checkpoint, ZeRO-2 this time, launched the way the pipeline launches
    # it: Dagster Pipes (settings passed as extras), with progress and the materialisation reported back
    # (and evaluated on its own: one of its five records held out, its loss before = the phase-1 model's)
    data2 = write_sft_dataset(build_sft_records([trajectory(i, domain="bank") for i in range(9, 14)], {"bank": TOOLS},
                                                phase=2), tmp_path / "phase2.jsonl")
    materialization = _run_train_through_pipes(
        {"model_dir": str(out1), "dataset": str(data2), "output_dir": str(out2), "phase": 2, "zero_stage": 2,
         "grad_accum": 1, "max_steps": 3, "packing": True, "eval_records": 1}
    )
    rows2 = _metrics(out2)
    assert [r["step"] for r in rows2] == [1, 2, 3]
    assert rows2[-1]["loss"] < rows2[0]["loss"]
    reported = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    assert reported["steps"] == 3 and reported["phase"] == 2 and reported["path"] == str(out2)
    assert reported["eval_loss_end"] < reported["eval_loss_start"]
    result2 = json.loads((out2 / "train_result.json").read_text())
    assert (result2["eval_examples"], result2["examples"]) == (1, 4)
    assert reported["final_loss"] == pytest.approx(rows2[-1]["loss"])
    assert materialization.tags["dagster/data_version"] == json.loads((out2 / "train_result.json").read_text())["weights_sha256"]
    phase2_config = (out2 / "train_config.yaml").read_text()
    assert f"model_dir: {out1}" in phase2_config and "phase: 2" in phase2_config
    AutoModelForCausalLM.from_pretrained(str(out2))
    print(f"phase-1 subprocess (tiny, 2x2 steps) took {phase1_seconds:.1f}s")


# -- the real Gemma 3 270M ----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_gemma_270m_converts_and_reloads(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    out = prepare_base_model(tmp_path / "gemma", source="gemma3-270m")
    convert_seconds = time.perf_counter() - started
    summary = model_summary(out)
    assert summary["architecture"] == "Gemma3ForCausalLM" and summary["num_hidden_layers"] == 18
    assert 260_000_000 < summary["params"] < 280_000_000

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    reload_seconds = time.perf_counter() - started
    prompt = "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is"
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        loss = float(model(**ids, labels=ids["input_ids"]).loss)
    text = tokenizer.decode(model.generate(**ids, max_new_tokens=3, do_sample=False)[0, ids["input_ids"].shape[1]:])
    # the real pretrained weights, not noise: a random model scores ~12.5 nats per token here
    assert loss < 4.0, loss
    assert "Rome" in text, text
    print(f"convert {convert_seconds:.1f}s, reload {reload_seconds:.1f}s, continuation {text!r}")


def test_labelled_token_loss_equals_the_models_own_loss(tiny_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from agentscaler_dagster.sft.train import _assistant_token_loss_module

    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    record = build_sft_records([trajectory(2)], {"shop": TOOLS}, phase=1)[0]
    example = tokenize_for_sft(record, tokenizer, max_length=4096)
    batch = {k: torch.tensor([v]) for k, v in example.items()}
    with torch.no_grad():
        reference = model(**batch).loss
        ours = _assistant_token_loss_module(model)(**batch)
        # a user-turn token changes nothing that is scored directly: only labelled positions are in the loss
        labels_only = torch.tensor([[IGNORE_INDEX] * len(example["labels"])])
        labels_only[0, -3:] = batch["labels"][0, -3:]
        few = _assistant_token_loss_module(model)(batch["input_ids"], batch["attention_mask"], labels_only)
        few_reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels_only).loss
    assert torch.isfinite(ours) and abs(float(ours) - float(reference)) < 1e-4
    assert abs(float(few) - float(few_reference)) < 1e-4
