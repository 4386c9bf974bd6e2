"""Export held-out tasks and their environments in tau2-bench's format (no Dagster needed).

A tau2-bench domain is a policy, a database, a set of tools over it, and a list of tasks. This module writes
the same for each exported domain, from the project's own contracts:

``OUT/manifest.json``
    what was exported: domains, task counts, the held-out split it came from, the reward basis, the sha256 of
    every file written and a content hash over them (the export's data version; no times, no absolute paths).
``OUT/<domain_id>/tasks.json``
    tau2 ``Task`` objects (``id``, ``description``, ``user_scenario`` with ``persona`` and structured
    ``instructions``, ``initial_state``, ``evaluation_criteria`` with ``actions``, ``communicate_info``,
    ``nl_assertions`` and ``reward_basis``); ``split_tasks.json`` names them all ``test`` (held out).
``OUT/<domain_id>/policy.md``, ``db.json``, ``tools.json``
    the agent's policy, the default database (the package's first initial state) and the tool schemas in
    OpenAI function format.
``OUT/<domain_id>/package/``
    the environment package, byte for byte (its manifest's hashes are checked while copying).
``OUT/<domain_id>/gold.json``
    the project's side of each task (initial state, gold state hash, refusal rule), for ``verify_export``.
``OUT/<domain_id>/environment.py``
    tau2-style entry points, ``get_environment()``, ``get_tasks()`` and ``get_task_splits()``;
    ``register_with_tau2`` puts them in tau2's registry.

``Tau2Environment`` is the callable side: the methods a tau2 harness calls on a domain's environment
(``get_tools``, ``use_tool``, ``make_tool_call``, ``get_response``, ``set_state``, ``get_db_hash`` ...). Every
tool call goes through the sandbox (``sandbox.Environment`` / ``Session``: the generated ``tools_module.py``
runs in the jailed worker, never in the harness's process). The database hash is ``contracts.state_hash``, so
an agent's final database can be compared with the task's gold state hash directly.

Mapping decisions, and what has no counterpart, are in the README ("Export to tau2-bench").
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from agentscaler_dagster.contracts import GoldStep, Policy, ScenarioRequest, Task, UserScenario, content_hash, state_hash

EXPORTER_VERSION = "1"
FORMAT = "tau2-bench"
# tau2's RewardType values (tau2.data_model.tasks.RewardType)
REWARD_TYPES = ("DB", "ENV_ASSERTION", "NL_ASSERTION", "ACTION", "COMMUNICATE")
# closest to the project's judge: the final database, the gold calls made (tau2's ACTION), outputs told
DEFAULT_REWARD_BASIS = ("DB", "ACTION", "COMMUNICATE")
# the initialization action every exported task starts with: a method of Tau2Environment
LOAD_STATE = "load_initial_state"
MANIFEST = "manifest.json"

__all__ = [
    "DEFAULT_REWARD_BASIS", "REWARD_TYPES", "Tau2Environment", "Tau2ToolError", "export_tau2", "load_task_splits",
    "load_tau2_tasks", "register_with_tau2", "task_to_tau2", "verify_export",
]


# ---- tasks -------------------------------------------------------------------------------------------


def _scenario(task: Task) -> UserScenario:
    if task.scenario is not None:
        return task.scenario
    return UserScenario(persona="You are a customer of this service.",
                        requests=[ScenarioRequest(text=task.user_intent, kind="other")])


def _turns(scenario: UserScenario) -> list[list[tuple[int, ScenarioRequest]]]:
    """Requests grouped by the message they are asked in, numbered from 1 in scenario order."""
    groups: dict[int, list[tuple[int, ScenarioRequest]]] = {}
    for k, request in enumerate(scenario.requests, 1):
        groups.setdefault(request.turn, []).append((k, request))
    return [groups[t] for t in sorted(groups)]


def user_instructions(task: Task, domain_name: str, label: str | None = None) -> dict:
    """tau2's ``StructuredUserInstructions`` for the task's user (what the user simulator is told)."""
    scenario = _scenario(task)
    turns = _turns(scenario)
    service = f"the '{label}' service" if label else "the service"
    if len(turns) == 1 and len(turns[0]) == 1:
        reason = f"You are contacting {service} because: {turns[0][0][1].text}"
    else:
        lines = [f"You are contacting {service} and want the following, in this order:"]
        for group in turns:
            lines.append(" ".join(f"{k}. {r.text}" for k, r in group))
        reason = "\n".join(lines)
    known = [f for f in scenario.facts if not f.hidden]
    hidden = [f for f in scenario.facts if f.hidden]
    blocks = []
    if known:
        blocks.append("You know (and may tell the agent):\n" + "\n".join(f"- {f.name}: {f.said}" for f in known))
    if hidden:
        blocks.append("You also know, but tell only when the agent asks for it:\n"
                      + "\n".join(f"- {f.name}: {f.said}" for f in hidden))
    looks_up = any(s.role == "lookup" or any(v.startswith("output:") for v in s.sources.values())
                   for s in task.gold_steps)
    unknown = ("You do not know the internal reference (ID) of any record beyond what is listed above; the agent "
               "has to find it.") if looks_up else None
    steps = ["Speak as this person, in short messages, and never mention tools, functions, JSON or code."]
    if len(turns) > 1:
        steps.append("Ask for the things in the order given, the ones on one line together; ask for the next only "
                     "after the agent has dealt with the ones before.")
    single = len(scenario.requests) == 1
    for group in turns:
        for k, request in group:
            if request.outputs:
                what = " and the ".join(o.name for o in request.outputs)
                steps.append(("M" if single else f"For {k}., m") + f"ake sure the agent tells you the {what}.")
    if hidden:
        steps.append("Do not volunteer the facts you tell only when asked; give each one when the agent asks for it.")
    steps.append("If the agent asks you to confirm an action, say yes only if its details match what you know; "
                 "otherwise say no and what is wrong. If the agent asks for something you do not know, say so.")
    forbidden = [k for group in turns for k, r in group if r.forbidden]
    if forbidden:
        which = "this" if single else ", ".join(f"{k}." for k in forbidden)
        steps.append(f"If the agent says it cannot do {which} because of its rules, accept that and do not insist.")
    steps.append("When everything is done, or the agent says it cannot be done, end the conversation.")
    return {
        "domain": domain_name,
        "reason_for_call": reason,
        "known_info": "\n\n".join(blocks) if blocks else None,
        "unknown_info": unknown,
        "task_instructions": "\n".join(steps),
    }


def _rules(policy: Policy | None) -> dict:
    return {r.rule_id: r for r in (policy.rules if policy else [])}


def _communicate(values: Iterable[Any]) -> list[str]:
    """Expected outputs as tau2 checks them: it drops commas from the agent's message (not from the expected
    string) and looks for the lower-cased string in it, so a string with a comma could never match."""
    out: list[str] = []
    for value in values:
        text = " ".join(str(value).replace(",", " ").split())
        if text and text not in out:
            out.append(text)
    return out


def _action_info(step: GoldStep | None, confirm: bool) -> str | None:
    if step is None:
        return None
    text = f"{step.role}: {step.describe}" if step.describe else step.role
    return text + (" (only after the user's explicit yes)" if confirm else "")


def task_to_tau2(task: Task, *, domain_name: str | None = None, label: str | None = None,
                 policy: Policy | None = None, write_tools: Iterable[str] | None = None,
                 reward_basis: Iterable[str] = DEFAULT_REWARD_BASIS) -> dict:
    """One task as a tau2-bench ``Task`` (a JSON-ready dict); see the README for the mapping."""
    basis = list(reward_basis)
    bad = [b for b in basis if b not in REWARD_TYPES]
    if bad or not basis:
        raise ValueError(f"reward basis {bad or basis}: choose from {', '.join(REWARD_TYPES)}")
    domain_name = domain_name or task.domain_id
    rules = _rules(policy)
    writes = set(write_tools) if write_tools is not None else None
    steps = {s.action: s for s in task.gold_steps if s.action >= 0}
    confirm = set(task.confirm_tools)
    actions = []
    for i, action in enumerate(task.gold_actions):
        is_write = writes is None or action.name in writes
        actions.append({
            "action_id": f"{task.task_id}_{i}",
            "requestor": "assistant",
            "name": action.name,
            "arguments": copy.deepcopy(action.arguments),
            "info": _action_info(steps.get(i), is_write and action.name in confirm),
            # the gold's arguments, all of them: tau2 compares only the agent's keys when this is null
            "compare_args": sorted(action.arguments),
        })
    assertions = []
    relevant = []
    if task.policy_rule:
        rule = rules.get(task.policy_rule)
        reason = rule.text if rule else f"policy rule {task.policy_rule}"
        relevant.append(reason)
        for step in task.gold_steps:
            if step.action >= 0:
                continue
            if step.attempt is not None:
                assertions.append(f"The agent does not call {step.attempt.name} (it would {step.describe}): the "
                                  f"policy forbids it. The agent refuses and explains why.")
            else:
                assertions.append(f"The agent says that it cannot {step.describe} (no tool can do it), refuses, and "
                                  "does not pretend it was done.")
    confirmed = sorted({a["name"] for a in actions if a["name"] in confirm and (writes is None or a["name"] in writes)})
    if confirmed:
        for rule in (policy.rules if policy else []):
            if rule.kind == "confirm" and set(rule.tools) & set(confirmed) and rule.text not in relevant:
                relevant.append(rule.text)
        for name in confirmed:
            assertions.append(f"Before each {name} call the agent states what it will do and waits for the user's "
                              "explicit yes.")
    n_writes = sum(1 for a in actions if writes is None or a["name"] in writes)
    scenario = _scenario(task)
    if task.policy_rule:
        purpose = (f"Refusal: the user asks for what the policy forbids (rule {task.policy_rule}); the gold outcome is "
                   f"{len(actions)} lookup(s), a refusal that says why, and no change to the database.")
    else:
        purpose = (f"{len(scenario.requests)} request(s) in plain words; the agent needs {len(actions) - n_writes} "
                   f"lookup(s) and {n_writes} change(s) to the database"
                   + (", and must tell the user what was asked." if task.expected_outputs else "."))
    return {
        "id": task.task_id,
        "description": {
            "purpose": purpose,
            "relevant_policies": "\n".join(relevant) or None,
            "notes": (f"agentscaler task {task.task_id} of domain {task.domain_id}; initial state "
                      f"{task.initial_state_id}; user intent: {task.user_intent}"),
        },
        "user_scenario": {
            "persona": scenario.persona,
            "instructions": user_instructions(task, domain_name, label),
        },
        "ticket": None,
        "initial_state": {
            "initialization_data": None,
            "initialization_actions": [{"env_type": "assistant", "func_name": LOAD_STATE,
                                        "arguments": {"state_id": task.initial_state_id}}],
            "message_history": None,
        },
        "evaluation_criteria": {
            "actions": actions,
            "env_assertions": None,
            "communicate_info": _communicate(task.expected_outputs),
            "nl_assertions": assertions or None,
            "reward_basis": basis,
        },
    }


# ---- files -------------------------------------------------------------------------------------------


def _dump(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_ENTRY_POINTS = '''"""tau2-style entry points of the exported domain {domain!r} (written by `agentscaler export-tau2`).

get_environment() returns agentscaler_dagster's Tau2Environment: the domain's tools run in agentscaler's sandboxed
worker, never in this process. get_tasks() returns tau2 Task models when tau2-bench is importable, else dicts;
get_task_splits() the split's task ids. agentscaler_dagster.evaluation.tau2_export.register_with_tau2 registers all
three in tau2's registry under the domain's name.
"""

from pathlib import Path

from agentscaler_dagster.evaluation.tau2_export import Tau2Environment, load_task_splits, load_tau2_tasks

DOMAIN_DIR = Path(__file__).resolve().parent
DOMAIN_NAME = {domain!r}


def get_environment(db=None, solo_mode=False, **kwargs):
    return Tau2Environment(DOMAIN_DIR, db=db, solo_mode=solo_mode, **kwargs)


def get_tasks(task_split_name=None):
    return load_tau2_tasks(DOMAIN_DIR, task_split_name)


def get_task_splits():
    return load_task_splits(DOMAIN_DIR)
'''


def _package_files(package: Path) -> dict[str, bytes]:
    """The package's files as its manifest lists them, each checked against the manifest's sha256."""
    manifest_bytes = (package / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    files = {"manifest.json": manifest_bytes}
    for rel, digest in sorted((manifest.get("files") or {}).items()):
        data = (package / rel).read_bytes()
        if _sha(data) != digest:
            raise ValueError(f"{package / rel}: its sha256 differs from the package manifest's; rebuild the package")
        files[rel] = data
    for needed in ("tools_module.py", "tool_specs.json"):
        if needed not in files:
            raise ValueError(f"{package}: the manifest does not list {needed}")
    return files


def _domain_files(tasks: list[Task], package: Path, reward_basis: list[str]) -> tuple[dict[str, bytes], dict]:
    files = {f"package/{rel}": data for rel, data in _package_files(package).items()}
    manifest = json.loads(files["package/manifest.json"])
    domain = manifest.get("domain_id") or package.name
    label = manifest.get("label")
    specs = json.loads(files["package/tool_specs.json"])
    writes = {s["name"] for s in specs if s.get("operation") == "write"}
    policy = Policy.model_validate_json(files["package/policy.json"]) if "package/policy.json" in files else None
    states = sorted(rel[len("package/states/"):-len(".json")] for rel in files
                    if rel.startswith("package/states/") and rel.endswith(".json"))
    if not states:
        raise ValueError(f"{package}: no initial states")
    for task in tasks:
        if task.domain_id != domain:
            raise ValueError(f"task {task.task_id} is of domain {task.domain_id}, the package of {domain}")
        if task.initial_state_id not in states:
            raise ValueError(f"task {task.task_id}: initial state {task.initial_state_id} is not in {package}")
        if state_hash(json.loads(files[f"package/states/{task.initial_state_id}.json"])) != task.initial_state_hash:
            raise ValueError(f"task {task.task_id}: initial state {task.initial_state_id} of {package} is not the one "
                             "the task was built on (hash differs); rebuild the tasks")
    exported = [task_to_tau2(t, domain_name=domain, label=label, policy=policy, write_tools=writes,
                             reward_basis=reward_basis) for t in tasks]
    if policy is not None:
        policy_text = policy.text
    elif "package/policy.md" in files:
        policy_text = files["package/policy.md"].decode("utf-8")
    else:
        policy_text = ""
    tools = [{"type": "function", "function": {"name": s["name"], "description": s["description"],
                                               "parameters": s["parameters"]}} for s in specs]
    gold = {t.task_id: {"initial_state_id": t.initial_state_id, "initial_state_hash": t.initial_state_hash,
                        "gold_state_hash": t.gold_state_hash, "read_only": t.read_only, "policy_rule": t.policy_rule}
            for t in tasks}
    files.update({
        "tasks.json": _dump(exported),
        "split_tasks.json": _dump({"test": [t.task_id for t in tasks]}),
        "policy.md": policy_text.encode("utf-8"),
        "db.json": files[f"package/states/{states[0]}.json"],
        "tools.json": _dump(tools),
        "gold.json": _dump(gold),
        "environment.py": _ENTRY_POINTS.format(domain=domain).encode("utf-8"),
    })
    info = {"label": label, "tasks": len(tasks), "default_state": states[0], "states": states,
            "environment_content_hash": manifest.get("content_hash"),
            "refusal_tasks": sum(1 for t in tasks if t.policy_rule), "read_only_tasks": sum(1 for t in tasks if t.read_only)}
    return files, info


def export_tau2(tasks_by_domain: Mapping[str, list[Task]], packages: Mapping[str, str | Path], out: str | Path, *,
                reward_basis: Iterable[str] = DEFAULT_REWARD_BASIS, split: dict | None = None) -> dict:
    """Write every domain of ``tasks_by_domain`` (its package in ``packages``) under ``out``; return the manifest.

    ``out`` is replaced when it holds an earlier export; a folder with anything else in it is refused. Same
    inputs give the same bytes (``manifest["content_hash"]`` hashes every file's sha256).
    """
    out = Path(out)
    basis = list(reward_basis)
    if not basis or any(b not in REWARD_TYPES for b in basis):
        raise ValueError(f"reward basis {basis}: choose from {', '.join(REWARD_TYPES)}")
    missing = sorted(set(tasks_by_domain) - set(packages))
    if missing:
        raise ValueError(f"no environment package for domain(s) {', '.join(missing)}")
    written: dict[str, dict[str, bytes]] = {}
    domains: dict[str, dict] = {}
    for domain_id in sorted(tasks_by_domain):
        files, info = _domain_files(list(tasks_by_domain[domain_id]), Path(packages[domain_id]), basis)
        written[domain_id] = files
        domains[domain_id] = {**info, "files": {rel: _sha(data) for rel, data in sorted(files.items())}}
    manifest = {
        "format": FORMAT,
        "exporter_version": EXPORTER_VERSION,
        "reward_basis": basis,
        "split": split,
        "domains": domains,
        "tasks": sum(d["tasks"] for d in domains.values()),
    }
    manifest["content_hash"] = content_hash(manifest)
    _clear(out)
    for domain_id, files in written.items():
        for rel, data in files.items():
            path = out / domain_id / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    (out / MANIFEST).write_bytes(_dump(manifest))
    return manifest


def _clear(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        previous = out / MANIFEST
        try:
            ours = json.loads(previous.read_text("utf-8")).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise FileExistsError(f"{out} is not empty and holds no earlier tau2 export; choose an empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def load_task_splits(domain_dir: str | Path) -> dict[str, list[str]]:
    """The exported domain's task splits (``{"test": [task ids]}``: every exported task is held out)."""
    return json.loads((Path(domain_dir) / "split_tasks.json").read_text("utf-8"))


def register_with_tau2(out: str | Path, registry: Any = None) -> list[str]:
    """Register every domain of the export at ``out`` in tau2's registry (``tau2.registry.registry`` unless one is
    given): its ``get_environment``, ``get_tasks`` and ``get_task_splits``, under the domain's id. Returns the ids.

    tau2 finds domains only in its registry, so a harness built on it (``tau2 run``'s code path, or a script that
    calls ``registry.get_env_constructor``) calls this first, in its own process. A name tau2 already has is refused
    by tau2 itself (``ValueError``).
    """
    import importlib.util

    out = Path(out)
    if registry is None:
        from tau2.registry import registry  # type: ignore[import-not-found]
    manifest = json.loads((out / MANIFEST).read_text("utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{out / MANIFEST} is not a tau2 export of this project (format {manifest.get('format')!r})")
    names = []
    for domain_id in sorted(manifest["domains"]):
        spec = importlib.util.spec_from_file_location(
            f"agentscaler_tau2_{content_hash({'out': str(out.resolve()), 'domain': domain_id})[:12]}",
            out / domain_id / "environment.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        registry.register_domain(module.get_environment, domain_id)
        registry.register_tasks(module.get_tasks, domain_id, get_task_splits=module.get_task_splits)
        names.append(domain_id)
    return names


def load_tau2_tasks(domain_dir: str | Path, task_split_name: str | None = None) -> list:
    """The exported tasks of a domain (of one split when named): tau2 ``Task`` models if tau2 is importable."""
    domain_dir = Path(domain_dir)
    tasks = json.loads((domain_dir / "tasks.json").read_text("utf-8"))
    if task_split_name is not None:
        splits = load_task_splits(domain_dir)
        if task_split_name not in splits:
            raise ValueError(f"no split {task_split_name!r}; the export has {', '.join(sorted(splits))}")
        wanted = set(splits[task_split_name])
        tasks = [t for t in tasks if t["id"] in wanted]
    try:
        from tau2.data_model.tasks import Task as Tau2Task  # type: ignore[import-not-found]
    except ImportError:
        return tasks
    return [Tau2Task.model_validate(t) for t in tasks]


# ---- the environment a tau2-style harness calls ---------------------------------------------------------


class Tau2ToolError(Exception):
    """A tool call the environment refused (unknown tool, bad arguments, a domain error); the state is unchanged."""


def _deep_merge(base: dict, update: Mapping) -> dict:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _plain(value: Any) -> Any:
    """A dict/list value, whatever it came as (a pydantic model, a JSON string)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, str):
        return json.loads(value)
    return value


class Tau2Environment:
    """A domain's environment with the interface of tau2-bench's ``Environment``, over the project's sandbox.

    ``source`` is an exported domain folder (``OUT/<domain>``, with ``package/``) or an environment package. The
    database starts as ``db`` when given, else initial state ``state_id``, else the domain's ``db.json`` (the
    package's first initial state). Tool calls run in the sandboxed worker through a ``Session``; nothing of
    the generated tool code is imported here. Close it (or use ``with``) to stop the worker it started; pass a
    shared ``sandbox.Runtime`` as ``runtime`` to keep one worker for many environments.
    """

    def __init__(self, source: str | Path, *, db: Any = None, state_id: str | None = None, solo_mode: bool = False,
                 runtime=None, limits=None):
        from agentscaler_dagster.sandbox import Environment

        source = Path(source)
        package = source / "package" if (source / "package" / "tools_module.py").is_file() else source
        self.source = source
        self._env = Environment.load(package, runtime=runtime, limits=limits)
        self.domain_name = self._env.domain_id
        if (source / "policy.md").is_file():
            self.policy = (source / "policy.md").read_text("utf-8")
        elif self._env.policy is not None:
            self.policy = self._env.policy.text
        else:
            self.policy = (package / "policy.md").read_text("utf-8") if (package / "policy.md").is_file() else ""
        self.solo_mode = solo_mode  # no user tools here: solo mode changes nothing
        self._writes = {s.name for s in self._env.tool_specs if s.operation == "write"}
        if db is not None:
            start = copy.deepcopy(_plain(db))
        elif state_id is not None:
            start = self._env.initial_state(state_id)
        elif source != package and (source / "db.json").is_file():
            start = json.loads((source / "db.json").read_text("utf-8"))
        else:
            start = self._env.initial_state()
        self._session = self._env.session(start)

    # -- what the agent sees
    def get_domain_name(self) -> str:
        return self.domain_name

    def get_policy(self) -> str:
        return self.policy

    def get_tools(self) -> list:
        """The agent's tools: tau2 ``BaseTool`` objects when tau2 is importable (tau2's agents read their ``name``
        and ``openai_schema``; calling one runs the tool through the sandbox, as ``use_tool`` does), else the
        OpenAI function dicts themselves."""
        schemas = copy.deepcopy(self._env.tools)
        tool_class = _tau2_tool_class()
        if tool_class is None:
            return schemas
        return [tool_class.over(schema, self) for schema in schemas]

    def get_user_tools(self) -> list[dict]:
        raise ValueError("User tools not available: exported domains have tools for the agent only")

    def get_tools_description(self, env_type: str = "assistant") -> str | None:
        if env_type == "user":
            return None
        specs = sorted(self._env.tool_specs, key=lambda s: s.name)
        return "\n\n".join(f"{i}. {s.name}\n{s.description}" for i, s in enumerate(specs, 1))

    def is_mutating_tool(self, tool_name: str) -> bool:
        """Whether the tool writes (an unknown tool counts as writing, the safe side)."""
        known = {s.name for s in self._env.tool_specs}
        return tool_name in self._writes or tool_name not in known

    # -- calls
    # A tool's parameter may have any name, ``tool_name`` and ``requestor`` included (as envgen's codegen lets one be
    # named ``state``): the call's own arguments are positional-only, so every keyword given with them is the
    # tool's. tau2's evaluator passes them as keywords (``make_tool_call(tool_name=..., requestor=..., **arguments)``);
    # that form is taken too, and works for every tool whose parameters do not take those two names.
    def _call(self, tool_name: str, arguments: Mapping, requestor: str = "assistant") -> Any:
        if requestor != "assistant":
            raise ValueError(f"requestor {requestor!r}: exported domains have tools for the assistant only")
        result = self._session.call(tool_name, dict(arguments))
        if not result.ok:
            message = result.error or "the call failed"
            raise Tau2ToolError(message[len("Error: "):] if message.startswith("Error: ") else message)
        return result.output

    def use_tool(self, tool_name: str | None = None, /, **kwargs) -> Any:
        """Run one tool in the sandbox on the current database; its output, or ``Tau2ToolError``."""
        if tool_name is None:
            tool_name = kwargs.pop("tool_name")
        return self._call(tool_name, kwargs)

    def make_tool_call(self, tool_name: str | None = None, requestor: str | None = None, /, **kwargs) -> Any:
        """``make_tool_call(name, "assistant", **arguments)``: every keyword is the tool's. A name or requestor not
        given positionally is taken from the keywords ``tool_name`` / ``requestor``, as tau2 passes them."""
        if tool_name is None:
            tool_name = kwargs.pop("tool_name")
        if requestor is None:
            requestor = kwargs.pop("requestor", "assistant")
        return self._call(tool_name, kwargs, requestor)

    @staticmethod
    def to_json_str(response: Any) -> str:
        return response if isinstance(response, str) else json.dumps(response, sort_keys=True, default=str)

    def get_response(self, tool_call: Mapping) -> Any:
        """A tool call (tau2 ``ToolCall``: id, name, arguments[, requestor]; or OpenAI's ``function`` form) -> the
        tool message (role ``tool``, id, content, requestor, error), as tau2's ``get_response`` makes it: a tau2
        ``ToolMessage`` when tau2 is importable (its orchestrator reads ``.error`` and puts it in the trajectory),
        else a dict with the same fields."""
        call = _plain(tool_call)
        function = call.get("function") or {}
        name = call.get("name") or function.get("name")
        arguments = call.get("arguments", function.get("arguments")) or {}
        requestor = call.get("requestor") or "assistant"
        try:
            arguments = _plain(arguments)
            if not isinstance(arguments, dict):
                raise Tau2ToolError("the arguments are not a JSON object")
            content, error = self.to_json_str(self._call(name, arguments, requestor)), False
        except Exception as exc:  # noqa: BLE001 - every failure is an observation, as in tau2
            content, error = f"Error: {exc}", True
        return _tool_message({"role": "tool", "id": call.get("id"), "content": content, "requestor": requestor,
                              "error": error})

    # -- state
    def load_initial_state(self, state_id: str) -> None:
        """Reset the database to initial state ``state_id`` (the initialization action of every exported task)."""
        self._session = self._env.session(self._env.initial_state(state_id))

    def update_db(self, update_data: Mapping | None = None) -> None:
        """Deep-merge ``update_data`` into the database (tau2's ``initialization_data.agent_data``)."""
        self._session = self._env.session(_deep_merge(self.get_db(), _plain(update_data) or {}))

    def run_env_function_call(self, call: Mapping) -> Any:
        """An ``EnvFunctionCall`` (env_type, func_name, arguments): a method of this environment, or a tool."""
        call = _plain(call)
        if call.get("env_type", "assistant") != "assistant":
            raise ValueError("exported domains have no user environment")
        name, arguments = call["func_name"], call.get("arguments") or {}
        if name in (LOAD_STATE, "update_db"):
            return getattr(self, name)(**arguments)
        return self._call(name, arguments)

    def run_env_assertion(self, assertion: Mapping, raise_assertion_error: bool = True) -> bool:
        assertion = _plain(assertion)
        value = self.run_env_function_call(assertion)
        if not isinstance(value, bool):
            raise ValueError(f"{assertion['func_name']} returned {type(value).__name__}, not a bool")
        passed = value == assertion.get("assert_value", True)
        if raise_assertion_error and not passed:
            raise AssertionError(assertion.get("message") or f"assertion failed: {assertion}")
        return passed

    def set_state(self, initialization_data: Mapping | None = None, initialization_actions: Iterable | None = None,
                  message_history: Iterable | None = None, strict: bool = True) -> None:
        """Bring the database to where a conversation left it: initialization data, then actions, then the
        writing tool calls of ``message_history`` replayed (a replayed output that differs from the recorded tool
        message raises when ``strict``)."""
        data = _plain(initialization_data) if initialization_data is not None else None
        if data and data.get("agent_data"):
            self.update_db(data["agent_data"])
        for action in initialization_actions or []:
            self.run_env_function_call(action)
        messages = [_plain(m) for m in (message_history or [])]
        recorded = {m.get("id") or m.get("tool_call_id"): m for m in messages if m.get("role") == "tool"}
        for message in messages:
            if message.get("role") not in ("assistant", "user"):
                continue
            for call in message.get("tool_calls") or []:
                call = _plain(call)
                name = call.get("name") or (call.get("function") or {}).get("name")
                known = name in {s.name for s in self._env.tool_specs}
                if not known or not self.is_mutating_tool(name):
                    continue  # an unknown tool changed nothing; a lookup changes nothing
                content = _plain_message(self.get_response(call))["content"]
                expected = recorded.get(call.get("id"))
                if strict and expected is not None and _parsed(content) != _parsed(expected.get("content")):
                    raise ValueError(f"replaying {name} returned {content!r}, the conversation recorded "
                                     f"{expected.get('content')!r}")

    def get_db(self) -> dict:
        """A copy of the current database."""
        return copy.deepcopy(self._session.state)

    def get_db_hash(self) -> str:
        """``contracts.state_hash`` of the database: comparable with a task's gold state hash."""
        return state_hash(self._session.state)

    def get_user_db_hash(self) -> None:
        return None

    def check_db(self, reference: Any) -> bool:
        """Whether the database equals ``reference`` (a state hash or a database)."""
        expected = reference if isinstance(reference, str) else state_hash(_plain(reference))
        return self.get_db_hash() == expected

    def sync_tools(self) -> None:
        """Nothing to sync: one database, agent tools only."""

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> "Tau2Environment":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_TOOL_CLASS: list = []


def _tau2_tool_class() -> Any:
    """A subclass of tau2's ``BaseTool`` for exported tools, or None without tau2 (made once, on first use)."""
    if not _TOOL_CLASS:
        try:
            from pydantic import ConfigDict, PrivateAttr
            from tau2.environment.tool import BaseTool  # type: ignore[import-not-found]
        except ImportError:
            _TOOL_CLASS.append(None)
        else:
            class SandboxedTool(BaseTool):
                """One exported tool: the schema it was exported with; a call runs in the environment's sandbox."""

                model_config = ConfigDict(arbitrary_types_allowed=True)
                function_schema: dict
                _environment: Any = PrivateAttr(default=None)

                @classmethod
                def over(cls, schema: dict, environment: "Tau2Environment") -> "SandboxedTool":
                    tool = cls(name=schema["function"]["name"], function_schema=schema)
                    tool._environment = environment
                    return tool

                @property
                def openai_schema(self) -> dict:
                    return copy.deepcopy(self.function_schema)

                def _call(self, *args: Any, **kwargs: Any) -> Any:
                    if args:
                        raise TypeError(f"{self.name} takes keyword arguments only (its schema's parameters)")
                    return self._environment.use_tool(self.name, **kwargs)

            _TOOL_CLASS.append(SandboxedTool)
    return _TOOL_CLASS[0]


def _tool_message(fields: dict) -> Any:
    """tau2's ``ToolMessage`` with these fields when tau2 is importable (its id is a string), else the dict."""
    try:
        from tau2.data_model.message import ToolMessage  # type: ignore[import-not-found]
    except ImportError:
        return fields
    return ToolMessage(**{**fields, "id": fields["id"] or ""})


def _plain_message(message: Any) -> dict:
    return message.model_dump(mode="json") if hasattr(message, "model_dump") else dict(message)


def _parsed(content: Any) -> Any:
    if isinstance(content, str):
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


# ---- checking an export --------------------------------------------------------------------------------


def verify_export(out: str | Path, *, runtime=None) -> dict:
    """Replay every exported task as tau2's evaluator builds its gold database: a fresh environment, the task's
    initialization actions, then its expected actions, all through ``Tau2Environment`` (the sandbox). The result
    must have the task's gold state hash (``gold.json``). Returns counts and the mismatches, in words."""
    from agentscaler_dagster.sandbox import Runtime

    out = Path(out)
    manifest = json.loads((out / MANIFEST).read_text("utf-8"))
    own_runtime = runtime is None
    runtime = runtime or Runtime()
    checked, problems, failed = 0, [], set()
    try:
        for domain_id in sorted(manifest["domains"]):
            folder = out / domain_id
            gold = json.loads((folder / "gold.json").read_text("utf-8"))
            for task in json.loads((folder / "tasks.json").read_text("utf-8")):
                checked += 1
                with Tau2Environment(folder, runtime=runtime) as env:
                    env.set_state(None, (task.get("initial_state") or {}).get("initialization_actions"), [])
                    for action in (task.get("evaluation_criteria") or {}).get("actions") or []:
                        try:
                            env.make_tool_call(action["name"], action.get("requestor", "assistant"),
                                               **action["arguments"])
                        except Exception as exc:  # noqa: BLE001
                            problems.append(f"{domain_id} {task['id']}: {action['action_id']} failed: {exc}")
                            failed.add((domain_id, task["id"]))
                    want = gold[task["id"]]["gold_state_hash"]
                    if env.get_db_hash() != want:
                        problems.append(f"{domain_id} {task['id']}: database {env.get_db_hash()[:12]} after the "
                                        f"expected actions, gold {want[:12]}")
                        failed.add((domain_id, task["id"]))
    finally:
        if own_runtime:
            runtime.close()
    return {"tasks": checked, "matched": checked - len(failed), "problems": problems}


# ---- `agentscaler export-tau2` ------------------------------------------------------------------------------


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export-tau2", help="held-out tasks and their environments in tau2-bench's format",
        description="Tasks as tau2-bench Task JSON, each domain's policy, database, tool schemas and a tau2-style "
                    "environment whose tools run in the sandbox (see README, 'Export to tau2-bench').")
    p.add_argument("--tasks", required=True, type=Path, help="folder of <domain>/tasks.jsonl (agentscaler episodes, or "
                                                             "the artifact root's tasks/)")
    p.add_argument("--environments", required=True, type=Path, help="folder of environment packages")
    p.add_argument("--out", required=True, type=Path, help="output folder (empty, or an earlier export)")
    p.add_argument("--held-out-split", type=Path, default=None,
                   help="held_out_split.json of the evaluation asset: export its held-out domains only")
    p.add_argument("--domain", action="append", default=None, help="only this domain id (repeatable)")
    p.add_argument("--reward-basis", default=",".join(DEFAULT_REWARD_BASIS),
                   help=f"comma-separated tau2 reward types (default {','.join(DEFAULT_REWARD_BASIS)})")
    p.add_argument("--verify", action="store_true",
                   help="replay every task's expected actions through the exported environment and compare with "
                        "its gold state (exit 1 on a mismatch)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from agentscaler_dagster.tasks import read_tasks

    found = sorted(p.parent.name for p in args.tasks.glob("*/tasks.jsonl")
                   if (args.environments / p.parent.name / "manifest.json").is_file())
    split = None
    wanted = set(found)
    if args.held_out_split is not None:
        split = json.loads(args.held_out_split.read_text("utf-8"))
        wanted &= set(split.get("held_out") or [])
        split = {k: split[k] for k in ("held_out", "held_out_services", "excluded") if k in split}
    if args.domain:
        unknown = sorted(set(args.domain) - set(found))
        if unknown:
            print(f"agentscaler export-tau2: no tasks.jsonl with an environment package for {', '.join(unknown)}",
                  file=sys.stderr)
            return 2
        wanted &= set(args.domain)
    if not wanted:
        print("agentscaler export-tau2: no domain to export (none with both tasks and a package"
              + (", held out" if split is not None else "") + ")", file=sys.stderr)
        return 2
    tasks = {d: read_tasks(args.tasks / d / "tasks.jsonl") for d in sorted(wanted)}
    packages = {d: args.environments / d for d in wanted}
    basis = [b.strip() for b in args.reward_basis.split(",") if b.strip()]
    manifest = export_tau2(tasks, packages, args.out, reward_basis=basis, split=split)
    print(f"exported {manifest['tasks']} tasks of {len(manifest['domains'])} domain(s) to {args.out} "
          f"(content hash {manifest['content_hash'][:16]})")
    if args.verify:
        report = verify_export(args.out)
        print(f"verified: {report['matched']}/{report['tasks']} tasks reach their gold state through the sandboxed "
              "environment")
        for problem in report["problems"][:20]:
            print(f"  {problem}", file=sys.stderr)
        return 1 if report["problems"] else 0
    return 0
