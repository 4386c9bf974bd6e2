from importlib import resources
from pathlib import Path

import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest, read_jsonl, tree_digest
from agentscaler_dagster.assets._metadata import picture, result
from agentscaler_dagster.resources import ArtifactStore, DeepSpeedTrainer
from agentscaler_dagster.sft import model_summary, prepare_base_model


class BaseModelConfig(dg.Config):
    source: str = Field(default="gemma3-270m", description="gemma3-270m (the real Gemma 3 270M base, from its PyPI GGUF) or tiny (random init, same architecture, for tests).")


@dg.asset(group_name="training", code_version="1", kinds={"safetensors"})
def base_model(context: dg.AssetExecutionContext, config: BaseModelConfig, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """The pretrained backbone, converted once to safetensors + tokenizer + our chat template."""
    out = artifacts.layout.model("base")
    prepare_base_model(out, source=config.source)
    summary = model_summary(out)
    context.log.info(f"base model ({config.source}): {summary}")
    return result(path=out, digest=tree_digest(out), metadata={"source": config.source, **{k: v for k, v in summary.items() if isinstance(v, (int, float, str))}})


class PhaseTrainingConfig(dg.Config):
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; empty: the phase config's value.")
    epochs: int | None = Field(
        default=None, ge=1,
        description="Full passes over the phase's data instead of a step count (overrides max_steps); empty: the "
        "phase config's bound. On a 2-core CPU one epoch of the default run's phase 1 is ~25 min.",
    )
    learning_rate: float | None = Field(default=None, gt=0.0, description="Peak learning rate; empty: the phase config's value.")
    max_length: int | None = Field(default=None, ge=1, description="Token limit per record (and per packed row); empty: the phase config's value.")
    checkpoint_every: int | None = Field(default=None, ge=1, description="Steps between resume checkpoints (each writes the weights and optimizer state); empty: the phase config's value.")


def _checkpoint_asset(phase: int, start_from: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"phase{phase}_checkpoint",
        deps=[f"sft_dataset_phase{phase}", start_from],
        group_name="training",
        code_version="2",
        kinds={"deepspeed", "safetensors"},
        pool="gpu",
        description=f"Phase {phase} SFT (loss on the assistant's tool calls and replies only), starting from {start_from}; "
        "held-out loss of this phase's own records before and after (eval_loss_start/end). A run killed mid-training "
        "continues from its last checkpoint when materialised again.",
    )
    def _checkpoint(
        context: dg.AssetExecutionContext,
        config: PhaseTrainingConfig,
        artifacts: ArtifactStore,
        trainer: DeepSpeedTrainer,
        pipes_subprocess_client: dg.PipesSubprocessClient,
    ) -> dg.MaterializeResult:
        layout = artifacts.layout
        out = layout.model(f"phase{phase}")
        start = layout.model("base" if start_from == "base_model" else "phase1")
        overrides = {
            "model_dir": start,
            "dataset": layout.sft / f"phase{phase}.jsonl",
            "output_dir": out,
            **{k: v for k, v in {"max_steps": config.max_steps, "lr": config.learning_rate, "max_length": config.max_length,
                                  "checkpoint_every": config.checkpoint_every}.items() if v is not None},
            **({"max_steps": "null", "epochs": config.epochs} if config.epochs else {}),
        }
        config_path = Path(str(resources.files("agentscaler_dagster.sft") / "configs" / f"phase{phase}.yaml"))
        launched = trainer.run(context, pipes_subprocess_client, config_path=config_path, overrides=overrides)
        metrics = read_jsonl(out / "metrics.jsonl")
        losses = [m["loss"] for m in metrics if "loss" in m]
        return result(
            path=out,
            digest=file_digest(out / "model.safetensors"),
            metadata={
                **(launched.metadata or {}),
                "steps": len(losses),
                "first_loss": float(losses[0]) if losses else float("nan"),
                "final_loss": float(losses[-1]) if losses else float("nan"),
                "loss_curve": picture(out / "loss_curve.png", f"phase {phase} loss"),
            },
        )

    return _checkpoint


phase1_checkpoint = _checkpoint_asset(1, "base_model")
phase2_checkpoint = _checkpoint_asset(2, "phase1_checkpoint")
