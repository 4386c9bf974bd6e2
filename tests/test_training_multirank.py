"""The multi-GPU path (issue 13 item 7), run for real on CPU: the DeepSpeed launcher with 2 local ranks.

Real parts: the `trainer` resource builds the launcher command from its config (processes per node, a
hostfile, the ZeRO stage), Dagster Pipes launches it from an asset, `deepspeed.launcher.runner` starts two
ranks of the training entry point that train data-parallel on DeepSpeed's CPU accelerator (gloo), a tiny
random Gemma 3 with the real tokenizer. The same data in one process with twice the gradient accumulation
must give the same per-step losses and the same weights: the two ranks together take the same records per
optimizer step, DeepSpeed averages their gradients.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import dagster as dg
import pytest
import torch

from agentscaler_dagster.resources import DeepSpeedTrainer
from agentscaler_dagster.sft.base_model import prepare_base_model
from agentscaler_dagster.sft.records import build_sft_records, write_sft_dataset
from test_sft import TOOLS, trajectory

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "agentscaler_dagster" / "sft" / "configs" / "tiny.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_launcher_commands_come_from_the_resource_config(tmp_path):
    config = tmp_path / "phase1.yaml"
    hostfile = tmp_path / "hostfile"
    trainer = DeepSpeedTrainer(launcher="deepspeed", num_gpus=8, num_nodes=2, hostfile=str(hostfile), master_port=29611,
                               zero_stage=1)
    command = trainer.command(config, {"max_steps": 5, "zero_stage": 2})
    assert command[:3] == [sys.executable, "-m", "deepspeed.launcher.runner"]
    launcher, recipe = command[: command.index("--module")], command[command.index("--module") :]
    assert launcher[3:] == ["--master_port", "29611", "--num_gpus", "8", "--num_nodes", "2", "--hostfile", str(hostfile)]
    # the resource's ZeRO stage wins over the asset's override: one stage for every run of the deployment
    assert recipe == ["--module", "agentscaler_dagster.sft.train", "--config", str(config), "--set", "max_steps=5",
                      "--set", "zero_stage=1"]

    local = DeepSpeedTrainer(launcher="deepspeed", num_gpus=2, hostfile=str(hostfile), ssh_check=False,
                             master_addr="127.0.0.1").command(config)
    assert local[3:local.index("--module")] == ["--master_port", "29500", "--master_addr", "127.0.0.1", "--num_gpus", "2",
                                                 "--hostfile", str(hostfile), "--no_ssh_check"]
    torchrun = DeepSpeedTrainer(launcher="torchrun", num_gpus=2, master_port=29612).command(config)
    assert torchrun[:torchrun.index("--module")] == [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", "29612"]
    assert DeepSpeedTrainer().command(config)[:3] == [sys.executable, "-m", "agentscaler_dagster.sft.train"]
    with pytest.raises(Exception, match="zero_stage"):
        DeepSpeedTrainer(zero_stage=3)


def _train(trainer: DeepSpeedTrainer, overrides: dict) -> dg.AssetMaterialization:
    @dg.asset
    def checkpoint(context, pipes: dg.PipesSubprocessClient):
        return trainer.run(context, pipes, config_path=CONFIG, overrides=overrides)

    result = dg.materialize([checkpoint], resources={"pipes": dg.PipesSubprocessClient(cwd=str(REPO))},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return event.materialization


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_cpu_ranks_through_the_deepspeed_launcher_equal_one_process(tmp_path):
    from safetensors.torch import load_file

    model_dir = prepare_base_model(tmp_path / "base", source="tiny", seed=0)
    # 12 records of ~170 tokens, two to a packed row of 400: 6 rows, an even share for each rank
    records = build_sft_records([trajectory(i) for i in range(1, 13)], {"shop": TOOLS}, phase=1)
    data = write_sft_dataset(records, tmp_path / "data.jsonl")
    common = {"model_dir": model_dir, "dataset": data, "max_steps": 6, "batch_size": 1, "max_length": 400,
              "packing": "true", "lr": "1e-3", "lr_scheduler": "cosine", "warmup_steps": 1, "num_threads": 1}

    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost slots=2\n")
    two_ranks = DeepSpeedTrainer(launcher="deepspeed", num_gpus=2, hostfile=str(hostfile), ssh_check=False,
                                 master_addr="127.0.0.1", master_port=_free_port(), zero_stage=2)
    reported = _train(two_ranks, {**common, "output_dir": tmp_path / "two", "grad_accum": 1})
    one = DeepSpeedTrainer(zero_stage=2)
    _train(one, {**common, "output_dir": tmp_path / "one", "grad_accum": 2})

    two_result = json.loads((tmp_path / "two" / "train_result.json").read_text())
    one_result = json.loads((tmp_path / "one" / "train_result.json").read_text())
    assert (two_result["world_size"], one_result["world_size"]) == (2, 1)
    assert two_result["rows"] == one_result["rows"] == 6 and two_result["tokens"] == one_result["tokens"]
    metadata = {k: getattr(v, "value", v) for k, v in reported.metadata.items()}
    assert metadata["steps"] == 6  # rank 0 reported through Pipes

    two, one_rows = _rows(tmp_path / "two"), _rows(tmp_path / "one")
    assert [r["step"] for r in two] == [r["step"] for r in one_rows] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(two, one_rows):
        assert (a["tokens"], a["label_tokens"]) == (b["tokens"], b["label_tokens"])  # the same records per step
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4), a["step"]
    assert two[-1]["loss"] < two[0]["loss"]

    weights_two = load_file(str(tmp_path / "two" / "model.safetensors"))
    weights_one = load_file(str(tmp_path / "one" / "model.safetensors"))
    base = load_file(str(model_dir / "model.safetensors"))
    for name, tensor in weights_two.items():
        assert torch.allclose(tensor, weights_one[name], atol=1e-5, rtol=1e-4), name
    moved = (weights_two["model.layers.1.mlp.down_proj.weight"] - base["model.layers.1.mlp.down_proj.weight"]).abs().max()
    assert moved > 1e-4  # they trained, and trained alike
