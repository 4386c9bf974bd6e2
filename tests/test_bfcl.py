"""BFCL v4 through bfcl-eval: question choice, decoding, bfcl-eval's own checker and backends, the asset.

Real parts: bfcl-eval (PyPI, in its own venv .venv-bfcl made by scripts/setup_bfcl.sh) with its real
questions, possible answers, AST and multi-turn checkers and executable backends, run through
``bfcl_scorer.py`` exactly as the asset runs it; the project's chat-template parser; a tiny randomly
initialised Gemma 3 with the real tokenizer for the asset's end-to-end run on a real Dagster instance (its
answers are noise; what is checked is that every answer is judged and reported). Nothing is mocked. Tests
that need bfcl-eval skip when .venv-bfcl is absent, unless AGENTSCALER_REQUIRE_BFCL=1 (scripts/test.sh sets it).
"""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from agentscaler_dagster.evaluation import bfcl
from agentscaler_dagster.evaluation import bfcl_scorer

BFCL_PYTHON = bfcl.default_bfcl_python()
HAVE_BFCL = Path(BFCL_PYTHON).exists()
needs_bfcl = pytest.mark.skipif(
    not HAVE_BFCL and os.environ.get("AGENTSCALER_REQUIRE_BFCL") != "1",
    reason=f"bfcl-eval's venv not found at {BFCL_PYTHON}: run `bash scripts/setup_bfcl.sh` (or set AGENTSCALER_REQUIRE_BFCL=1 to fail instead)",
)


def call_text(name: str, arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


# ---------------------------------------------------------------- without bfcl-eval


def test_scorer_and_core_agree_on_categories():
    assert bfcl_scorer.SUPPORTED == bfcl.SUPPORTED_CATEGORIES
    assert bfcl_scorer.MULTI_TURN_CATEGORIES == bfcl.MULTI_TURN_CATEGORIES


def test_scorer_imports_only_stdlib_dagster_pipes_and_bfcl_eval():
    """It runs in bfcl-eval's venv, where the project package and its dependencies are not installed."""
    tree = ast.parse(Path(bfcl_scorer.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module.split(".")[0])
    foreign = {m for m in modules if m not in sys.stdlib_module_names and m not in {"dagster_pipes", "bfcl_eval", "__future__"}}
    assert not foreign, f"bfcl_scorer.py imports {foreign}"
    assert "bfcl_eval" in modules and "dagster_pipes" in modules


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The area is 25.", []),
        (call_text("math.factorial", {"number": 5}), [{"math.factorial": {"number": 5}}]),
        (call_text("spotify.play", {"artist": "Taylor Swift", "duration": 20}) + "\n" + call_text("spotify.play", {"artist": "Maroon 5", "duration": 15.0}),
         [{"spotify.play": {"artist": "Taylor Swift", "duration": 20}}, {"spotify.play": {"artist": "Maroon 5", "duration": 15.0}}]),
        ("Sure.\n" + call_text("ls", {}) + "<end_of_turn>", [{"ls": {}}]),
        ('<tool_call>{"name": "ls", "arguments": {"a": tru</tool_call>', None),  # bad JSON
        ('<tool_call>{"name": "ls", "arguments": {"a": true}}', None),  # cut off by the token limit
        ('<tool_call>{"arguments": {}}</tool_call>', None),  # no name
        # as bfcl-eval decodes hermes-format models: well-formed blocks count, broken ones are dropped
        (call_text("ls", {}) + ' junk\n<tool_call>{"name": "cd", "arguments": {"folder": ', [{"ls": {}}]),
        (call_text("ls", {}) + '\n<tool_call>{"name": "cd", "arguments": {folder}}</tool_call>\n' + call_text("pwd", {}),
         [{"ls": {}}, {"pwd": {}}]),
    ],
)
def test_decode_tool_calls(text, expected):
    decoded = bfcl.decode_tool_calls(text)
    assert decoded == expected
    if decoded:  # ints stay ints and floats floats: the AST checker compares types
        assert [type(v) for call in decoded for args in call.values() for v in args.values()] == \
               [type(v) for call in expected for args in call.values() for v in args.values()]


def _synthetic(n: int = 30) -> list[bfcl.BfclQuestion]:
    return [bfcl.BfclQuestion(id=f"{c}_{i}", category=c, question=[[{"role": "user", "content": "q"}]], function=[])
            for c in ("simple_python", "parallel") for i in range(n)]


def test_selection_is_seeded_and_ignores_file_order():
    questions = _synthetic()
    picked = [q.id for q in bfcl.select_questions(questions, limit_per_category=4, seed=7)]
    shuffled = questions[:]
    random.Random(1).shuffle(shuffled)
    assert [q.id for q in bfcl.select_questions(shuffled, limit_per_category=4, seed=7)] == picked
    assert [q.id for q in bfcl.select_questions(questions, limit_per_category=4, seed=8)] != picked
    assert sum(q.startswith("simple_python_") for q in picked) == 4 and len(picked) == 8
    # a larger limit keeps the smaller one's picks (ranked by hash, not a shuffled prefix of the file)
    assert set(picked) <= {q.id for q in bfcl.select_questions(questions, limit_per_category=10, seed=7)}
    assert len(bfcl.select_questions(questions, limit_per_category=0, seed=7)) == 60
    with pytest.raises(ValueError, match="limit_per_category"):
        bfcl.select_questions(questions, limit_per_category=-1, seed=0)


def test_bfcl_runs_in_its_own_job_not_in_the_main_command():
    from agentscaler_dagster.definitions import defs
    from agentscaler_dagster.pipeline_cli import JOBS

    graph = defs.resolve_asset_graph()
    assert {p.to_user_string() for p in graph.get(dg.AssetKey("bfcl_evaluation")).parent_keys} == {"base_model", "phase2_checkpoint"}
    assert defs.resolve_job_def("benchmark_job").graph.has_node_named("bfcl_evaluation")
    assert "benchmark_job" not in JOBS
    assert not any(defs.resolve_job_def(job).graph.has_node_named("bfcl_evaluation") for job in JOBS)


def test_missing_venv_names_the_setup_script(tmp_path):
    with pytest.raises(bfcl.BfclUnavailable, match=r"scripts/setup_bfcl\.sh"):
        bfcl.bfcl_python(str(tmp_path / "no-venv" / "bin" / "python"))
    with pytest.raises(ValueError, match="not supported; choose from simple_python"):
        bfcl.load_questions(sys.executable, ["simple"])


# ---------------------------------------------------------------- with bfcl-eval's real data and checker


@pytest.fixture(scope="module")
def bfcl_data() -> dict:
    """bfcl-eval's questions (as the scorer prepares them) and possible answers, read from its package."""
    python = bfcl.bfcl_python()
    questions = {q.id: q for q in bfcl.load_questions(python, list(bfcl.SUPPORTED_CATEGORIES))}
    data_dir = subprocess.run([python, "-c", "import bfcl_eval, os; print(os.path.join(os.path.dirname(bfcl_eval.__file__), 'data'))"],
                              capture_output=True, text=True, check=True, env={**os.environ, "BFCL_PROJECT_ROOT": "/tmp/agentscaler-bfcl"}).stdout.strip()
    truth = {}
    for path in Path(data_dir, "possible_answer").glob("BFCL_v4_*.json"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            truth[row["id"]] = row["ground_truth"]
    return {"python": python, "questions": questions, "truth": truth}


def first_option(ground_truth: list[dict]) -> list[dict]:
    """A correct answer by hand: each call with the first accepted value of every argument it gives."""
    return [{name: {arg: options[0] for arg, options in args.items() if options[0] != ""}}
            for call in ground_truth for name, args in call.items()]


def parse_call(text: str) -> dict:
    node = ast.parse(text, mode="eval").body
    return {node.func.id: {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}}


def score(python: str, answers: list[dict], tmp_path: Path) -> dict[tuple[str, str], dict]:
    path = bfcl.write_answers(answers, tmp_path / "answers.jsonl")
    report = bfcl.score_answers(python, path, tmp_path / "scores.json")
    return {(e["model"], e["id"]): e for e in report["entries"]}


@needs_bfcl
def test_real_questions_cover_the_categories(bfcl_data):
    by_category = {}
    for q in bfcl_data["questions"].values():
        by_category[q.category] = by_category.get(q.category, 0) + 1
    assert by_category == {"simple_python": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200,
                           "irrelevance": 240, "multi_turn_base": 200}
    q = bfcl_data["questions"]["simple_python_1"]
    assert q.function[0]["name"] == "math.factorial"  # BFCL's dotted names reach the model unchanged
    assert q.function[0]["description"].endswith("Note that the provided function is in Python 3 syntax.")
    assert {f["name"] for f in bfcl_data["questions"]["multi_turn_base_0"].function} >= {"cd", "mv", "grep", "post_tweet"}


@needs_bfcl
def test_bfcl_checker_verdicts_on_hand_made_answers(bfcl_data, tmp_path):
    truth, python = bfcl_data["truth"], bfcl_data["python"]
    answers, expected = [], {}

    def add(model, qid, result, valid, error_type=None):
        answers.append({"model": model, "id": qid, "category": bfcl_data["questions"][qid].category, "result": result, "raw": ""})
        expected[(model, qid)] = (valid, error_type)

    for qid in ("simple_python_0", "multiple_2", "parallel_0", "parallel_multiple_0"):
        add("right", qid, first_option(truth[qid]), True)
    # simple_python_0: calculate_triangle_area(base=10, height=5, unit optional)
    add("wrong", "simple_python_0", [{"calculate_triangle_area": {"base": 10, "height": 6}}], False, "value_error:others")
    add("wrong2", "simple_python_0", [{"calculate_triangle_area": {"base": 10}}], False, "simple_function_checker:missing_required")
    add("wrong3", "simple_python_0", [{"calculate_triangle_area": {"base": 10.0, "height": 5}}], False, "type_error:simple")
    add("wrong", "multiple_2", [{"country_info.largest_city": {"country": "Brazil"}}], False, "simple_function_checker:wrong_func_name")
    add("wrong", "parallel_0", first_option(truth["parallel_0"])[:1], False, "parallel_function_checker_no_order:wrong_count")
    add("wrong", "parallel_multiple_0", None, False, "ast_decoder:decoder_failed")
    # parallel answers in any order are right (the no-order checker)
    add("right2", "parallel_0", first_option(truth["parallel_0"])[::-1], True)
    add("right", "irrelevance_0", [], True)
    add("wrong", "irrelevance_0", [{"calculate_triangle_area": {"base": 1, "height": 1}}], False, "irrelevance_error:decoder_success")
    # a model's text through the project's decoder, then bfcl-eval's checker
    add("text", "simple_python_0", bfcl.decode_tool_calls(call_text("calculate_triangle_area", {"base": 10, "height": 5})), True)
    add("text", "simple_python_1", bfcl.decode_tool_calls("The factorial of 5 is 120."), False, "simple_function_checker:wrong_count")

    verdicts = score(python, answers, tmp_path)
    got = {key: (v["valid"], v["error_type"]) for key, v in verdicts.items()}
    assert got == expected


@needs_bfcl
def test_multi_turn_checker_replays_calls_on_the_backends(bfcl_data, tmp_path):
    qid = "multi_turn_base_1"
    turns = bfcl_data["truth"][qid]  # [['ls(a=True)'], ["cd(folder='workspace')", "mv(...)"], ...]
    right = [[[parse_call(c) for c in turn], []] for turn in turns]  # one step with every call, then a reply
    stepwise = [[[parse_call(c)] for c in turn] + [None] for turn in turns]  # one call a step, then prose
    wrong_file = json.loads(json.dumps(right).replace("log.txt", "notes.txt"))
    answers = [
        {"model": "right", "id": qid, "category": "multi_turn_base", "result": right},
        {"model": "stepwise", "id": qid, "category": "multi_turn_base", "result": stepwise},
        {"model": "silent", "id": qid, "category": "multi_turn_base", "result": [[[]] for _ in turns]},
        {"model": "quit", "id": qid, "category": "multi_turn_base", "result": right[:2]},
        {"model": "wrong", "id": qid, "category": "multi_turn_base", "result": wrong_file},
    ]
    verdicts = score(bfcl_data["python"], answers, tmp_path)
    assert verdicts[("right", qid)]["valid"] and verdicts[("stepwise", qid)]["valid"]
    assert verdicts[("silent", qid)]["error_type"] == "multi_turn:empty_turn_model_response"
    assert verdicts[("quit", qid)]["error_type"] == "multi_turn:force_terminated"
    assert not verdicts[("wrong", qid)]["valid"]


@needs_bfcl
def test_executor_keeps_state_per_model_and_question(bfcl_data):
    with bfcl.MultiTurnExecutor(bfcl_data["python"]) as executor:
        top = executor.execute("a", "multi_turn_base_1", [{"ls": {}}])[0]
        assert "workspace" in top
        assert executor.execute("a", "multi_turn_base_1", [{"cd": {"folder": "workspace"}}])[0].startswith('{"current_working_directory": "workspace"')
        assert "log.txt" in executor.execute("a", "multi_turn_base_1", [{"ls": {}}])[0]
        assert executor.execute("b", "multi_turn_base_1", [{"ls": {}}])[0] == top  # model b has its own file system
        assert executor.execute("a", "multi_turn_base_1", [{"no_such_tool": {}}])[0].startswith("Error during execution")
        with pytest.raises(RuntimeError, match="not a question of multi_turn_base"):
            executor.execute("a", "simple_python_0", [{"ls": {}}])


@pytest.fixture(scope="module")
def tiny_artifacts(tmp_path_factory) -> Path:
    from agentscaler_dagster.sft.base_model import prepare_base_model

    root = tmp_path_factory.mktemp("bfcl-artifacts")
    prepare_base_model(root / "models" / "base", source="tiny", seed=1)
    shutil.copytree(root / "models" / "base", root / "models" / "phase2")
    return root


@needs_bfcl
def test_bfcl_evaluation_asset_end_to_end(tiny_artifacts):
    from agentscaler_dagster.definitions import build_defs

    defs = build_defs(str(tiny_artifacts))
    job = defs.resolve_job_def("benchmark_job")
    categories = [*bfcl.DEFAULT_CATEGORIES, "multi_turn_base"]
    config = {"categories": categories, "limit_per_category": 2, "max_new_tokens": 12, "max_steps_per_turn": 2, "seed": 3}
    with dg.instance_for_test() as instance:
        outcome = job.execute_in_process(run_config={"ops": {"bfcl_evaluation": {"config": config}}}, instance=instance)
        assert outcome.success
        event = instance.get_latest_materialization_event(dg.AssetKey("bfcl_evaluation"))
    metadata = event.asset_materialization.metadata
    assert metadata["questions"].value == 10
    for model in ("base", "agentscaler"):
        for category in categories:  # reported by the scorer through Pipes
            assert 0.0 <= metadata[f"accuracy_{model}_{category}"].value <= 1.0
    assert metadata["bfcl_eval_version"].value == "2026.3.23"
    assert metadata["table"].value.startswith("| category | questions | base | agentscaler |")
    assert metadata["comparison"].value.startswith("![BFCL v4 accuracy")
    out = tiny_artifacts / "evaluation" / "bfcl"
    report = json.loads((out / "bfcl_report.json").read_text())
    assert {c: len(ids) for c, ids in report["question_ids"].items()} == {c: 2 for c in categories}
    assert report["question_ids"] == {c: [q.id for q in qs] for c, qs in _by_category(
        bfcl.select_questions(bfcl.load_questions(bfcl.bfcl_python(), categories), limit_per_category=2, seed=3)).items()}
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 20  # both checkpoints, the same questions
    scores = json.loads((out / "scores.json").read_text())
    assert len(scores["entries"]) == 20
    for model in ("base", "agentscaler"):
        total = sum(c["total"] for c in report["models"][model]["categories"].values())
        assert total == 10


def _by_category(questions):
    out = {}
    for q in questions:
        out.setdefault(q.category, []).append(q)
    return out


def test_asset_fails_with_the_setup_script_when_the_venv_is_missing(tmp_path):
    from agentscaler_dagster.definitions import build_defs

    job = build_defs(str(tmp_path)).resolve_job_def("benchmark_job")
    with dg.instance_for_test() as instance:
        outcome = job.execute_in_process(
            run_config={"ops": {"bfcl_evaluation": {"config": {"python": str(tmp_path / "nope" / "python")}}}},
            instance=instance, raise_on_error=False,
        )
    assert not outcome.success
    failure = next(e for e in outcome.all_events if e.event_type_value == "STEP_FAILURE")
    assert "scripts/setup_bfcl.sh" in failure.step_failure_data.error.cause.message
