"""BFCL v4 with bfcl-eval's own data, backends and checkers. Runs in .venv-bfcl, not in the project's venv.

bfcl-eval pins numpy==1.26.4 and networkx==3.3 (the project's venv has numpy 2), so it lives in its own venv,
made by ``bash scripts/setup_bfcl.sh``. This script imports only the standard library, dagster-pipes and
bfcl-eval - never the agentscaler_dagster package - and is run by path with that venv's Python:

    .venv-bfcl/bin/python agentscaler_dagster/evaluation/bfcl_scorer.py prepare --categories simple_python,multiple --out Q.jsonl
    .venv-bfcl/bin/python agentscaler_dagster/evaluation/bfcl_scorer.py execute      # JSON lines on stdin/stdout
    .venv-bfcl/bin/python agentscaler_dagster/evaluation/bfcl_scorer.py score --answers A.jsonl --out REPORT.json

``prepare`` writes every question of the categories as bfcl-eval loads them for its own runs
(``load_dataset_entry``: language hints added to the function docs, multi-turn function docs filled in).
``execute`` runs a model's multi-turn calls against bfcl-eval's executable backends while the model generates
(the model must see each call's result). ``score`` re-loads the questions and possible answers from bfcl-eval
(never from the caller) and runs bfcl-eval's per-entry evaluation - ``ast_checker`` for the AST categories,
``multi_turn_checker`` for multi-turn - on each answer, then reports accuracy per model and category, through
Dagster Pipes when Dagster launched it.

An answer line is ``{"model", "id", "category", "result", "raw"}``. For an AST category ``result`` is the
decoded calls, ``[{"func_name": {"arg": value}}]``, or null when the output could not be decoded as calls;
for multi-turn it is one list per turn of one entry per generation step (decoded calls, ``[]`` or null).
Decoding the model's text is the caller's job (the project's chat-template parser); judging is bfcl-eval's.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

# Run by path, Python puts this file's folder (agentscaler_dagster/evaluation) first on sys.path, where
# modules such as agent.py or metrics.py could shadow what bfcl-eval's dependencies import.
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
# bfcl-eval creates result/, score/ and .file_locks/ under BFCL_PROJECT_ROOT at import (default: next to
# site-packages); keep them out of the venv.
os.environ.setdefault("BFCL_PROJECT_ROOT", os.path.join(tempfile.gettempdir(), "agentscaler-bfcl"))

AST_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
MULTI_TURN_CATEGORIES = ("multi_turn_base",)
SUPPORTED = AST_CATEGORIES + MULTI_TURN_CATEGORIES
# The AST checker reads one thing from bfcl-eval's model registry: whether the model saw function names with
# "." turned into "_". Ours sees BFCL's names unchanged, as bfcl-eval's local hermes-format (<tool_call>)
# handlers do; this is that registry entry, and it is checked to have underscore_to_dot=False.
CHECKER_MODEL = "Qwen/Qwen3-0.6B-FC"


class ScorerError(Exception):
    """Bad input to the scorer: says which file or argument and what is wrong."""


def _categories(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in SUPPORTED]
    if unknown or not names:
        raise ScorerError(f"unsupported BFCL categories {unknown or names}; supported: {', '.join(SUPPORTED)}")
    return names


def _load(category: str) -> tuple[list[dict], list[dict] | None]:
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    entries = load_dataset_entry(category)
    if category == "irrelevance":
        return entries, None  # success is "no call", there is no possible answer
    truth = load_ground_truth_entry(category)
    if len(truth) != len(entries):
        raise ScorerError(f"bfcl-eval {category}: {len(entries)} questions but {len(truth)} possible answers")
    return entries, truth  # aligned by position, as bfcl-eval's own runner aligns them


def prepare(categories: list[str], out: Path) -> dict:
    counts = {}
    with out.open("w", encoding="utf-8") as handle:
        for category in categories:
            entries, _ = _load(category)
            for entry in entries:
                row = {"id": entry["id"], "category": category, "question": entry["question"], "function": entry["function"]}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts[category] = len(entries)
    return counts


class _DecodedAnswers:
    """The handler bfcl-eval's per-entry evaluation decodes with: our answers arrive decoded already.

    ``None`` stands for output that was not a call list (bfcl-eval's "failed to decode"); multi-turn steps are
    turned into bfcl-eval's executable call strings by its own ``convert_to_function_call``.
    """

    def decode_ast(self, result, language=None, has_tool_call_tag=False):
        if result is None:
            raise ValueError("the model's output is not a tool-call list")
        return result

    def decode_execute(self, result, has_tool_call_tag=False):
        from bfcl_eval.model_handler.utils import convert_to_function_call

        if result is None:
            raise ValueError("the model's output is not a tool-call list")
        return convert_to_function_call(result)


def _read_answers(path: Path) -> list[dict]:
    answers = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ScorerError(f"{path}:{number}: not JSON: {exc}") from exc
            missing = [k for k in ("model", "id", "category", "result") if k not in row]
            if missing:
                raise ScorerError(f"{path}:{number}: answer without {', '.join(missing)}")
            if row["category"] not in SUPPORTED:
                raise ScorerError(f"{path}:{number}: unsupported category {row['category']!r}; supported: {', '.join(SUPPORTED)}")
            answers.append(row)
    return answers


def _judge(answer: dict, entry: dict, truth: dict | None) -> dict:
    from bfcl_eval.constants.enums import Language, ReturnFormat
    from bfcl_eval.eval_checker import eval_runner

    handler, category = _DecodedAnswers(), answer["category"]
    entry = copy.deepcopy(entry)  # bfcl-eval's evaluation edits the entry it is given
    if category in MULTI_TURN_CATEGORIES:
        if not isinstance(answer["result"], list):
            raise ScorerError(f"answer {answer['model']}/{answer['id']}: a multi-turn result is a list of turns")
        return eval_runner._evaluate_single_multi_turn_entry(
            handler, entry["id"], answer["result"], truth["ground_truth"], entry,
            f"agentscaler_{answer['model']}", category,  # per-model name: backends keep state per name
        )
    if category == "irrelevance":
        return eval_runner._evaluate_single_relevance_entry(handler, entry["id"], answer["result"], entry, CHECKER_MODEL.replace("/", "_"), category)
    return eval_runner._evaluate_single_ast_entry(
        handler, entry["id"], answer["result"], truth["ground_truth"], entry, CHECKER_MODEL.replace("/", "_"),
        category, Language.PYTHON, ReturnFormat.PYTHON, False,
    )


def score(answers_path: Path) -> dict:
    from bfcl_eval.constants.model_config import MODEL_CONFIG_MAPPING

    if MODEL_CONFIG_MAPPING[CHECKER_MODEL].underscore_to_dot:
        raise ScorerError(f"bfcl-eval's {CHECKER_MODEL} now has underscore_to_dot=True; pick an entry without it")
    answers = _read_answers(answers_path)
    if not answers:
        raise ScorerError(f"{answers_path}: no answers")
    loaded = {c: _load(c) for c in sorted({a["category"] for a in answers})}
    index = {c: {e["id"]: (e, t[i] if t else None) for i, e in enumerate(entries)} for c, (entries, t) in loaded.items()}
    seen, entries_out = set(), []
    tally: dict = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for answer in answers:
        key = (answer["model"], answer["id"])
        if key in seen:
            raise ScorerError(f"{answers_path}: two answers of model {answer['model']!r} to {answer['id']}")
        seen.add(key)
        if answer["id"] not in index[answer["category"]]:
            raise ScorerError(f"{answers_path}: {answer['id']} is not a question of bfcl-eval's {answer['category']}")
        entry, truth = index[answer["category"]][answer["id"]]
        with contextlib.redirect_stdout(sys.stderr):  # the backends print; stdout carries the report
            verdict = _judge(answer, entry, truth)
        valid = bool(verdict.get("valid"))
        cell = tally[answer["model"]][answer["category"]]
        cell[0] += valid
        cell[1] += 1
        error = verdict.get("error")
        if isinstance(error, dict):  # multi-turn errors are a dict with their own type
            error_type, error = error.get("error_type"), error.get("error_message", error)
        else:
            error_type = verdict.get("error_type")
        entries_out.append({"model": answer["model"], "id": answer["id"], "category": answer["category"], "valid": valid,
                            "error_type": None if valid else error_type, "error": None if valid else json.loads(json.dumps(error, default=str))})
    models = {
        model: {
            "categories": {c: {"correct": n, "total": t, "accuracy": round(n / t, 4)} for c, (n, t) in sorted(cats.items())},
            "overall": round(sum(n for n, _ in cats.values()) / sum(t for _, t in cats.values()), 4),
        }
        for model, cats in tally.items()
    }
    from importlib.metadata import version

    return {"bfcl_eval_version": version("bfcl-eval"), "checker_model": CHECKER_MODEL, "models": models, "entries": entries_out}


def execute_loop(stdin, stdout) -> None:
    """One request per line: ``{"model", "id", "calls": [{name: {arg: value}}]}`` -> ``{"results": [...]}``.

    Each (model, question) pair keeps its own backend instances across requests, as bfcl-eval's inference
    keeps them across the turns of a conversation.
    """
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import execute_multi_turn_func_call
    from bfcl_eval.model_handler.utils import convert_to_function_call
    from bfcl_eval.utils import load_dataset_entry

    entries = {e["id"]: e for c in MULTI_TURN_CATEGORIES for e in load_dataset_entry(c)}
    print(json.dumps({"ready": True, "questions": len(entries)}), file=stdout, flush=True)
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            entry = entries.get(request["id"])
            if entry is None:
                raise ScorerError(f"{request['id']!r} is not a question of {', '.join(MULTI_TURN_CATEGORIES)}")
            calls = convert_to_function_call(request["calls"])
            with contextlib.redirect_stdout(sys.stderr):
                results, _ = execute_multi_turn_func_call(
                    calls, entry["initial_config"], entry["involved_classes"], f"agentscaler_{request['model']}", entry["id"]
                )
            reply = {"results": results, "calls": calls}
        except Exception as exc:  # one bad request must not end the conversation of the others
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply, ensure_ascii=False, default=str), file=stdout, flush=True)


def _report_to_dagster(report: dict, out: Path) -> None:
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        metadata = {"bfcl_eval_version": {"raw_value": report["bfcl_eval_version"], "type": "text"},
                    "scores": {"raw_value": str(out), "type": "path"}}
        for model, result in report["models"].items():
            metadata[f"accuracy_{model}"] = {"raw_value": result["overall"], "type": "float"}
            for category, cell in result["categories"].items():
                metadata[f"accuracy_{model}_{category}"] = {"raw_value": cell["accuracy"], "type": "float"}
                pipes.log.info(f"{model} {category}: {cell['correct']}/{cell['total']} = {cell['accuracy']:.3f}")
        pipes.report_asset_materialization(metadata=metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the questions of the categories as bfcl-eval loads them")
    p.add_argument("--categories", required=True, help=f"comma-separated; supported: {','.join(SUPPORTED)}")
    p.add_argument("--out", required=True, type=Path)
    sub.add_parser("execute", help="execute multi-turn calls against bfcl-eval's backends (JSON lines)")
    s = sub.add_parser("score", help="bfcl-eval's checker on an answers file; accuracy per model and category")
    s.add_argument("--answers", required=True, type=Path)
    s.add_argument("--out", type=Path, help="where to write the report (JSON); stdout when absent")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            counts = prepare(_categories(args.categories), args.out)
            print(json.dumps({"questions": counts, "out": str(args.out)}))
        elif args.command == "execute":
            out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
            sys.stdout = sys.stderr  # only the protocol goes to the real stdout
            execute_loop(sys.stdin, out)
        else:
            if not args.answers.is_file():
                raise ScorerError(f"answers file {args.answers} does not exist")
            report = score(args.answers)
            text = json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False)
            if args.out:
                args.out.write_text(text + "\n", encoding="utf-8")
                summary = {m: r["categories"] for m, r in report["models"].items()}
                print(json.dumps(summary, sort_keys=True))
            else:
                print(text)
            if os.environ.get("DAGSTER_PIPES_CONTEXT"):
                _report_to_dagster(report, args.out or Path("-"))
    except ScorerError as exc:
        print(f"bfcl_scorer: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
