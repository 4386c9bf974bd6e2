"""The SFT recipe: one recipe, two configs (phase 1 general domains, phase 2 vertical domains).

    python -m agentscaler_dagster.sft.train --config agentscaler_dagster/sft/configs/phase1.yaml \\
        [--set key=value ...]

Runs DeepSpeed (ZeRO 0/1/2, a torch AdamW as client optimizer so no DeepSpeed op is compiled). Without
a GPU DeepSpeed picks its CPU accelerator and the gloo backend; a single process sets up its own
rank/world-size environment, and a launcher's environment (``deepspeed``, ``torchrun``) is used as given.
Writes ``model.safetensors`` + config + tokenizer + chat template (reloadable with ``from_pretrained``),
``metrics.jsonl``, ``loss_curve.png``, ``train_result.json`` and the resolved ``train_config.yaml``.

Data: every record is tokenised with the loss mask (``tokenize_for_sft``: labels only on the assistant's
turns) and cut to ``max_length``; with ``packing`` several records share one row of at most ``max_length``
tokens (first-fit, in a seeded order). A packed row carries ``position_ids`` that restart at 0 for each
record and no 2-D attention mask, which is how transformers recognises packed rows: it builds a
block-diagonal causal mask (sliding windows included) for sdpa/eager attention, so no token attends
across a record boundary, and the positions (RoPE) are those the record would have alone. The first
target of every record is masked as well, so no record is trained to predict the next one's first token.
An epoch is one pass over the rows, reshuffled per epoch (seed + epoch).

Resume: with ``checkpoint_every`` the recipe writes a DeepSpeed checkpoint (weights, optimizer, scheduler,
step, RNG, data position) under ``<output_dir>/checkpoints`` every N optimizer steps, keeping the last one.
A run started again on the same output_dir (e.g. after the process was killed) continues from it when it
was written from the same inputs (config, dataset bytes, starting weights): the data order resumes at the
next micro-batch and ``metrics.jsonl`` keeps exactly the rows up to the checkpoint, so no step is lost or
repeated. A checkpoint from other inputs is discarded. The checkpoints are removed once the run finishes.

When launched through Dagster Pipes (``DAGSTER_PIPES_CONTEXT`` set, e.g. by PipesSubprocessClient) it
logs progress and reports the asset materialisation through ``dagster_pipes``; otherwise it just runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentscaler_dagster.sft.records import IGNORE_INDEX, read_sft_dataset, tokenize_for_sft

logger = logging.getLogger("agentscaler_dagster.sft.train")


class ConfigError(ValueError):
    """A training config that cannot run; the message says what to change."""


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_dir: Path = Field(description="Starting checkpoint: the base model (phase 1) or the phase-1 output (phase 2).")
    dataset: Path = Field(description="SFT JSONL written by write_sft_dataset.")
    output_dir: Path = Field(description="Where the checkpoint, metrics.jsonl and loss_curve.png go.")
    phase: Literal[1, 2] = Field(default=1, description="Training phase, recorded in the outputs.")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; the data repeats (reshuffled) if needed. None: run `epochs` epochs.")
    epochs: int = Field(default=1, ge=1, description="Full passes over the data when max_steps is None.")
    lr: float = Field(default=1e-5, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.0, ge=0)
    adam_betas: tuple[float, float] = Field(default=(0.9, 0.999))
    lr_scheduler: Literal["constant", "linear", "cosine"] = Field(default="cosine", description="Decay after warmup, to 0 at the last step.")
    warmup_steps: int = Field(default=0, ge=0)
    batch_size: int = Field(default=1, ge=1, description="Micro-batch size per process.")
    grad_accum: int = Field(default=1, ge=1, description="Micro-batches per optimizer step.")
    max_length: int = Field(default=512, ge=16, description="Tokens per example; longer examples are cut on the right.")
    gradient_clipping: float = Field(default=1.0, ge=0)
    seed: int = 0
    zero_stage: int = Field(default=0, description="DeepSpeed ZeRO stage: 0, 1 or 2.")
    bf16: bool = Field(default=False, description="bf16 weights/activations through DeepSpeed (GPU only here).")
    autocast_bf16: bool = Field(
        default=False,
        description="fp32 master weights and optimizer, matmuls/attention in bf16 (torch.autocast on the engine's "
        "device). On a CPU with AVX512-BF16 the forward and backward take about half the time.",
    )
    packing: bool = Field(default=False, description="Several records per row of max_length tokens (see the module docstring).")
    dist_backend: Literal["gloo", "nccl", "ccl"] | None = Field(default=None, description="None: gloo on CPU, nccl on GPU.")
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"
    gradient_checkpointing: bool = False
    freeze_embeddings: bool = Field(
        default=False,
        description="Keep the (tied) token embeddings fixed: Gemma's 262k x 640 table is 63% of the 270M "
        "parameters, so this cuts optimizer state and step time on CPU.",
    )
    cpu_shm_allreduce: bool = Field(default=False, description="DeepSpeed's shared-memory all-reduce for multi-process CPU runs (a C++ op compiled on first use, minutes).")
    num_threads: int | None = Field(default=None, ge=1, description="torch CPU threads; None: torch's default.")
    log_every: int = Field(default=1, ge=1, description="Write a metrics row (and report progress) every N steps.")
    checkpoint_every: int | None = Field(default=None, ge=1, description="Write a resumable checkpoint every N optimizer steps; None: none.")
    resume: bool = Field(default=True, description="Continue from the checkpoint in output_dir/checkpoints when it was written from the same inputs.")
    keep_checkpoints: bool = Field(default=False, description="Keep output_dir/checkpoints after the run finishes (they hold the optimizer state: several GB).")
    eval_records: int = Field(
        default=0, ge=0,
        description="Records held out of training (seeded choice; at most a fifth of the dataset) to report the loss "
        "per assistant token before and after training.",
    )

    @field_validator("zero_stage")
    @classmethod
    def _zero_stage(cls, value: int) -> int:
        if value == 3:
            raise ValueError(
                "zero_stage 3 partitions the parameters, and this recipe saves the full state dict from every "
                "rank: set zero_stage to 2 (shards optimizer state and gradients), 1 or 0"
            )
        if value not in (0, 1, 2):
            raise ValueError(f"zero_stage must be 0, 1 or 2, got {value}")
        return value

    @model_validator(mode="after")
    def _compatible(self) -> "TrainConfig":
        if self.output_dir.resolve() == self.model_dir.resolve():
            raise ValueError(
                f"output_dir equals model_dir ({self.model_dir}); training would overwrite its starting "
                "checkpoint: set output_dir to a new folder (e.g. <artifacts>/sft/phase2)"
            )
        if self.max_steps is not None and self.warmup_steps >= self.max_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be smaller than max_steps ({self.max_steps}): "
                "lower warmup_steps or raise max_steps"
            )
        return self


# settings that change neither the data order nor the numbers: a checkpoint written under other values resumes
_RUNTIME_ONLY = ("log_every", "checkpoint_every", "resume", "keep_checkpoints", "num_threads", "output_dir", "cpu_shm_allreduce")


class TrainResult(BaseModel):
    output_dir: Path
    phase: int
    steps: int
    examples: int
    skipped_examples: int = Field(description="Records with no assistant token within max_length.")
    tokens: int
    label_tokens: int
    final_loss: float
    first_loss: float
    seconds: float
    seconds_per_step: float
    metrics_path: Path
    loss_curve_path: Path | None
    weights_sha256: str
    device: str
    world_size: int
    tokens_per_second: float = Field(default=0.0, description="Tokens (all ranks, no padding) per second of training steps.")
    rows: int = Field(default=0, description="Rows per epoch (several records each when packing).")
    steps_per_epoch: int = 0
    resumed_from_step: int = Field(default=0, description="The checkpoint step this run continued from; 0: from the start.")
    eval_examples: int = 0
    eval_loss_start: float | None = None
    eval_loss_end: float | None = None


def load_config(path: Path, overrides: list[str] | dict | None = None) -> TrainConfig:
    """Load a YAML config, apply ``key=value`` overrides (values parsed as YAML), validate.

    Raises ConfigError with the file name and what to change.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    items = overrides.items() if isinstance(overrides, dict) else [_split_override(o) for o in overrides or []]
    for key, value in items:
        raw[key] = value
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def _split_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, value = item.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_single_process_env() -> None:
    """torch.distributed's env:// rendezvous for one process, unless a launcher already set it."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    os.environ.update(
        {
            "RANK": "0",
            "WORLD_SIZE": "1",
            "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            # a fixed port collides when several trainings share a machine
            "MASTER_PORT": os.environ.get("MASTER_PORT") or str(_free_port()),
        }
    )


def _lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_scheduler == "constant":
            return 1.0
        span = max(1, total_steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        if config.lr_scheduler == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plot_loss_curve(rows: list[dict], path: Path, *, title: str) -> Path | None:
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker="o", linewidth=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def _assistant_token_loss_module(model):
    """Wrap a causal LM so its forward returns the loss on labelled tokens only.

    The vocabulary projection runs only at the positions that carry a label: with Gemma's 262k-token
    vocabulary the full [tokens x vocab] logits are most of a step's compute, and the masked positions
    (system prompt, tools, user turns, tool outputs) need none of it. Same loss as the model's own
    shifted cross-entropy (mean over labelled tokens). With ``position_ids`` (packed rows) a target at a
    position where a new record starts (position 0) is never scored: no record predicts the next one.
    """
    import torch
    import torch.nn.functional as F

    class AssistantTokenLoss(torch.nn.Module):
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, input_ids, attention_mask=None, labels=None, position_ids=None):
            body = getattr(self.lm, self.lm.base_model_prefix)
            # no KV cache: with one, transformers would not read packed position_ids as record boundaries
            hidden = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=False).last_hidden_state
            targets = labels[:, 1:]
            keep = targets != IGNORE_INDEX
            if position_ids is not None:
                keep = keep & (position_ids[:, 1:] != 0)
            logits = self.lm.get_output_embeddings()(hidden[:, :-1][keep])
            cap = getattr(self.lm.config, "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            return F.cross_entropy(logits.float(), targets[keep])

    return AssistantTokenLoss(model)


def pack_rows(lengths: list[int], max_length: int, *, seed: int, packing: bool) -> list[list[int]]:
    """Group example indices into rows of at most ``max_length`` tokens.

    The examples are taken in a seeded order; without packing each is its own row, with packing each goes
    into the first row it fits (first-fit), so the rows stay close to full. Deterministic for a seed.
    """
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    if not packing:
        return [[i] for i in order]
    rows: list[list[int]] = []
    free: list[int] = []
    open_rows: list[int] = []  # rows that can still take the shortest example
    shortest = min(lengths) if lengths else 0
    for i in order:
        for position, r in enumerate(open_rows):
            if lengths[i] <= free[r]:
                rows[r].append(i)
                free[r] -= lengths[i]
                if free[r] < shortest:
                    open_rows.pop(position)
                break
        else:
            rows.append([i])
            free.append(max_length - lengths[i])
            if free[-1] >= shortest:
                open_rows.append(len(rows) - 1)
    return rows


def collate_rows(rows: list[list[dict]], *, pad_id: int, packing: bool) -> dict:
    """Tensors for one micro-batch; each row is a list of tokenised examples (one unless packing).

    Packed: ``input_ids``, ``labels`` and ``position_ids`` (restarting at 0 per example; the padding at a
    short row's end is one more block of its own, unlabelled) and no ``attention_mask``. Not packed:
    ``input_ids``, ``labels``, ``attention_mask`` with right padding, as before.
    """
    import torch

    if not packing:
        if any(len(row) != 1 for row in rows):
            raise ValueError("rows of several examples need packing=True")
        width = max(len(row[0]["input_ids"]) for row in rows)
        batch = {"input_ids": [], "labels": [], "attention_mask": []}
        for (example,) in rows:
            fill = width - len(example["input_ids"])
            batch["input_ids"].append(example["input_ids"] + [pad_id] * fill)
            batch["labels"].append(example["labels"] + [IGNORE_INDEX] * fill)
            batch["attention_mask"].append(example["attention_mask"] + [0] * fill)
        return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
    width = max(sum(len(e["input_ids"]) for e in row) for row in rows)
    batch = {"input_ids": [], "labels": [], "position_ids": []}
    for row in rows:
        ids, labels, positions = [], [], []
        for example in row:
            ids += example["input_ids"]
            labels += example["labels"]
            positions += range(len(example["input_ids"]))
        fill = width - len(ids)
        batch["input_ids"].append(ids + [pad_id] * fill)
        batch["labels"].append(labels + [IGNORE_INDEX] * fill)
        batch["position_ids"].append(positions + list(range(fill)))
    return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}


def _count_tokens(rows: list[list[dict]]) -> tuple[int, int]:
    tokens = sum(len(e["input_ids"]) for row in rows for e in row)
    labelled = sum(1 for row in rows for e in row for label in e["labels"] if label != IGNORE_INDEX)
    return tokens, labelled


class SFTRecipe:
    """setup -> train -> save_checkpoint -> cleanup (torchtune's recipe shape)."""

    def __init__(self, config: TrainConfig, *, progress: Callable[[dict], None] | None = None):
        self.config = config
        self.progress = progress
        self.rows: list[dict] = []
        self.start_step = 0
        self.resumed_state: dict = {}

    # -- setup -------------------------------------------------------------------------------------
    def check_runtime(self) -> None:
        """Settings that depend on this machine or on files, rejected before anything heavy loads."""
        import torch

        config = self.config
        has_gpu = torch.cuda.is_available()
        if config.bf16 and not has_gpu:
            raise ConfigError(
                "bf16: true needs a GPU and none is visible: set bf16: false (fp32 on CPU; autocast_bf16: true "
                "computes in bf16 with fp32 weights)"
            )
        if config.bf16 and config.autocast_bf16:
            raise ConfigError("bf16 and autocast_bf16 are both on: bf16 weights need no autocast, set autocast_bf16: false")
        if config.dist_backend == "nccl" and not has_gpu:
            raise ConfigError("dist_backend: nccl needs GPUs and none is visible: set dist_backend: gloo (or leave it unset)")
        for name in ("config.json", "model.safetensors"):
            if not (config.model_dir / name).exists():
                raise ConfigError(
                    f"model_dir {config.model_dir} has no {name}: point model_dir at a directory written by "
                    "prepare_base_model (phase 1) or by the phase-1 training run (phase 2)"
                )
        if not config.dataset.exists():
            raise ConfigError(f"dataset {config.dataset} does not exist: write it with write_sft_dataset first")

    def setup(self) -> None:
        import deepspeed
        import torch

        from agentscaler_dagster.sft.base_model import load_model_and_tokenizer

        config = self.config
        self.check_runtime()
        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        random.seed(config.seed)
        torch.manual_seed(config.seed)

        _ensure_single_process_env()
        if not torch.cuda.is_available() and not config.cpu_shm_allreduce:
            # DeepSpeed would JIT-compile its shm all-reduce op here; edits to this dict are how it is turned off
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        backend = config.dist_backend or ("nccl" if torch.cuda.is_available() else "gloo")
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])

        model, self.tokenizer = load_model_and_tokenizer(config.model_dir, attn_implementation=config.attn_implementation)
        if config.freeze_embeddings:
            # with tied weights this also fixes lm_head: it is the same Parameter
            model.get_input_embeddings().weight.requires_grad_(False)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        model.config.use_cache = False
        model.train()

        records = read_sft_dataset(config.dataset)
        if not records:
            raise ConfigError(f"dataset {config.dataset} has no records")
        # at most a fifth of the records: a small dataset (a smoke run) keeps its records for training
        held_out = set(random.Random(config.seed + 7919).sample(range(len(records)), min(config.eval_records, len(records) // 5)))
        examples, eval_examples, skipped = [], [], 0
        for index, record in enumerate(records):
            example = tokenize_for_sft(record, self.tokenizer, config.max_length)
            if not any(label != IGNORE_INDEX for label in example["labels"]):
                skipped += 1
            elif index in held_out:
                eval_examples.append(example)
            else:
                examples.append(example)
        if not examples:
            raise ConfigError(
                f"no record of {config.dataset} keeps an assistant token within max_length={config.max_length}: "
                "raise max_length"
            )
        self.examples, self.eval_examples, self.skipped = examples, eval_examples, skipped
        self.row_index = pack_rows([len(e["input_ids"]) for e in examples], config.max_length, seed=config.seed,
                                   packing=config.packing)

        per_step = config.batch_size * config.grad_accum * self.world_size
        self.steps_per_epoch = max(1, math.ceil(len(self.row_index) / per_step))
        self.total_steps = config.max_steps or self.steps_per_epoch * config.epochs

        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=config.lr,
            betas=config.adam_betas,
            weight_decay=config.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, self.total_steps))
        ds_config = {
            "train_micro_batch_size_per_gpu": config.batch_size,
            "gradient_accumulation_steps": config.grad_accum,
            "train_batch_size": per_step,
            "gradient_clipping": config.gradient_clipping,
            "zero_optimization": {"stage": config.zero_stage},
            # the client optimizer is plain torch AdamW: nothing to compile, runs on the CPU accelerator
            "zero_allow_untested_optimizer": True,
            "bf16": {"enabled": config.bf16},
            "fp16": {"enabled": False},
            "steps_per_print": 1 << 30,
            "wall_clock_breakdown": False,
        }
        self.engine, _, _, _ = deepspeed.initialize(
            model=_assistant_token_loss_module(model), optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
        )
        self.device = self.engine.device
        self.fingerprint = self._fingerprint()
        if config.resume:
            self._maybe_resume()

    # -- resume ------------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.config.output_dir / "checkpoints"

    def _fingerprint(self) -> str:
        """What a checkpoint must have been written from to be resumed: the settings that change the numbers
        or the data order, the dataset's bytes, the starting weights and the number of processes."""
        settings = {k: v for k, v in json.loads(self.config.model_dump_json()).items() if k not in _RUNTIME_ONLY}
        inputs = {
            "settings": settings,
            "dataset": _sha256_file(self.config.dataset),
            "weights": _sha256_file(self.config.model_dir / "model.safetensors"),
            "world_size": self.world_size,
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def _maybe_resume(self) -> None:
        import shutil

        latest = self.checkpoint_dir / "latest"
        if not latest.exists():
            return
        tag = latest.read_text().strip()
        meta_path = self.checkpoint_dir / tag / "resume.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if meta.get("fingerprint") != self.fingerprint:
            logger.warning("checkpoint %s was written from other inputs (config, data or weights): starting afresh", self.checkpoint_dir / tag)
            self._barrier()
            if self.rank == 0:
                shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            self._barrier()
            return
        _path, client = self.engine.load_checkpoint(str(self.checkpoint_dir), tag=tag, load_module_strict=False)
        if client is None or client.get("step") != meta["step"]:
            raise RuntimeError(f"checkpoint {self.checkpoint_dir / tag} could not be loaded; delete {self.checkpoint_dir} to start afresh")
        import torch

        torch.set_rng_state(client["torch_rng"])
        random.setstate(client["python_rng"])
        self.start_step = int(client["step"])
        self.resumed_state = client
        logger.info("resumed from %s at step %d of %d", self.checkpoint_dir / tag, self.start_step, self.total_steps)

    def _save_resume_checkpoint(self, step: int, totals: dict) -> None:
        import shutil

        import torch

        tag = f"step{step:08d}"
        client = {"step": step, "fingerprint": self.fingerprint, "torch_rng": torch.get_rng_state(),
                  "python_rng": random.getstate(), **totals}
        # frozen parameters (e.g. the embeddings) equal the starting weights: not written again
        self.engine.save_checkpoint(str(self.checkpoint_dir), tag=tag, client_state=client,
                                    exclude_frozen_parameters=True)
        self._barrier()
        if self.rank == 0:
            # written last: a checkpoint without it (killed while saving) is never resumed
            (self.checkpoint_dir / tag / "resume.json").write_text(json.dumps({"step": step, "fingerprint": self.fingerprint}))
            for old in self.checkpoint_dir.glob("step*"):
                if old.name != tag:
                    shutil.rmtree(old, ignore_errors=True)
        self._barrier()

    def _barrier(self) -> None:
        if self.world_size > 1:
            import deepspeed

            deepspeed.comm.barrier()

    def _all_reduce_sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        import deepspeed
        import torch

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        deepspeed.comm.all_reduce(tensor)
        return tensor.tolist()

    # -- data --------------------------------------------------------------------------------------
    def _micro_batches(self, skip: int = 0):
        """Micro-batches (lists of rows) forever: row order reshuffled each pass (seed + pass number), this
        rank's share; the first ``skip`` are passed over without being built (resume)."""
        config = self.config
        epoch, index = 0, 0
        while True:
            order = list(range(len(self.row_index)))
            random.Random(config.seed * 1_000_003 + epoch).shuffle(order)
            order = order[self.rank :: self.world_size] or order[:1]
            for start in range(0, len(order), config.batch_size):
                if index >= skip:
                    yield [[self.examples[i] for i in self.row_index[r]] for r in order[start : start + config.batch_size]]
                index += 1
            epoch += 1

    def _collate(self, rows: list[list[dict]]) -> dict:
        batch = collate_rows(rows, pad_id=self.tokenizer.pad_token_id or 0, packing=self.config.packing)
        return {key: value.to(self.device) for key, value in batch.items()}

    def _autocast(self):
        import contextlib

        import torch

        if not self.config.autocast_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)

    def evaluate(self) -> float | None:
        """Mean loss per labelled token over the held-out records (all ranks share the work)."""
        import torch

        if not self.eval_examples:
            return None
        total, count = 0.0, 0
        module = self.engine.module
        with torch.no_grad(), self._autocast():
            for example in self.eval_examples[self.rank :: self.world_size]:
                batch = self._collate([[example]])
                n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
                total += float(module(**batch)) * n
                count += n
        total, count = self._all_reduce_sum([total, float(count)])
        return total / count if count else None

    # -- train -------------------------------------------------------------------------------------
    def train(self) -> None:
        config = self.config
        out = config.output_dir
        out.mkdir(parents=True, exist_ok=True)
        metrics_path = out / "metrics.jsonl"
        state = self.resumed_state
        self.eval_loss_start = state.get("eval_loss_start") if self.start_step else self.evaluate()
        metrics = None
        if self.rank == 0:
            if self.start_step and metrics_path.exists():
                # exactly the rows up to the checkpoint: rows logged after it are trained again now
                kept = [row for row in (json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip())
                        if row["step"] <= self.start_step]
                self.rows = kept
                metrics_path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in kept))
                metrics = metrics_path.open("a")
            else:
                metrics = metrics_path.open("w")
        batches = self._micro_batches(skip=self.start_step * config.grad_accum)
        self.tokens = int(state.get("tokens", 0))
        self.label_tokens = int(state.get("label_tokens", 0))
        self.run_tokens = 0
        self.step_seconds: list[float] = []
        previous = float(state.get("elapsed", 0.0))
        started = time.perf_counter()
        try:
            for step in range(self.start_step + 1, self.total_steps + 1):
                step_started = time.perf_counter()
                loss_sum, tokens, label_tokens = 0.0, 0, 0
                for _ in range(config.grad_accum):
                    rows = next(batches)
                    batch = self._collate(rows)
                    with self._autocast():
                        loss = self.engine(**batch)
                    self.engine.backward(loss)
                    self.engine.step()  # DeepSpeed applies the update at the accumulation boundary
                    loss_sum += float(loss.detach())
                    counted = _count_tokens(rows)
                    tokens += counted[0]
                    label_tokens += counted[1]
                # the loss of the whole optimizer step: mean over all micro-batches of all ranks
                loss_sum, tokens, label_tokens = self._all_reduce_sum([loss_sum, float(tokens), float(label_tokens)])
                tokens, label_tokens = int(tokens), int(label_tokens)
                self.step_seconds.append(time.perf_counter() - step_started)
                self.tokens += tokens
                self.label_tokens += label_tokens
                self.run_tokens += tokens
                row = {
                    "step": step,
                    "epoch": round(step / self.steps_per_epoch, 4),
                    "loss": loss_sum / (config.grad_accum * self.world_size),
                    "lr": self.engine.get_lr()[0],
                    "tokens": tokens,
                    "label_tokens": label_tokens,
                    "seconds": round(self.step_seconds[-1], 4),
                    "elapsed": round(previous + time.perf_counter() - started, 4),
                }
                if not math.isfinite(row["loss"]):
                    raise FloatingPointError(
                        f"loss is {row['loss']} at step {step}: lower lr (now {config.lr}) or check the dataset"
                    )
                self.rows.append(row)
                if metrics is not None and (step % config.log_every == 0 or step == self.total_steps):
                    metrics.write(json.dumps(row, sort_keys=True) + "\n")
                    metrics.flush()
                    if self.progress is not None:
                        self.progress({**row, "total_steps": self.total_steps})
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < self.total_steps:
                    self._save_resume_checkpoint(step, {"tokens": self.tokens, "label_tokens": self.label_tokens,
                                                        "elapsed": row["elapsed"], "eval_loss_start": self.eval_loss_start})
        finally:
            if metrics is not None:
                metrics.close()
        self.seconds = time.perf_counter() - started
        self.metrics_path = metrics_path
        self.eval_loss_end = self.evaluate()

    # -- save --------------------------------------------------------------------------------------
    def save_checkpoint(self) -> TrainResult:
        import shutil

        from agentscaler_dagster.sft.base_model import save_model_dir

        config = self.config
        out = config.output_dir
        curve = None
        if self.rank == 0:
            save_model_dir(self.engine.module.lm, self.tokenizer, out)
            curve = plot_loss_curve(self.rows, out / "loss_curve.png", title=f"SFT phase {config.phase}")
            (out / "train_config.yaml").write_text(
                f"# python -m agentscaler_dagster.sft.train --config {out / 'train_config.yaml'}\n"
                + yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=True)
            )
        # skip the first step (allocation, warm-up) when there are more
        timed = self.step_seconds[1:] or self.step_seconds
        rows = self.rows or [{"loss": float("nan")}]
        result = TrainResult(
            output_dir=out,
            phase=config.phase,
            steps=self.total_steps,
            examples=len(self.examples),
            skipped_examples=self.skipped,
            tokens=self.tokens,
            label_tokens=self.label_tokens,
            final_loss=rows[-1]["loss"],
            first_loss=rows[0]["loss"],
            seconds=round(self.seconds, 3),
            seconds_per_step=round(sum(timed) / len(timed), 3) if timed else 0.0,
            metrics_path=self.metrics_path,
            loss_curve_path=curve,
            weights_sha256=_sha256_file(out / "model.safetensors") if self.rank == 0 else "",
            device=str(self.device),
            world_size=self.world_size,
            tokens_per_second=round(self.run_tokens / sum(self.step_seconds), 2) if self.step_seconds else 0.0,
            rows=len(self.row_index),
            steps_per_epoch=self.steps_per_epoch,
            resumed_from_step=self.start_step,
            eval_examples=len(self.eval_examples),
            eval_loss_start=self.eval_loss_start,
            eval_loss_end=self.eval_loss_end,
        )
        if self.rank == 0:
            (out / "train_result.json").write_text(result.model_dump_json(indent=2) + "\n")
        self._barrier()
        if self.rank == 0 and not config.keep_checkpoints:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        return result

    def cleanup(self) -> None:
        import deepspeed

        del self.engine
        try:
            deepspeed.comm.barrier()
        except Exception:  # noqa: BLE001 - best effort on shutdown
            pass


def train(config: TrainConfig, *, progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Run the recipe in this process; ``progress`` gets each logged metrics row."""
    recipe = SFTRecipe(config, progress=progress)
    recipe.setup()
    recipe.train()
    result = recipe.save_checkpoint()
    recipe.cleanup()
    return result


def _run_with_pipes(config_path: Path, overrides: list[str]) -> TrainResult:
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        extra = pipes.extras.get("config_overrides") or {}
        if extra and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # only rank 0 talks to Dagster; the other ranks would train with different settings
            raise ConfigError("config_overrides in Pipes extras reach rank 0 only: pass settings with --set when running several processes")
        config = load_config(config_path, [*overrides, *(f"{k}={json.dumps(v)}" for k, v in sorted(extra.items()))])

        def progress(row: dict) -> None:
            pipes.log.info(
                f"phase {config.phase} step {row['step']}/{row['total_steps']} loss {row['loss']:.4f} "
                f"lr {row['lr']:.2e} {row['seconds']:.2f}s"
            )

        result = train(config, progress=progress)
        pipes.report_asset_materialization(
            metadata={
                "final_loss": {"raw_value": result.final_loss, "type": "float"},
                "first_loss": {"raw_value": result.first_loss, "type": "float"},
                "steps": {"raw_value": result.steps, "type": "int"},
                "examples": {"raw_value": result.examples, "type": "int"},
                "tokens": {"raw_value": result.tokens, "type": "int"},
                "seconds_per_step": {"raw_value": result.seconds_per_step, "type": "float"},
                "tokens_per_second": {"raw_value": result.tokens_per_second, "type": "float"},
                "steps_per_epoch": {"raw_value": result.steps_per_epoch, "type": "int"},
                "resumed_from_step": {"raw_value": result.resumed_from_step, "type": "int"},
                **{
                    name: {"raw_value": value, "type": "float"}
                    for name, value in (("eval_loss_start", result.eval_loss_start), ("eval_loss_end", result.eval_loss_end))
                    if value is not None
                },
                "path": {"raw_value": str(result.output_dir), "type": "path"},
                "phase": {"raw_value": result.phase, "type": "int"},
            },
            data_version=result.weights_sha256,
        )
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentscaler_dagster.sft.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="YAML config (see agentscaler_dagster/sft/configs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config setting (value parsed as YAML); repeatable")
    args, _unknown = parser.parse_known_args(argv)  # deepspeed's launcher adds --local_rank
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # one process reports to Dagster: rank 0 (a launcher gives every rank the same environment)
        if os.environ.get("DAGSTER_PIPES_CONTEXT") and os.environ.get("RANK", "0") == "0":
            result = _run_with_pipes(args.config, args.overrides)
        else:
            config = load_config(args.config, args.overrides)
            result = train(
                config,
                progress=lambda r: logger.info(
                    "step %d/%d loss %.4f lr %.2e %.2fs", r["step"], r["total_steps"], r["loss"], r["lr"], r["seconds"]
                ),
            )
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"final_loss": result.final_loss, "steps": result.steps, "output_dir": str(result.output_dir),
                      "seconds_per_step": result.seconds_per_step, "tokens_per_second": result.tokens_per_second,
                      "resumed_from_step": result.resumed_from_step, "eval_loss_start": result.eval_loss_start,
                      "eval_loss_end": result.eval_loss_end}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
