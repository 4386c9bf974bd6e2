"""Training speed (issue 13): the SFT recipe against a plain Hugging Face ``Trainer``, side by side.

    cd /work/main && HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_training.py \\
        [--dataset artifacts/sft/phase1.jsonl] [--model-dir DIR] [--train-records 16] [--eval-records 12] \\
        [--max-length 2048] [--batch-size 1] [--out /tmp/bench_training]

Both runs get the same model (the real Gemma 3 270M base unless --model-dir says otherwise; written once to
the cache with ``prepare_base_model`` when absent), the same records (the first --train-records of the
dataset; the next --eval-records are held out), the same tokenisation and loss mask (``tokenize_for_sft``,
cut at --max-length), the same batch size, learning rate, cosine schedule and one warm-up step, one epoch
each - so both have trained on exactly the same tokens when they finish.

- baseline: ``transformers.Trainer`` with its defaults for the rest (fp32, AdamW, the model's own loss over
  the full vocabulary, ``DataCollatorForSeq2Seq`` padding), on CPU.
- recipe: ``python -m agentscaler_dagster.sft.train`` (DeepSpeed ZeRO-2, loss on labelled positions only)
  with the speed settings of the phase configs: ``packing``, ``autocast_bf16``, ``freeze_embeddings``.
  ``--recipe-set KEY=VALUE`` changes one (repeatable), e.g. ``--recipe-set freeze_embeddings=false``.

Each run is a subprocess of its own, one after the other (never both at once on the two cores). Measured:
tokens (without padding) per second of training steps (a callback times the Trainer's steps; the recipe times
its own), the training loss against the cumulative token count, and the held-out loss per labelled token of
the base model and of both results, computed by one function in fp32 (the model's own loss). ``uptime`` is
taken before and after. Writes ``<out>/bench_training.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO)]


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return f"loadavg {os.getloadavg()}"


def _examples(dataset: Path, model_dir: Path, max_length: int, start: int, count: int) -> list[dict]:
    from transformers import AutoTokenizer

    from agentscaler_dagster.sft.records import IGNORE_INDEX, read_sft_dataset, tokenize_for_sft

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    records = read_sft_dataset(dataset)[start : start + count]
    examples = [tokenize_for_sft(r, tokenizer, max_length) for r in records]
    return [e for e in examples if any(label != IGNORE_INDEX for label in e["labels"])]


# -- workers (each in its own process) -------------------------------------------------------------------


def worker_hf(args) -> dict:
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback,
                              TrainingArguments)

    torch.manual_seed(args.seed)
    examples = _examples(args.dataset, args.model_dir, args.max_length, 0, args.train_records)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(args.model_dir), dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds: list[float] = []
            self.started = 0.0

        def on_step_begin(self, args_, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args_, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.started)

    timer = StepTimer()
    padding = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    tokens_per_step: list[int] = []

    def collate(features):  # the standard collator; records the real tokens of each batch in training order
        batch = padding(features)
        tokens_per_step.append(int(batch["attention_mask"].sum()))
        return batch

    training_args = TrainingArguments(
        output_dir=str(args.out / "hf"), per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
        num_train_epochs=1, learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=1, weight_decay=0.0,
        max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=args.seed,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=examples, data_collator=collate, callbacks=[timer])
    output = trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row and "train_runtime" not in row]
    out_dir = args.out / "hf_model"
    from agentscaler_dagster.sft.base_model import save_model_dir

    save_model_dir(model, tokenizer, out_dir)
    tokens = sum(len(e["input_ids"]) for e in examples)
    return {
        "steps": len(timer.seconds), "tokens": tokens, "step_seconds": timer.seconds,
        "tokens_per_second": tokens / sum(timer.seconds), "train_runtime": output.metrics.get("train_runtime"),
        "losses": losses, "tokens_per_step": tokens_per_step[: len(losses)], "model_dir": str(out_dir),
    }


def worker_eval(args) -> dict:
    """fp32, the model's own loss: mean over the labelled tokens of the held-out records."""
    import torch
    from transformers import AutoModelForCausalLM

    examples = _examples(args.dataset, args.model_dir, args.max_length, args.train_records, args.eval_records)
    model = AutoModelForCausalLM.from_pretrained(str(args.eval_model), dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            batch = {k: torch.tensor([v]) for k, v in example.items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    return {"eval_loss": total / count, "eval_records": len(examples), "eval_label_tokens": count}


# -- driver ------------------------------------------------------------------------------------------------


def _subprocess(argv: list[str], *, log: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DAGSTER_PIPES_CONTEXT"):
        env.pop(key, None)
    with log.open("w") as handle:
        done = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=handle, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench_training: {' '.join(argv[:4])} ... failed (exit {done.returncode}); see {log}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _common(args) -> list[str]:
    return ["--dataset", str(args.dataset), "--model-dir", str(args.model_dir), "--train-records", str(args.train_records),
            "--eval-records", str(args.eval_records), "--max-length", str(args.max_length), "--batch-size",
            str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed), "--out", str(args.out)]


def run_recipe(args) -> dict:
    from agentscaler_dagster.sft.records import read_sft_dataset, write_sft_dataset

    data = write_sft_dataset(read_sft_dataset(args.dataset)[: args.train_records], args.out / "train.jsonl")
    out = args.out / "recipe_model"
    settings = {"model_dir": args.model_dir, "dataset": data, "output_dir": out, "max_steps": "null", "epochs": 1,
                "lr": args.lr, "lr_scheduler": "cosine", "warmup_steps": 1, "batch_size": args.batch_size,
                "grad_accum": 1, "max_length": args.max_length, "seed": args.seed, "zero_stage": 2,
                "packing": "true", "autocast_bf16": "true", "freeze_embeddings": "true", "eval_records": 0,
                "checkpoint_every": "null"}
    for item in args.recipe_set:
        key, value = item.split("=", 1)
        settings[key] = value
    argv = [sys.executable, "-m", "agentscaler_dagster.sft.train", "--config",
            str(REPO / "agentscaler_dagster" / "sft" / "configs" / "phase1.yaml")]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    started = time.perf_counter()
    summary = _subprocess(argv, log=args.out / "recipe.log")
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    result = json.loads((out / "train_result.json").read_text())
    step_seconds = [r["seconds"] for r in rows]
    return {
        "steps": len(rows), "tokens": result["tokens"], "step_seconds": step_seconds,
        "tokens_per_second": result["tokens"] / sum(step_seconds), "rows": result["rows"],
        "losses": [r["loss"] for r in rows], "tokens_per_step": [r["tokens"] for r in rows],
        "model_dir": str(out), "wall_seconds": round(wall, 1), "settings": {k: str(v) for k, v in settings.items()},
        "final_loss": summary["final_loss"],
    }


def _loss_at(tokens_per_step: list[int], losses: list[float], budget: int, window: int = 4) -> float:
    """Mean training loss of the last ``window`` steps that end within ``budget`` cumulative tokens."""
    seen, inside = 0, []
    for tokens, loss in zip(tokens_per_step, losses):
        seen += tokens
        if seen > budget:
            break
        inside.append(loss)
    tail = inside[-window:] or losses[:1]
    return sum(tail) / len(tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=REPO / "artifacts" / "sft" / "phase1.jsonl",
                        help="SFT JSONL (the main job writes artifacts/sft/phase1.jsonl)")
    parser.add_argument("--model-dir", type=Path, default=None, help="model directory; default: the real Gemma 3 270M base")
    parser.add_argument("--train-records", type=int, default=16)
    parser.add_argument("--eval-records", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_training"))
    parser.add_argument("--recipe-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-baseline", action="store_true", help="reuse <out>/baseline.json from an earlier run")
    parser.add_argument("--worker", choices=["hf", "eval"], help=argparse.SUPPRESS)
    parser.add_argument("--eval-model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.worker == "hf":
        print(json.dumps(worker_hf(args)))
        return 0
    if args.worker == "eval":
        print(json.dumps(worker_eval(args)))
        return 0

    if not args.dataset.exists():
        sys.exit(f"bench_training: dataset {args.dataset} not found: run `bash scripts/run_pipeline.sh` (writes "
                 "artifacts/sft/phase1.jsonl) or pass --dataset")
    if args.model_dir is None:
        from agentscaler_dagster.sft.base_model import cache_dir, prepare_base_model

        args.model_dir = cache_dir() / "bench-gemma3-270m-base"
        if not (args.model_dir / "model.safetensors").exists():
            prepare_base_model(args.model_dir, source="gemma3-270m")

    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": f"{platform.machine()} {os.cpu_count()} cpus",
              "uptime_before": _uptime(), "settings": {k: str(v) for k, v in vars(args).items() if k not in ("worker", "eval_model")}}
    me = [sys.executable, str(Path(__file__).resolve())]
    baseline_path = args.out / "baseline.json"
    if args.skip_baseline and baseline_path.exists():
        report["baseline"] = json.loads(baseline_path.read_text())
    else:
        report["baseline"] = _subprocess([*me, *_common(args), "--worker", "hf"], log=args.out / "hf.log")
        baseline_path.write_text(json.dumps(report["baseline"]))
    report["uptime_between"] = _uptime()
    report["recipe"] = run_recipe(args)
    report["uptime_after"] = _uptime()

    for name, model_dir in (("base", args.model_dir), ("baseline", report["baseline"]["model_dir"]),
                            ("recipe", report["recipe"]["model_dir"])):
        result = _subprocess([*me, *_common(args), "--worker", "eval", "--eval-model", str(model_dir)],
                             log=args.out / f"eval_{name}.log")
        report.setdefault("eval", {})[name] = result
    base, ours = report["baseline"], report["recipe"]
    assert base["tokens"] == ours["tokens"], (base["tokens"], ours["tokens"])
    budget = base["tokens"]
    report["summary"] = {
        "tokens_each": budget,
        "baseline_tokens_per_second": round(base["tokens_per_second"], 1),
        "recipe_tokens_per_second": round(ours["tokens_per_second"], 1),
        "speedup": round(ours["tokens_per_second"] / base["tokens_per_second"], 2),
        "baseline_steps": base["steps"], "recipe_steps": ours["steps"],
        "train_loss_last4_baseline": round(_loss_at(base["tokens_per_step"], base["losses"], budget), 4),
        "train_loss_last4_recipe": round(_loss_at(ours["tokens_per_step"], ours["losses"], budget), 4),
        "heldout_loss_base_model": round(report["eval"]["base"]["eval_loss"], 4),
        "heldout_loss_baseline": round(report["eval"]["baseline"]["eval_loss"], 4),
        "heldout_loss_recipe": round(report["eval"]["recipe"]["eval_loss"], 4),
    }
    (args.out / "bench_training.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"date": report["date"], "uptime_before": report["uptime_before"],
                      "uptime_after": report["uptime_after"], **report["summary"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
