"""Evaluation: each model on held-out tasks, k trials per task, pass^k, fine-tuned vs base.

The caller chooses the held-out tasks (held-out domains) and passes the episode loop in, so this module
knows only the contracts: a task, an environment object for its domain, a user simulator, an agent.
"""

from __future__ import annotations

import inspect
import json
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from agentscaler_dagster.contracts import Task, Trajectory, content_hash
from agentscaler_dagster.evaluation.metrics import judge_episode, mean_pass_hat_k, pass_hat_k, tool_calls_of
from agentscaler_dagster.rollout.episode import arun_episode, is_backend_failure, play_all, run_on_loop
from agentscaler_dagster.rollout.episode import run_episode as rollout_run_episode

RunEpisode = Callable[..., Trajectory]  # run_episode(task, env, agent, user, *, trial, max_turns) -> Trajectory
UserFactory = Callable[..., Any]  # (task, trial) -> UserSimulator, or (seed) -> UserSimulator
AgentFactory = Callable[[str, Path], Any]  # (model name, model dir) -> AgentPolicy


class EpisodeResult(BaseModel):
    model: str
    task_id: str
    domain_id: str
    trial: int
    success: bool
    state_match: bool = False
    exact_match: bool = False
    outputs_communicated: bool = False
    policy_followed: bool = True
    reason: str | None = Field(default=None, description="Why the judge failed the episode.")
    read_only: bool = False
    termination: str = ""
    tool_calls: int = 0
    seconds: float = 0.0
    trajectory_id: str | None = None
    error: str | None = None
    fingerprint: str | None = Field(default=None, description="What the result depends on (model files, task, trial, "
                                    "settings): an interrupted evaluation reuses a written result only when it matches.")


class ModelEval(BaseModel):
    model: str
    model_dir: str
    tasks: int
    trials: int
    pass_hat_k: dict[str, float] = Field(description="k (as text) -> pass^k averaged over tasks.")
    pass_hat_k_ci: dict[str, list[float]] = Field(default_factory=dict,
                                                  description="k -> [low, high]: 95 % bootstrap interval over tasks.")
    success_rate: float = Field(description="Successful episodes / episodes.")
    successes_per_task: dict[str, int]
    errors: int = Field(description="Episodes that raised instead of ending (counted as failures).")


class EvalReport(BaseModel):
    seed: int
    trials_k: int
    task_ids: list[str]
    domains: list[str]
    baseline: str | None
    models: dict[str, ModelEval]
    delta_vs_baseline: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="model -> k -> pass^k minus the baseline's."
    )
    delta_ci: dict[str, dict[str, list[float]]] = Field(
        default_factory=dict, description="model -> k -> [low, high]: 95 % paired bootstrap interval of the difference."
    )
    seconds: float = 0.0
    episodes: list[EpisodeResult]
    report_path: str | None = None
    chart_path: str | None = None


def episode_seed(seed: int, task_id: str, trial: int) -> int:
    """Sampling seed of one episode: the same for every model, so the models face the same draws."""
    return int(content_hash([seed, task_id, trial])[:8], 16)


BOOTSTRAP_SAMPLES = 2000


def bootstrap_interval(successes_per_task: list[int], trials: int, k: int, *, baseline: list[int] | None = None,
                       samples: int = BOOTSTRAP_SAMPLES, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of mean pass^k over tasks (tasks resampled with replacement).

    With ``baseline`` (the same tasks, in the same order, for another model) it is the interval of the paired
    difference ``pass^k(model) - pass^k(baseline)``: both resampled with the same task draws.
    """
    import random as _random

    n = len(successes_per_task)
    if n == 0:
        return [0.0, 0.0]
    if baseline is not None and len(baseline) != n:
        raise ValueError(f"paired bootstrap needs the same tasks: {n} against {len(baseline)}")
    per_task = [pass_hat_k(c, trials, k) for c in successes_per_task]
    base = [pass_hat_k(c, trials, k) for c in baseline] if baseline is not None else [0.0] * n
    rng = _random.Random(seed)
    stats = []
    for _ in range(samples):
        draw = [rng.randrange(n) for _ in range(n)]
        stats.append(sum(per_task[i] - base[i] for i in draw) / n)
    stats.sort()
    low = stats[int((1 - level) / 2 * samples)]
    high = stats[min(samples - 1, int((1 + level) / 2 * samples))]
    return [round(low, 6), round(high, 6)]


def evaluate(
    model_dirs: dict[str, Path],
    tasks: list[Task],
    env_by_domain: dict,
    user_factory: UserFactory,
    *,
    trials_k: int,
    seed: int,
    run_episode: RunEpisode,
    agent_factory: AgentFactory | None = None,
    max_turns: int = 20,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    baseline: str | None = "base",
    out_dir: Path | None = None,
    concurrency: int = 1,
    progress: Callable[[int, int, float], None] | None = None,
    episodes_path: Path | None = None,
    resume_key: str = "",
    backend_retries: int = 2,
) -> EvalReport:
    """Run every model on every task ``trials_k`` times and compute pass^1..pass^trials_k per model.

    ``model_dirs`` maps a model name (e.g. ``base``, ``phase1``, ``phase2``) to its directory; the agent is
    ``agent_factory(name, dir)``, by default a ``TransformersAgent``. ``user_factory`` is called as
    ``user_factory(task, trial)``, or as ``user_factory(seed)`` when it takes one argument (the seed is
    derived from (seed, task, trial)). ``run_episode`` starts from the
    task's initial state in ``env_by_domain[task.domain_id]``. An agent with a ``reset(seed=...)`` method
    is reset before each episode with a seed derived from (seed, task, trial). An episode that raises,
    or whose domain has no environment, counts as a failure and the rest go on. With ``out_dir``, writes
    ``eval_report.json`` and ``pass_hat_k.png`` there.

    ``concurrency`` episodes of one model run at once when its agent can be cloned (``agent.clone()``, e.g.
    an agent behind a model server: the clones share its client), on the asyncio episode engine when
    ``run_episode`` is the standard one (``rollout.run_episode``), else on threads; an in-process model runs
    one at a time.
    ``progress(done, total, seconds)`` is called after each episode. Each model's pass^k gets a 95 %
    bootstrap interval over tasks, and each model's difference to the baseline a paired one.

    With ``episodes_path`` (JSONL) each finished episode's result is appended at once, and an interrupted
    evaluation resumes: a written result is kept when its fingerprint - the model's files, the task, the
    trial, the generation settings and ``resume_key`` (anything else that changes the outcome, e.g. the
    user simulator) - matches, so only the missing episodes are played, and a model with nothing left to
    play is not even loaded. An episode that ended because the model server failed is played again, up to
    ``backend_retries`` times in the run, and again on resume.
    """
    if trials_k < 1:
        raise ValueError(f"trials_k must be >= 1, got {trials_k}")
    if not model_dirs:
        raise ValueError("model_dirs is empty: give at least one model (e.g. {'base': ..., 'phase2': ...})")
    if baseline is not None and baseline not in model_dirs:
        baseline = None
    if agent_factory is None:
        from agentscaler_dagster.evaluation.agent import TransformersAgent

        def agent_factory(name: str, path: Path):
            return TransformersAgent(path, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, name=name)

    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    episodes: list[EpisodeResult] = []
    models: dict[str, ModelEval] = {}
    unique = list({t.task_id: t for t in tasks}.values())  # a task listed twice is still one task
    total = len(unique) * trials_k * len(model_dirs)
    settings = {"seed": seed, "max_turns": max_turns, "max_new_tokens": max_new_tokens,
                "temperature": temperature, "resume_key": resume_key}
    task_digests = {t.task_id: content_hash(t.model_dump(mode="json")) for t in unique}
    fingerprints = {
        (name, t.task_id, trial): content_hash({"model": _model_files(name, Path(path)), "task": task_digests[t.task_id],
                                                "trial": trial, **settings})[:24]
        for name, path in model_dirs.items() for t in unique for trial in range(trials_k)
    }
    written: dict[str, EpisodeResult] = {}
    sink = None
    if episodes_path is not None:
        wanted = set(fingerprints.values())
        written = {fp: r for fp, r in _written_results(Path(episodes_path)).items() if fp in wanted}
        _rewrite_results(Path(episodes_path), list(written.values()))
        sink = Path(episodes_path).open("a", encoding="utf-8")
    started = time.perf_counter()
    done = [len(written)]
    lock = threading.Lock()
    try:
        for name, model_dir in model_dirs.items():
            pairs = [(task, trial) for task in unique for trial in range(trials_k)]
            todo = [(t, k) for t, k in pairs if fingerprints[(name, t.task_id, k)] not in written]
            if todo:
                new = _play_model(name, agent_factory(name, Path(model_dir)), todo, env_by_domain, user_factory,
                                  run_episode, seed, max_turns, concurrency, backend_retries, fingerprints,
                                  sink, lock, done, total, started, progress)
                written.update({r.fingerprint: r for r in new})
            results = [written[fingerprints[(name, t.task_id, k)]] for t, k in pairs]
            successes = {task.task_id: 0 for task in unique}
            for result in results:
                successes[result.task_id] += int(result.success)
            errors = sum(result.error is not None for result in results)
            episodes += results
            counts = list(successes.values())
            runs = sum(1 for e in episodes if e.model == name)
            models[name] = ModelEval(
                model=name,
                model_dir=str(model_dir),
                tasks=len(counts),
                trials=trials_k,
                pass_hat_k={str(k): mean_pass_hat_k(counts, trials_k, k) for k in range(1, trials_k + 1)},
                pass_hat_k_ci={str(k): bootstrap_interval(counts, trials_k, k, seed=seed) for k in range(1, trials_k + 1)},
                success_rate=(sum(e.success for e in episodes if e.model == name) / runs) if runs else 0.0,
                successes_per_task=successes,
                errors=errors,
            )
    finally:
        if sink is not None:
            sink.close()

    deltas, delta_ci = {}, {}
    if baseline is not None:
        base = models[baseline].pass_hat_k
        deltas = {
            name: {k: round(v - base[k], 6) for k, v in m.pass_hat_k.items()}
            for name, m in models.items()
            if name != baseline
        }
        base_counts = [models[baseline].successes_per_task[t.task_id] for t in unique]
        delta_ci = {
            name: {str(k): bootstrap_interval([m.successes_per_task[t.task_id] for t in unique], trials_k, k,
                                              baseline=base_counts, seed=seed) for k in range(1, trials_k + 1)}
            for name, m in models.items() if name != baseline
        }
    report = EvalReport(
        seed=seed,
        trials_k=trials_k,
        task_ids=list(dict.fromkeys(t.task_id for t in tasks)),
        domains=sorted({t.domain_id for t in tasks}),
        baseline=baseline,
        models=models,
        delta_vs_baseline=deltas,
        delta_ci=delta_ci,
        episodes=episodes,
        seconds=round(time.perf_counter() - started, 1),
    )
    if out_dir is not None:
        write_report(report, Path(out_dir))
    return report


def _play_model(name, agent, todo, env_by_domain, user_factory, run_episode, seed, max_turns, concurrency,
                backend_retries, fingerprints, sink, lock, done, total, started, progress) -> list[EpisodeResult]:
    clone = getattr(agent, "clone", None)

    def finish(task, trial, result: EpisodeResult) -> EpisodeResult:
        result.fingerprint = fingerprints[(name, task.task_id, trial)]
        with lock:
            if sink is not None:
                sink.write(json.dumps(result.model_dump(mode="json"), sort_keys=True) + "\n")
                sink.flush()  # at once: a killed evaluation keeps every finished episode
            done[0] += 1
            if progress is not None:
                progress(done[0], total, time.perf_counter() - started)
        return result

    def one(pair):
        task, trial = pair
        mine = clone() if callable(clone) and concurrency > 1 else agent
        for _ in range(backend_retries + 1):
            result = _run_one(name, mine, task, trial, env_by_domain, user_factory, run_episode, seed, max_turns)
            if not is_backend_failure(result.error):
                break
        return finish(task, trial, result)

    async def aone(task, trial, executor):
        mine = clone()
        for _ in range(backend_retries + 1):
            result = await _arun_one(name, mine, task, trial, env_by_domain, user_factory, seed, max_turns, executor)
            if not is_backend_failure(result.error):
                break
        return finish(task, trial, result)

    if concurrency > 1 and callable(clone):
        if run_episode is rollout_run_episode:
            # the standard episode: on the asyncio engine (no thread per episode)
            return run_on_loop(play_all(todo, aone, concurrency))
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval") as pool:
            return list(pool.map(one, todo))
    return [one(pair) for pair in todo]


def _model_files(name: str, model_dir: Path) -> list:
    """A model's identity for resuming: its name and its files' sizes and modification times (a
    checkpoint written again is another model; hashing gigabytes per evaluation is not needed)."""
    files = sorted(p for p in model_dir.iterdir() if p.is_file()) if model_dir.is_dir() else []
    return [name, str(model_dir), [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]]


def _written_results(path: Path) -> dict[str, EpisodeResult]:
    """Results of an earlier, interrupted run; a line cut short by a kill and a server failure are dropped
    (played again)."""
    kept: dict[str, EpisodeResult] = {}
    if not path.exists():
        return kept
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            result = EpisodeResult.model_validate_json(line)
        except ValueError:
            continue
        if result.fingerprint and not is_backend_failure(result.error):
            kept[result.fingerprint] = result
    return kept


def _rewrite_results(path: Path, results: list[EpisodeResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r.model_dump(mode="json"), sort_keys=True) + "\n" for r in results), encoding="utf-8")
    os.replace(tmp, path)


def _run_one(name, agent, task, trial, env_by_domain, user_factory, run_episode, seed, max_turns) -> EpisodeResult:
    started = time.perf_counter()
    try:
        env, user = _episode_parts(name, agent, task, trial, env_by_domain, user_factory, seed)
        trajectory = run_episode(task, env, agent, user, trial=trial, max_turns=max_turns)
    except Exception as exc:  # noqa: BLE001 - one broken episode must not stop the evaluation
        return _failed(name, task, trial, exc, started)
    return _verdict(name, task, trial, env, trajectory, started)


async def _arun_one(name, agent, task, trial, env_by_domain, user_factory, seed, max_turns, executor) -> EpisodeResult:
    started = time.perf_counter()
    try:
        env, user = _episode_parts(name, agent, task, trial, env_by_domain, user_factory, seed)
        trajectory = await arun_episode(task, env, agent, user, trial=trial, max_turns=max_turns, executor=executor)
    except Exception as exc:  # noqa: BLE001 - one broken episode must not stop the evaluation
        return _failed(name, task, trial, exc, started)
    return _verdict(name, task, trial, env, trajectory, started)


class _NoEnvironment(Exception):
    pass


def _base(name, task, trial) -> dict:
    return {"model": name, "task_id": task.task_id, "domain_id": task.domain_id, "trial": trial, "read_only": task.read_only}


def _episode_parts(name, agent, task, trial, env_by_domain, user_factory, seed):
    env = env_by_domain.get(task.domain_id)
    if env is None:
        known = ", ".join(sorted(env_by_domain)[:10]) or "none"
        raise _NoEnvironment(f"no environment for domain {task.domain_id!r} (have: {known})")
    if hasattr(agent, "reset"):
        agent.reset(seed=episode_seed(seed, task.task_id, trial))
    return env, _make_user(user_factory, task, trial, seed)


def _failed(name, task, trial, exc: Exception, started: float) -> EpisodeResult:
    if isinstance(exc, _NoEnvironment):
        return EpisodeResult(**_base(name, task, trial), success=False, error=str(exc))
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return EpisodeResult(**_base(name, task, trial), success=False, error=last, seconds=round(time.perf_counter() - started, 4))


def _verdict(name, task, trial, env, trajectory, started: float) -> EpisodeResult:
    write_tools = {spec.name for spec in getattr(env, "tool_specs", []) if spec.operation == "write"} or None
    verdict = judge_episode(task, trajectory, write_tools=write_tools)
    return EpisodeResult(
        **_base(name, task, trial),
        **verdict,
        termination=trajectory.termination,
        tool_calls=len(tool_calls_of(trajectory.messages)),
        seconds=round(time.perf_counter() - started, 4),
        trajectory_id=trajectory.trajectory_id,
        error=trajectory.error,
    )



def _make_user(user_factory: UserFactory, task: Task, trial: int, seed: int):
    """``user_factory(task, trial)``, or ``user_factory(episode_seed)`` for a one-argument factory
    (e.g. ``lambda seed: ScenarioUserSimulator(seed=seed)``; run_episode binds the task)."""
    try:
        params = [
            p for p in inspect.signature(user_factory).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) == 1 and params[0].kind != params[0].VAR_POSITIONAL:
        return user_factory(episode_seed(seed, task.task_id, trial))
    return user_factory(task, trial)


def write_report(report: EvalReport, out_dir: Path) -> EvalReport:
    """``eval_report.json`` (sorted keys, no timings-dependent ordering) and ``pass_hat_k.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report.report_path = str(out_dir / "eval_report.json")
    report.chart_path = str(plot_pass_hat_k(report, out_dir / "pass_hat_k.png"))
    # fingerprints (checkpoint file times) belong to the resume file, not to what was measured
    data = report.model_dump(mode="json", exclude={"episodes": {"__all__": {"fingerprint"}}})
    Path(report.report_path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return report


def plot_pass_hat_k(report: EvalReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.models)
    ks = [str(k) for k in range(1, report.trials_k + 1)]
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(ks) + 2), 3.5), dpi=100)
    for i, name in enumerate(names):
        values = [report.models[name].pass_hat_k[k] for k in ks]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(ks))]
        ci = report.models[name].pass_hat_k_ci
        errors = None
        if ci:  # the 95 % bootstrap interval as an error bar
            errors = [[max(0.0, v - ci[k][0]) for v, k in zip(values, ks)], [max(0.0, ci[k][1] - v) for v, k in zip(values, ks)]]
        bars = ax.bar(xs, values, width=width, label=name, yerr=errors, capsize=3 if errors else 0)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7)
    ax.set_xticks(range(len(ks)), [f"pass^{k}" for k in ks])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out tasks")
    ax.set_title(f"pass^k on {len(report.task_ids)} held-out tasks, {report.trials_k} trials each (95 % CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path
