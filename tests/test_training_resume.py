"""Resume after a kill (issue 13 item 4): SIGKILL the real training process after a checkpoint, start it again.

Real parts: the training entry point as a subprocess (DeepSpeed ZeRO-2 on its CPU accelerator, packing,
bf16 autocast, frozen embeddings: the phase configs' settings), a tiny random Gemma 3 with the real
tokenizer, a real SIGKILL. The resumed run must have every step exactly once in metrics.jsonl, the same
per-step losses and the same final weights as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agentscaler_dagster.sft.base_model import prepare_base_model
from agentscaler_dagster.sft.records import build_sft_records, write_sft_dataset
from test_sft import TOOLS, trajectory

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "agentscaler_dagster" / "sft" / "configs" / "tiny.yaml"
STEPS = 12


def _command(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    settings = [f"model_dir={model_dir}", f"dataset={data}", f"output_dir={out}", f"max_steps={STEPS}",
                "grad_accum=1", "batch_size=1", "max_length=512", "zero_stage=2", "packing=true",
                "autocast_bf16=true", "freeze_embeddings=true", "lr=3e-3", "lr_scheduler=cosine", "warmup_steps=1",
                "checkpoint_every=2", *extra]
    cmd = [sys.executable, "-m", "agentscaler_dagster.sft.train", "--config", str(CONFIG)]
    for item in settings:
        cmd += ["--set", item]
    return cmd


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DAGSTER_PIPES_CONTEXT"):
        env.pop(key, None)
    return env


def _run(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    model_dir = prepare_base_model(root / "base", source="tiny", seed=0)
    records = build_sft_records([trajectory(i) for i in range(1, 9)], {"shop": TOOLS}, phase=1)
    return model_dir, write_sft_dataset(records, root / "data.jsonl")


def test_killed_training_resumes_without_losing_or_repeating_a_step(inputs, tmp_path):
    model_dir, data = inputs

    # the reference: never interrupted (its last checkpoint kept for the check at the end)
    reference = tmp_path / "reference"
    ref_summary = _run(_command(model_dir, data, reference, "keep_checkpoints=true"))
    assert ref_summary["resumed_from_step"] == 0
    assert [r["step"] for r in _rows(reference)] == list(range(1, STEPS + 1))
    assert (reference / "checkpoints" / "latest").read_text().strip() == f"step{STEPS - 2:08d}"

    # the same run, killed with SIGKILL as soon as its first checkpoint is complete
    out = tmp_path / "killed"
    process = subprocess.Popen(_command(model_dir, data, out), cwd=REPO, env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list((out / "checkpoints").glob("step*/resume.json")):
        assert process.poll() is None, f"training ended before its first checkpoint: {process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "train_result.json").exists()
    checkpoint_step = int((out / "checkpoints" / "latest").read_text().strip().removeprefix("step"))
    logged = [r["step"] for r in _rows(out)]
    assert 2 <= checkpoint_step < STEPS and logged[: checkpoint_step] == list(range(1, checkpoint_step + 1))

    summary = _run(_command(model_dir, data, out))
    assert summary["resumed_from_step"] == checkpoint_step >= 2
    rows = _rows(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # no gap, no duplicate
    ref_rows = _rows(reference)
    for row, ref in zip(rows, ref_rows):
        assert row["loss"] == pytest.approx(ref["loss"], abs=1e-5), row["step"]
        assert (row["tokens"], row["lr"]) == (ref["tokens"], pytest.approx(ref["lr"]))
    result = json.loads((out / "train_result.json").read_text())
    assert result["tokens"] == json.loads((reference / "train_result.json").read_text())["tokens"]
    weights, ref_weights = _weights(out), _weights(reference)
    assert set(weights) == set(ref_weights)
    for name, tensor in weights.items():
        assert torch.allclose(tensor, ref_weights[name], atol=1e-6, rtol=0), name
    base = _weights(model_dir)
    assert not torch.equal(weights["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"])
    assert torch.equal(weights["model.embed_tokens.weight"], base["model.embed_tokens.weight"])  # frozen
    assert not (out / "checkpoints").exists()  # removed once the run finished

    # a checkpoint written from other inputs (here: another learning rate) is discarded, not resumed
    summary = _run(_command(model_dir, data, reference, "max_steps=3", "lr=1e-3"))
    assert summary["resumed_from_step"] == 0
    assert [r["step"] for r in _rows(reference)] == [1, 2, 3]
    assert not (reference / "checkpoints").exists()
