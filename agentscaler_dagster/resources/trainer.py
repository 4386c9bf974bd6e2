from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field


class DeepSpeedTrainer(dg.ConfigurableResource):
    """Launches the SFT recipe (`agentscaler_dagster.sft.train`) through Dagster Pipes.

    ``python`` runs one process (DeepSpeed picks its CPU accelerator where there is no GPU);
    ``deepspeed`` uses the DeepSpeed launcher, e.g. several GPUs or nodes listed in a hostfile.
    """

    launcher: Literal["python", "deepspeed"] = Field(default="python", description="One process, or the deepspeed launcher.")
    num_gpus: int = Field(default=0, description="GPUs per node for the deepspeed launcher (0: let it decide).")
    hostfile: str | None = Field(default=None, description="DeepSpeed hostfile for multi-node training.")
    master_port: int | None = Field(default=None, description="Rendezvous port for torch.distributed; empty: a free port (one process) or 29500 (deepspeed launcher).")

    def command(self, config_path: Path, overrides: dict[str, object] | None = None) -> list[str]:
        sets = [item for key, value in sorted((overrides or {}).items()) for item in ("--set", f"{key}={value}")]
        recipe = ["--config", str(config_path), *sets]
        if self.launcher == "python":
            return [sys.executable, "-m", "agentscaler_dagster.sft.train", *recipe]
        launcher = [sys.executable, "-m", "deepspeed.launcher.runner", "--master_port", str(self.master_port or 29500)]
        if self.num_gpus:
            launcher += ["--num_gpus", str(self.num_gpus)]
        if self.hostfile:
            launcher += ["--hostfile", self.hostfile]
        return [*launcher, "--module", "agentscaler_dagster.sft.train", *recipe]

    def run(
        self,
        context: dg.AssetExecutionContext,
        pipes: dg.PipesSubprocessClient,
        *,
        config_path: Path,
        overrides: dict[str, object] | None = None,
    ) -> dg.MaterializeResult:
        command = self.command(config_path, overrides)
        context.log.info(f"launching trainer: {shlex.join(command)}")
        env = {
            "MASTER_ADDR": "127.0.0.1",
            # unset: the one-process recipe picks a free port, so two trainings never collide
            **({"MASTER_PORT": str(self.master_port)} if self.master_port else {}),
            # the trainer must import this package from wherever the code location runs
            "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])),
        }
        invocation = pipes.run(command=command, context=context, env=env)
        return invocation.get_materialize_result()
