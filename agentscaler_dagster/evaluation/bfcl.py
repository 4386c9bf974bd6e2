"""BFCL v4 on a checkpoint: bfcl-eval's questions, the model's answers, bfcl-eval's verdicts.

The Berkeley Function-Calling Leaderboard's data, executable backends and checkers come from the PyPI package
``bfcl-eval``, which lives in its own venv (``.venv-bfcl``, ``scripts/setup_bfcl.sh``: its numpy and networkx
pins clash with the project's) and is reached only through ``bfcl_scorer.py`` run with that venv's Python.
This side does what needs the model: it picks the questions (seeded), prompts the checkpoint the way the
project's agent is prompted (the question's messages, the functions as tools in the project's chat template,
as bfcl-eval prompts a local hermes-format function-calling model) and decodes the tool calls with the
project's parser into bfcl-eval's form ``[{"func_name": {"arg": value}}]``. Multi-turn questions run as
conversations whose calls bfcl-eval's backends execute between steps. Nothing here judges an answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from agentscaler_dagster.sft.chat_template import END_OF_TURN, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, parse_assistant_output, render

SCORER = Path(__file__).with_name("bfcl_scorer.py")
DEFAULT_BFCL_VENV = ".venv-bfcl"
DEFAULT_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")
MULTI_TURN_CATEGORIES = ("multi_turn_base",)
# what bfcl_scorer.py can judge (its SUPPORTED; a test keeps the two equal)
SUPPORTED_CATEGORIES = (*DEFAULT_CATEGORIES, "irrelevance", *MULTI_TURN_CATEGORIES)
BFCL_MAX_STEPS_PER_TURN = 20  # bfcl-eval's MAXIMUM_STEP_LIMIT
Progress = Callable[[str], None]


class BfclUnavailable(RuntimeError):
    """The bfcl-eval venv is missing or broken; the message says how to make it."""


def default_bfcl_python() -> str:
    """$AGENTSCALER_BFCL_PYTHON, else .venv-bfcl/bin/python of the repository (made by scripts/setup_bfcl.sh)."""
    env = os.environ.get("AGENTSCALER_BFCL_PYTHON")
    if env:
        return env
    return str(Path(__file__).resolve().parents[2] / DEFAULT_BFCL_VENV / "bin" / "python")


def bfcl_python(python: str | None = None) -> str:
    """The Python of the venv holding bfcl-eval; raises ``BfclUnavailable`` naming the setup script."""
    path = python or default_bfcl_python()
    if not Path(path).exists():
        raise BfclUnavailable(
            f"no Python with bfcl-eval at {path!r}: run `bash scripts/setup_bfcl.sh` (makes {DEFAULT_BFCL_VENV}, "
            "bfcl-eval's own venv: its pins clash with the project's) or set AGENTSCALER_BFCL_PYTHON"
        )
    return path


def scorer_command(python: str, *args: str) -> list[str]:
    return [python, str(SCORER), *args]


def _run_scorer(python: str, *args: str, timeout: float = 600) -> str:
    done = subprocess.run(scorer_command(python, *args), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        hint = " (is bfcl-eval installed? `bash scripts/setup_bfcl.sh`)" if "ModuleNotFoundError" in done.stderr else ""
        raise BfclUnavailable(f"bfcl_scorer.py {args[0]} failed with exit code {done.returncode}{hint}:\n{done.stderr[-3000:]}")
    return done.stdout


class BfclQuestion(BaseModel):
    """One BFCL question as bfcl-eval loads it (language hints added, multi-turn functions filled in)."""

    id: str
    category: str
    question: list[list[dict]] = Field(description="Messages per turn; single-turn questions have one turn.")
    function: list[dict] = Field(description="BFCL function docs (name, description, parameters).")

    @property
    def multi_turn(self) -> bool:
        return self.category in MULTI_TURN_CATEGORIES

    @property
    def tools(self) -> list[dict]:
        # OpenAI tool wrappers around BFCL's own docs, unconverted, as bfcl-eval hands them to local models
        return [{"type": "function", "function": doc} for doc in self.function]


def _check_categories(categories: list[str] | tuple[str, ...]) -> list[str]:
    unknown = [c for c in categories if c not in SUPPORTED_CATEGORIES]
    if unknown or not categories:
        raise ValueError(f"BFCL categories {unknown or list(categories)} not supported; choose from {', '.join(SUPPORTED_CATEGORIES)}")
    return list(dict.fromkeys(categories))


def load_questions(python: str, categories: list[str] | tuple[str, ...]) -> list[BfclQuestion]:
    """Every question of ``categories``, loaded by bfcl-eval in its venv."""
    categories = _check_categories(categories)
    with tempfile.TemporaryDirectory(prefix="bfcl-questions-") as tmp:
        out = Path(tmp) / "questions.jsonl"
        _run_scorer(python, "prepare", "--categories", ",".join(categories), "--out", str(out))
        with out.open(encoding="utf-8") as handle:
            return [BfclQuestion.model_validate_json(line) for line in handle if line.strip()]


def selection_rank(seed: int, question_id: str) -> str:
    return hashlib.sha256(f"{seed}:{question_id}".encode()).hexdigest()


def select_questions(questions: list[BfclQuestion], *, limit_per_category: int, seed: int) -> list[BfclQuestion]:
    """``limit_per_category`` questions per category (0: all), the same ones for a seed whatever the file order.

    Ranked by a hash of (seed, id) rather than a shuffled prefix, so a category that grows in a new bfcl-eval
    release keeps most of its earlier picks. Returned in category order, then by id.
    """
    if limit_per_category < 0:
        raise ValueError(f"limit_per_category must be >= 0 (0: every question), got {limit_per_category}")
    by_category: dict[str, list[BfclQuestion]] = {}
    for question in questions:
        by_category.setdefault(question.category, []).append(question)
    chosen = []
    for category, group in by_category.items():
        ranked = sorted(group, key=lambda q: selection_rank(seed, q.id))
        picked = ranked[:limit_per_category] if limit_per_category else ranked
        chosen += sorted(picked, key=lambda q: _id_order(q.id))
    return chosen


def _id_order(question_id: str) -> tuple[str, int]:
    prefix, _, number = question_id.rpartition("_")
    return (prefix, int(number)) if number.isdigit() else (question_id, -1)


_CALL_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r".*?" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


def decode_tool_calls(text: str) -> list[dict] | None:
    """The model's text as bfcl-eval's decoded calls: ``[{"name": {arg: value}}]``.

    As bfcl-eval decodes a hermes-format model (its QwenFCHandler): every well-formed
    ``<tool_call>...</tool_call>`` block is a call and a broken one (bad JSON, no name, cut off by the token
    limit) is dropped, where the project's agent would read the whole reply as text. What makes one block
    well-formed is the project's own parser's rule. ``[]`` for a reply without calls; ``None`` when the text
    tries to call but no block is well-formed - bfcl-eval's "failed to decode".
    """
    calls = []
    for block in _CALL_BLOCK.findall(text or ""):
        for call in parse_assistant_output(block).get("tool_calls") or []:
            calls.append({call["function"]["name"]: json.loads(call["function"]["arguments"])})
    if calls:
        return calls
    return None if TOOL_CALL_OPEN in (text or "") else []


class BatchGenerator:
    """Greedy generation on one checkpoint, many prompts at once (left-padded batches).

    On the 2-core CPU the 270M model generates ~3-7 tokens/s for one sequence and ~23 tokens/s in total for
    a batch of 20 (bfloat16, machine loaded), which is what makes a few dozen questions per checkpoint affordable.
    """

    def __init__(self, model_dir: Path, *, max_new_tokens: int = 128, batch_size: int = 32, dtype: str = "bfloat16"):
        import torch

        from agentscaler_dagster.sft.base_model import load_model_and_tokenizer

        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens} and {batch_size}")
        if dtype not in ("bfloat16", "float32"):
            raise ValueError(f"dtype must be bfloat16 or float32, got {dtype!r}")
        self.model_dir = Path(model_dir)
        self.model, self.tokenizer = load_model_and_tokenizer(self.model_dir)
        # bfloat16, as the project's vLLM serving runs the model: ~1.6x faster than float32 on this CPU (AMX)
        self.model.to(getattr(torch, dtype)).eval()
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens must follow every prompt directly
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self._stop_ids = [self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(END_OF_TURN)]
        self.new_tokens = 0
        self.seconds = 0.0
        self._torch = torch

    def prompt(self, messages: list[dict], tools: list[dict]) -> str:
        return render(self.tokenizer, messages, tools, add_generation_prompt=True)

    def generate(self, prompts: list[str]) -> list[str]:
        torch = self._torch
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        # batches of similar length waste less on padding; the order is fixed by the prompts, so reruns match
        order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
        texts: list[str] = [""] * len(prompts)
        started = time.perf_counter()
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            encoded = self.tokenizer([prompts[i] for i in chunk], add_special_tokens=False, return_tensors="pt", padding=True)
            with torch.no_grad():
                output = self.model.generate(
                    **encoded, max_new_tokens=self.max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                    eos_token_id=self._stop_ids, pad_token_id=self.tokenizer.pad_token_id,
                )
            new = output[:, encoded["input_ids"].shape[1] :]
            for row, index in zip(new, chunk):
                self.new_tokens += int(sum(1 for t in row.tolist() if t != self.tokenizer.pad_token_id))
                texts[index] = self.tokenizer.decode(row, skip_special_tokens=True)
        self.seconds += time.perf_counter() - started
        return texts


class ServedGenerator:
    """The same prompts as ``BatchGenerator``, answered by a model server (``/v1/completions``), many at once.

    The prompt is rendered here with the checkpoint's own chat template, exactly as in-process, and sent as
    text (no special tokens added by the server: the template has its ``<bos>``), greedy, stopping at the end
    of the turn. vLLM batches the concurrent requests itself (continuous batching).
    """

    def __init__(self, client, model_dir: Path, *, max_new_tokens: int = 128, concurrency: int = 16):
        from transformers import AutoTokenizer

        from agentscaler_dagster.sft.chat_template import CHAT_TEMPLATE

        if max_new_tokens < 1 or concurrency < 1:
            raise ValueError(f"max_new_tokens and concurrency must be >= 1, got {max_new_tokens} and {concurrency}")
        self.client, self.model_dir = client, Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        if not getattr(self.tokenizer, "chat_template", None):
            self.tokenizer.chat_template = CHAT_TEMPLATE
        self.max_new_tokens, self.concurrency = max_new_tokens, concurrency
        self.new_tokens = 0
        self.seconds = 0.0

    def prompt(self, messages: list[dict], tools: list[dict]) -> str:
        return render(self.tokenizer, messages, tools, add_generation_prompt=True)

    def generate(self, prompts: list[str]) -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        def one(prompt: str) -> dict:
            return self.client.complete(prompt=prompt, max_tokens=self.max_new_tokens, temperature=0.0, stop=[END_OF_TURN],
                                        extra={"add_special_tokens": False})

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="bfcl") as pool:
            replies = list(pool.map(one, prompts))  # in prompt order, whatever order they finish in
        self.seconds += time.perf_counter() - started
        self.new_tokens += sum(r["completion_tokens"] for r in replies)
        return [r["text"].replace(END_OF_TURN, "").strip() for r in replies]


class MultiTurnExecutor:
    """bfcl-eval's executable backends in its venv (``bfcl_scorer.py execute``), one JSON line per step."""

    def __init__(self, python: str):
        # the backends print as they run: their output goes to a file, not into a pipe nobody reads
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            scorer_command(python, "execute"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, bufsize=1,
        )
        ready = self.process.stdout.readline()
        if not ready.startswith('{"ready"'):
            self.process.kill()
            self.process.wait()
            raise BfclUnavailable(f"bfcl_scorer.py execute did not start (answered {ready!r}):\n{self.stderr_tail()}")

    def stderr_tail(self, limit: int = 3000) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-limit:]

    def execute(self, model: str, question_id: str, calls: list[dict]) -> list[str]:
        self.process.stdin.write(json.dumps({"model": model, "id": question_id, "calls": calls}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"bfcl-eval executor exited during {model}/{question_id}:\n{self.stderr_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"bfcl-eval executor, {model}/{question_id}: {reply['error']}")
        return reply["results"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()

    def __enter__(self) -> "MultiTurnExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Conversation:
    """One multi-turn question played the way bfcl-eval's inference loop plays it for a local model.

    Each turn's user messages are added; the model steps until a step has no decodable call (end of turn);
    every call's result goes back as a tool message. A turn that reaches ``max_steps`` ends the conversation
    early (bfcl-eval's force-quit, after 20 steps there), which its checker fails as "force-terminated".
    """

    def __init__(self, question: BfclQuestion, model: str, max_steps: int):
        self.question, self.model, self.max_steps = question, model, max_steps
        self.messages: list[dict] = []
        self.turn, self.steps = -1, 0
        self.result: list[list] = []
        self.raw: list[list[str]] = []
        self.done = False
        self._next_turn()

    def _next_turn(self) -> None:
        self.turn += 1
        if self.turn >= len(self.question.question):
            self.done = True
            return
        self.messages += self.question.question[self.turn]
        self.result.append([])
        self.raw.append([])
        self.steps = 0

    def advance(self, text: str, executor: MultiTurnExecutor) -> None:
        calls = decode_tool_calls(text)
        # the history holds the calls as decoded (bfcl-eval keeps the extracted calls, not the raw text)
        self.messages.append(
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": name, "arguments": args}} for call in calls for name, args in call.items()]}
            if calls else {"role": "assistant", "content": text}
        )
        self.result[-1].append(calls)
        self.raw[-1].append(text)
        if not calls:
            self._next_turn()
            return
        results = executor.execute(self.model, self.question.id, calls)
        self.messages += [{"role": "tool", "content": r} for r in results]
        self.steps += 1
        if self.steps >= self.max_steps:
            self.done = True  # force-quit: fewer turns than the question has


def answer_questions(
    generator: BatchGenerator, questions: list[BfclQuestion], *, model: str, executor: MultiTurnExecutor | None = None,
    max_steps_per_turn: int = 5, progress: Progress | None = None,
) -> list[dict]:
    """One answer line per question (bfcl_scorer.py's format). Multi-turn conversations advance in lockstep,
    one batched generation per round, so they share the batch as single-turn questions do."""
    log = progress or (lambda _: None)
    single = [q for q in questions if not q.multi_turn]
    answers: dict[str, dict] = {}
    if single:
        texts = generator.generate([generator.prompt(q.question[0], q.tools) for q in single])
        for q, text in zip(single, texts):
            answers[q.id] = {"model": model, "id": q.id, "category": q.category, "result": decode_tool_calls(text), "raw": text}
        log(f"{model}: {len(single)} single-turn answers, {generator.new_tokens} tokens in {generator.seconds:.0f} s")
    conversations = [_Conversation(q, model, max_steps_per_turn) for q in questions if q.multi_turn]
    if conversations and executor is None:
        raise ValueError("multi-turn questions need a MultiTurnExecutor (bfcl-eval's backends)")
    rounds = 0
    while any(not c.done for c in conversations):
        active = [c for c in conversations if not c.done]
        texts = generator.generate([generator.prompt(c.messages, c.question.tools) for c in active])
        for conversation, text in zip(active, texts):
            conversation.advance(text, executor)
        rounds += 1
        log(f"{model}: multi-turn round {rounds}, {sum(not c.done for c in conversations)}/{len(conversations)} conversations going")
    for c in conversations:
        answers[c.question.id] = {"model": model, "id": c.question.id, "category": c.question.category, "result": c.result, "raw": c.raw}
    return [answers[q.id] for q in questions]


def generate_answers(
    model_dirs: dict[str, Path], questions: list[BfclQuestion], *, python: str, max_new_tokens: int = 128, batch_size: int = 32,
    dtype: str = "bfloat16", max_steps_per_turn: int = 5, progress: Progress | None = None,
    generator_factory: Callable[[str, Path], "BatchGenerator | ServedGenerator"] | None = None,
) -> tuple[list[dict], dict[str, float]]:
    """Every model answers every question, one model loaded at a time; returns (answers, seconds per model).

    ``generator_factory(name, model_dir)`` gives each model's generator (e.g. a ``ServedGenerator`` on a server
    that serves that model); by default an in-process ``BatchGenerator``."""
    if max_steps_per_turn < 1:
        raise ValueError(f"max_steps_per_turn must be >= 1, got {max_steps_per_turn}")
    answers: list[dict] = []
    seconds: dict[str, float] = {}
    executor = MultiTurnExecutor(python) if any(q.multi_turn for q in questions) else None
    try:
        for name, model_dir in model_dirs.items():
            started = time.monotonic()
            generator = (generator_factory(name, Path(model_dir)) if generator_factory is not None else
                         BatchGenerator(model_dir, max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype))
            answers += answer_questions(generator, questions, model=name, executor=executor,
                                        max_steps_per_turn=max_steps_per_turn, progress=progress)
            seconds[name] = time.monotonic() - started
            del generator  # one model in memory at a time
    finally:
        if executor is not None:
            executor.close()
    return answers, seconds


def write_answers(answers: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in answers:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def score_answers(python: str, answers: Path, out: Path) -> dict:
    """bfcl-eval's checker on ``answers`` without Dagster (the asset runs the same command through Pipes)."""
    _run_scorer(python, "score", "--answers", str(answers), "--out", str(out))
    return json.loads(out.read_text(encoding="utf-8"))


class CategoryScore(BaseModel):
    correct: int
    total: int
    accuracy: float


class ModelScore(BaseModel):
    model_dir: str
    categories: dict[str, CategoryScore]
    overall: float = Field(description="Correct answers / questions, over every category.")
    errors: dict[str, int] = Field(description="bfcl-eval's error types of the failed answers, counted.")


class BfclReport(BaseModel):
    bfcl_eval_version: str
    checker_model: str = Field(description="bfcl-eval registry entry the AST checker reads underscore_to_dot from.")
    seed: int
    limit_per_category: int
    categories: list[str]
    question_ids: dict[str, list[str]]
    settings: dict = Field(description="Generation settings: max_new_tokens, batch_size, dtype, max_steps_per_turn.")
    models: dict[str, ModelScore]
    report_path: str | None = None
    chart_path: str | None = None

    @property
    def questions(self) -> int:
        return sum(len(ids) for ids in self.question_ids.values())


def build_report(
    scores: dict, questions: list[BfclQuestion], model_dirs: dict[str, Path], *, seed: int, limit_per_category: int,
    settings: dict,
) -> BfclReport:
    """The scorer's verdicts per model, with the questions and settings that produced them (no timings: the
    report's bytes, and so the asset's data version, change only when an answer or verdict does)."""
    question_ids: dict[str, list[str]] = {}
    for q in questions:
        question_ids.setdefault(q.category, []).append(q.id)
    models = {}
    for name in model_dirs:
        if name not in scores["models"]:
            raise ValueError(f"the scores have no model {name!r} (they have {sorted(scores['models'])})")
        errors = Counter(e["error_type"] or "unknown" for e in scores["entries"] if e["model"] == name and not e["valid"])
        models[name] = ModelScore(
            model_dir=str(model_dirs[name]), categories=scores["models"][name]["categories"], overall=scores["models"][name]["overall"],
            errors=dict(sorted(errors.items())),
        )
    return BfclReport(
        bfcl_eval_version=scores["bfcl_eval_version"], checker_model=scores["checker_model"], seed=seed,
        limit_per_category=limit_per_category, categories=list(question_ids), question_ids=question_ids, settings=settings, models=models,
    )


def markdown_table(report: BfclReport) -> str:
    names = list(report.models)
    lines = ["| category | questions | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for category in report.categories:
        cells = []
        for name in names:
            score = report.models[name].categories[category]
            cells.append(f"{score.accuracy:.2f} ({score.correct}/{score.total})")
        lines.append(f"| {category} | {len(report.question_ids[category])} | " + " | ".join(cells) + " |")
    lines.append(f"| overall | {report.questions} | " + " | ".join(f"{report.models[n].overall:.2f}" for n in names) + " |")
    return "\n".join(lines)


def plot_accuracy(report: BfclReport, path: Path) -> Path:
    """Accuracy per category, one bar per model, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, categories = list(report.models), report.categories
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(categories) + 2), 3.6), dpi=100)
    for i, name in enumerate(names):
        values = [report.models[name].categories[c].accuracy for c in categories]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(categories))]
        bars = ax.bar(xs, values, width=width, label=name)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7)
    ax.set_xticks(range(len(categories)), categories, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (bfcl-eval checker)")
    ax.set_title(f"BFCL v4, {report.questions} questions (seed {report.seed})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})  # no Software stamp: bytes depend on the scores only
    plt.close(fig)
    return path


def write_report(report: BfclReport, out_dir: Path) -> BfclReport:
    """``bfcl_report.json`` and ``bfcl_accuracy.png`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report.chart_path = str(plot_accuracy(report, out_dir / "bfcl_accuracy.png"))
    report.report_path = str(out_dir / "bfcl_report.json")
    Path(report.report_path).write_text(json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report
