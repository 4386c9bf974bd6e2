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
    ``deepspeed`` uses the DeepSpeed launcher: ``num_gpus`` processes per node (on a machine without a GPU
    they are CPU ranks on the gloo backend), the nodes of a ``hostfile`` (``host slots=N`` lines), the ZeRO
    stage for the run. ``torchrun`` is the same data-parallel run started by torch's launcher
    (``num_gpus`` processes on this node). Only rank 0 reports to Dagster.
    """

    launcher: Literal["python", "deepspeed", "torchrun"] = Field(default="python", description="One process, the deepspeed launcher, or torchrun.")
    num_gpus: int = Field(default=0, ge=0, description="Processes per node for deepspeed/torchrun: GPUs, or CPU ranks without a GPU (0: deepspeed decides, torchrun 1).")
    num_nodes: int | None = Field(default=None, ge=1, description="deepspeed: use the first N hosts of the hostfile; empty: all.")
    hostfile: str | None = Field(default=None, description="DeepSpeed hostfile for multi-node training (`host slots=N` per line).")
    ssh_check: bool = Field(default=True, description="deepspeed with a hostfile: check passwordless ssh to the first host first (off for a hostfile that names only this machine).")
    master_addr: str | None = Field(default=None, description="Rendezvous address; empty: 127.0.0.1 on one node, the launcher's choice with a hostfile.")
    master_port: int | None = Field(default=None, description="Rendezvous port for torch.distributed; empty: a free port (one process) or 29500 (launchers).")
    zero_stage: int | None = Field(default=None, ge=0, le=2, description="DeepSpeed ZeRO stage (0, 1, 2) for every run; empty: the phase config's.")

    def command(self, config_path: Path, overrides: dict[str, object] | None = None) -> list[str]:
        overrides = dict(overrides or {})
        if self.zero_stage is not None:
            overrides["zero_stage"] = self.zero_stage
        sets = [item for key, value in sorted(overrides.items()) for item in ("--set", f"{key}={value}")]
        recipe = ["--config", str(config_path), *sets]
        if self.launcher == "python":
            return [sys.executable, "-m", "agentscaler_dagster.sft.train", *recipe]
        port = str(self.master_port or 29500)
        if self.launcher == "torchrun":
            return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(self.num_gpus or 1),
                    "--master_addr", self.master_addr or "127.0.0.1", "--master_port", port,
                    "--module", "agentscaler_dagster.sft.train", *recipe]
        launcher = [sys.executable, "-m", "deepspeed.launcher.runner", "--master_port", port]
        if self.master_addr or not self.hostfile:
            launcher += ["--master_addr", self.master_addr or "127.0.0.1"]
        if self.num_gpus:
            launcher += ["--num_gpus", str(self.num_gpus)]
        if self.num_nodes:
            launcher += ["--num_nodes", str(self.num_nodes)]
        if self.hostfile:
            launcher += ["--hostfile", self.hostfile]
            if not self.ssh_check:
                launcher += ["--no_ssh_check"]
        return [*launcher, "--module", "agentscaler_dagster.sft.train", *recipe]

    def environment(self) -> dict[str, str]:
        """What the launched trainer needs besides the inherited environment."""
        return {
            "MASTER_ADDR": self.master_addr or "127.0.0.1",
            # unset: the one-process recipe picks a free port, so two trainings never collide
            **({"MASTER_PORT": str(self.master_port)} if self.master_port else {}),
            # the trainer must import this package from wherever the code location runs
            "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])),
        }

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
        invocation = pipes.run(command=command, context=context, env=self.environment())
        return invocation.get_materialize_result()
