"""Run inside .venv-tau2 (scripts/setup_tau2.sh) by tests/test_tau2_real.py: a tau2 export through tau2's real code.

``python tests/tau2_real_check.py EXPORT_DIR`` (PYTHONPATH = the repo root) prints one JSON summary. For every
exported domain and task:

* the task through tau2's own loader: ``tau2.data_model.tasks.Task.model_validate`` on each item of tasks.json
  (tau2's models ignore unknown fields, so every field of the item must also survive the round trip);
* ``EnvironmentEvaluator.calculate_reward`` with the exported ``get_environment()`` as the environment constructor,
  on a trajectory of tau2 messages that performs the gold actions (tool calls answered through the environment's
  ``get_response``, as tau2's orchestrator does) and on one that performs none;
* ``ActionEvaluator`` and ``CommunicateEvaluator`` on both trajectories, and ``ActionEvaluator`` on the gold one
  less its last call (and the repeats of it);
* the export registered in a tau2 ``Registry`` (``register_with_tau2``): tools as ``BaseTool`` objects, loaders.

``python tests/tau2_real_check.py EXPORT_DIR --orchestrator BASE_URL MODEL`` instead plays the first exported task
with tau2's own ``run_task`` (its LLM agent and user simulator, through litellm, against that server).

Nothing here imports pytest or the project's test helpers: this interpreter has tau2 and the exported environment's
own dependencies only.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path

from loguru import logger

from tau2.data_model.message import AssistantMessage, ToolCall, ToolMessage, UserMessage
from tau2.data_model.tasks import Task
from tau2.environment.tool import BaseTool
from tau2.evaluator.evaluator_action import ActionEvaluator
from tau2.evaluator.evaluator_communicate import CommunicateEvaluator
from tau2.evaluator.evaluator_env import EnvironmentEvaluator

from tau2.registry import Registry

from agentscaler_dagster.evaluation.tau2_export import load_tau2_tasks, register_with_tau2
from agentscaler_dagster.sandbox import Runtime


def _dropped(raw, dumped, path="") -> list[str]:
    """Keys of ``raw`` that tau2's model did not keep (it ignores unknown fields instead of refusing them)."""
    out = []
    if isinstance(raw, dict):
        for key, value in raw.items():
            if not isinstance(dumped, dict) or key not in dumped:
                out.append(f"{path}.{key}")
            else:
                out += _dropped(value, dumped[key], f"{path}.{key}")
    elif isinstance(raw, list) and isinstance(dumped, list):
        for i, (a, b) in enumerate(zip(raw, dumped)):
            out += _dropped(a, b, f"{path}[{i}]")
    return out


def _entry_points(folder: Path):
    """The exported environment.py, imported from its file as a tau2 domain registration would."""
    spec = importlib.util.spec_from_file_location(f"tau2_export_{folder.name.replace('-', '_')}",
                                                  folder / "environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gold_trajectory(task: Task, constructor) -> list:
    """The conversation tau2's orchestrator records when an agent makes the gold calls, one per message, and then
    tells the user what it found: tool messages are the live environment's answers."""
    env = constructor()
    initial = task.initial_state
    env.set_state(initialization_data=initial.initialization_data if initial else None,
                  initialization_actions=initial.initialization_actions if initial else None,
                  message_history=[])
    messages = [UserMessage(role="user", content="Hello, I need help.")]
    for i, action in enumerate(task.evaluation_criteria.actions or []):
        call = ToolCall(id=f"call_{i}", name=action.name, arguments=dict(action.arguments), requestor="assistant")
        messages.append(AssistantMessage(role="assistant", tool_calls=[call]))
        reply = env.get_response(call)
        assert isinstance(reply, ToolMessage), f"get_response returned {type(reply).__name__}, not tau2's ToolMessage"
        assert not reply.error, f"{task.id}: gold call {action.name} failed: {reply.content}"
        messages.append(reply)
    told = " ".join(task.evaluation_criteria.communicate_info or [])
    messages.append(AssistantMessage(role="assistant", content=f"Done. {told}".strip()))
    messages.append(UserMessage(role="user", content="Thanks, bye."))
    return messages


def main(out: Path) -> dict:
    logger.remove()  # tau2 logs every tool response at DEBUG
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    summary = {"domains": {}, "tasks": 0, "validated": 0, "dropped_fields": [], "gold_env_reward_1": 0,
               "gold_action_reward_1": 0, "gold_communicate_reward_1": 0, "writing_tasks": 0,
               "empty_env_reward_0_on_writing": 0, "empty_env_reward_1_on_read_only": 0, "empty_action_reward_0": 0,
               "with_actions": 0, "multi_action_tasks": 0, "partial_action_reward_0": 0,
               "bare_constructor_reward": None, "problems": []}
    with Runtime() as runtime:
        for domain_id in sorted(manifest["domains"]):
            folder = out / domain_id
            module = _entry_points(folder)
            raw_tasks = json.loads((folder / "tasks.json").read_text("utf-8"))
            gold = json.loads((folder / "gold.json").read_text("utf-8"))
            loaded = module.get_tasks("test")
            summary["domains"][domain_id] = {"tasks": len(raw_tasks),
                                             "get_tasks_types": sorted({type(t).__name__ for t in loaded})}
            # tau2's own constructor call: environment_constructor(solo_mode=...) and environment_constructor()
            constructor = functools.partial(module.get_environment, runtime=runtime)
            for k, raw in enumerate(raw_tasks):
                summary["tasks"] += 1
                task = Task.model_validate(raw)
                summary["validated"] += 1
                summary["dropped_fields"] += [f"{raw['id']}{p}" for p in _dropped(raw, task.model_dump(mode="json"))]
                writes = gold[task.id]["gold_state_hash"] != gold[task.id]["initial_state_hash"]
                summary["writing_tasks"] += writes
                has_actions = bool(task.evaluation_criteria.actions)
                summary["with_actions"] += has_actions
                try:
                    trajectory = _gold_trajectory(task, constructor)
                    # the first task of each domain through get_environment() exactly as registered: no runtime given
                    make = module.get_environment if k == 0 else constructor
                    env_info = EnvironmentEvaluator.calculate_reward(environment_constructor=make, task=task,
                                                                     full_trajectory=trajectory, solo_mode=False)
                    if k == 0:
                        summary["bare_constructor_reward"] = min(summary["bare_constructor_reward"] or 1.0,
                                                                 env_info.reward)
                    action_info = ActionEvaluator.calculate_reward(task=task, full_trajectory=trajectory)
                    comm_info = CommunicateEvaluator.calculate_reward(task=task, full_trajectory=trajectory)
                    for name, info in (("env", env_info), ("action", action_info), ("communicate", comm_info)):
                        if info.reward == 1.0:
                            summary[f"gold_{name}_reward_1"] += 1
                        else:
                            summary["problems"].append(f"{domain_id} {task.id}: gold trajectory, {name} reward "
                                                       f"{info.reward}: {info.model_dump(mode='json')}")
                    actions = task.evaluation_criteria.actions or []
                    if len(actions) >= 2 and any(a.name != actions[-1].name or a.arguments != actions[-1].arguments
                                                 for a in actions):
                        # the gold calls less the last one (and its repeats): ACTION gives no partial credit
                        last = actions[-1]
                        short = [m for m in trajectory
                                 if not (m.role == "assistant" and m.tool_calls and m.tool_calls[0].name == last.name
                                         and m.tool_calls[0].arguments == last.arguments)]
                        dropped_ids = {m.tool_calls[0].id for m in trajectory if m.role == "assistant" and m.tool_calls
                                       and m not in short}
                        short = [m for m in short if not (m.role == "tool" and m.id in dropped_ids)]
                        partial = ActionEvaluator.calculate_reward(task=task, full_trajectory=short)
                        summary["multi_action_tasks"] += 1
                        summary["partial_action_reward_0"] += partial.reward == 0.0
                    empty = [UserMessage(role="user", content="Hello, I need help."),
                             AssistantMessage(role="assistant", content="Sorry, I cannot help with that."),
                             UserMessage(role="user", content="Bye.")]
                    env_empty = EnvironmentEvaluator.calculate_reward(environment_constructor=constructor, task=task,
                                                                      full_trajectory=empty, solo_mode=False)
                    if writes and env_empty.reward == 0.0:
                        summary["empty_env_reward_0_on_writing"] += 1
                    elif not writes and env_empty.reward == 1.0:
                        summary["empty_env_reward_1_on_read_only"] += 1
                    else:
                        summary["problems"].append(f"{domain_id} {task.id}: no-action trajectory, env reward "
                                                   f"{env_empty.reward} (writes: {writes})")
                    action_empty = ActionEvaluator.calculate_reward(task=task, full_trajectory=empty)
                    if has_actions and action_empty.reward == 0.0:
                        summary["empty_action_reward_0"] += 1
                    elif has_actions:
                        summary["problems"].append(f"{domain_id} {task.id}: no-action trajectory, action reward "
                                                   f"{action_empty.reward}")
                except Exception as exc:  # noqa: BLE001 - reported, the test fails on any
                    summary["problems"].append(f"{domain_id} {task.id}: {type(exc).__name__}: {exc}")
    summary["registry"] = registry_check(out, manifest)
    return summary


def registry_check(out: Path, manifest: dict) -> dict:
    """The export registered in a tau2 ``Registry`` as a harness would find it: the environment built by the
    registered constructor (no arguments), its tools as tau2 ``BaseTool`` objects whose ``openai_schema`` is the
    exported schema and whose call answers what ``get_response`` answers, and the tasks and splits loaders."""
    registry = Registry()
    names = register_with_tau2(out, registry)
    report = {"registered": sorted(registry.get_domains()), "names": names, "tools_are_base_tools": True,
              "schemas_equal": True, "tool_calls_checked": 0, "tool_calls_equal": 0, "tasks": {}, "splits_equal": True}
    for name in names:
        folder = out / name
        tasks = registry.get_tasks_loader(name)("test")
        report["tasks"][name] = len(tasks)
        report["splits_equal"] &= registry.get_task_splits_loader(name)() == json.loads(
            (folder / "split_tasks.json").read_text("utf-8"))
        task = next((t for t in tasks if t.evaluation_criteria.actions), None)
        env, reference = registry.get_env_constructor(name)(), registry.get_env_constructor(name)()
        try:
            tools = env.get_tools()
            report["tools_are_base_tools"] &= all(isinstance(t, BaseTool) for t in tools)
            report["schemas_equal"] &= [t.openai_schema for t in tools] == json.loads(
                (folder / "tools.json").read_text("utf-8"))
            if task is None:
                continue
            initial = task.initial_state
            for e in (env, reference):
                e.set_state(initialization_data=initial.initialization_data if initial else None,
                            initialization_actions=initial.initialization_actions if initial else None,
                            message_history=[])
            by_name = {t.name: t for t in tools}
            for i, action in enumerate(task.evaluation_criteria.actions):
                answer = env.to_json_str(by_name[action.name](**action.arguments))
                reply = reference.get_response(ToolCall(id=f"call_{i}", name=action.name,
                                                        arguments=dict(action.arguments), requestor="assistant"))
                report["tool_calls_checked"] += 1
                report["tool_calls_equal"] += answer == reply.content and not reply.error
        finally:
            env.close()
            reference.close()
    return report


def orchestrator_check(out: Path, base_url: str, model: str) -> dict:
    """tau2's own ``run_task`` on the first exported task: the domain found in tau2's global registry (where
    ``tau2 run`` looks), tau2's ``LLMAgent`` given the environment's tools and policy, tau2's ``UserSimulator``
    given the task's user scenario, both through litellm to the OpenAI-compatible server at ``base_url``."""
    from tau2.run import run_task

    names = register_with_tau2(out)
    domain = names[0]
    task = load_tau2_tasks(out / domain, "test")[0]
    llm_args = {"api_base": base_url, "api_key": "none", "temperature": 0.0, "max_tokens": 48}
    simulation = run_task(domain, task, agent="llm_agent", user="user_simulator", llm_agent=f"openai/{model}",
                          llm_args_agent=llm_args, llm_user=f"openai/{model}", llm_args_user=llm_args,
                          max_steps=6, max_errors=3, seed=0)
    roles = [m.role for m in simulation.messages]
    return {"domain": domain, "task": task.id, "termination": simulation.termination_reason.value,
            "roles": roles, "assistant_messages": roles.count("assistant"), "user_messages": roles.count("user"),
            "tool_messages": roles.count("tool"), "reward": simulation.reward_info.reward if simulation.reward_info else None}


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[2] == "--orchestrator":
        logger.remove()
        print(json.dumps(orchestrator_check(Path(sys.argv[1]), sys.argv[3], sys.argv[4]), sort_keys=True))
    else:
        print(json.dumps(main(Path(sys.argv[1])), sort_keys=True))
