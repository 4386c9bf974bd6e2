import json
from contextlib import ExitStack

import dagster as dg
from pydantic import Field

from agentscaler_dagster.contracts import content_hash
from agentscaler_dagster.assets._metadata import picture, result
from agentscaler_dagster.domains.store import read_domains
from agentscaler_dagster.evaluation import evaluate
from agentscaler_dagster.assets.sft import domain_services
from agentscaler_dagster.evaluation.agent import ServedTemplateAgent
from agentscaler_dagster.llm import OpenAICompatibleClient, OpenAIUserSimulator
from agentscaler_dagster.resources import ArtifactStore, LlamaCppServer, LLMEndpoint, PhasePlan, VLLMServer
from agentscaler_dagster.rollout import ScenarioUserSimulator, run_episode
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import read_tasks


class EvaluationConfig(dg.Config):
    # defaults sized for the main job on a 2-core CPU (~0.3 s per generated token for the 270M model in-process);
    # a trustworthy evaluation (>= 100 tasks x 4 trials, base / phase 1 / phase 2) serves them: generator=vllm
    max_tasks: int = Field(default=3, ge=1, description="Held-out tasks evaluated (spread over the held-out domains).")
    trials_k: int = Field(default=1, ge=1, description="Trials per task; pass^k is reported for k = 1..trials_k (use temperature > 0 for k > 1).")
    max_turns: int = Field(default=3, ge=1, description="Turn limit of one evaluation episode.")
    max_new_tokens: int = Field(default=48, ge=1, description="Generation limit per agent turn.")
    temperature: float = Field(default=0.0, ge=0.0, description="Agent sampling temperature; 0 is greedy.")
    generator: str = Field(default="transformers", description="transformers (in-process generation) or vllm (the `vllm_server` resource serves each model in turn).")
    models: list[str] = Field(default=["base", "phase2"], description="Checkpoints side by side on the same tasks and seeds: base, phase1, phase2.")
    user: str = Field(default="programmatic", description="programmatic (the scenario user) or llm (the `llm` endpoint plays the user).")
    concurrency: int = Field(default=0, ge=0, description="Episodes at once; 0: 1 in-process, 8 on a model server.")
    seed: int = Field(default=0, description="Seed of the user simulator and task choice.")


_MODEL_NAMES = {"base": "base", "phase1": "phase1", "phase2": "agentscaler"}
# settings of the vLLM server that cannot change an episode: where it listens and logs, how long it may take to start
_SERVER_SETTINGS_WITHOUT_EFFECT = {"host", "port", "log_dir", "startup_timeout_s"}


# settings of the endpoint that cannot change what the user simulator says (a key, how long and how often to try)
_ENDPOINT_SETTINGS_WITHOUT_EFFECT = {"api_key", "timeout_s", "max_retries", "max_concurrency"}


def resume_key(generator: str, user: str, vllm_server: VLLMServer, llm: LLMEndpoint | None = None,
               llamacpp_server: LlamaCppServer | None = None) -> str:
    """``evaluate``'s resume key: the generator, the user simulator and hashes of the settings that decide episodes.

    With vllm, the server's settings (a prompt over max_model_len is refused); with ``user="llm"``, the endpoint
    the user simulator talks to and, for a managed server, that server's settings (another user model says other
    things). A result played under other settings is not reused."""
    key = f"{generator}/{user}"
    if generator == "vllm":
        key += "/template-prompt"  # the checkpoint's own template renders the prompt (before: the chat endpoint's)
        settings = vllm_server.model_dump(mode="json", exclude=_SERVER_SETTINGS_WITHOUT_EFFECT)
        key += f"/{content_hash(settings)[:12]}"
    if user == "llm" and llm is not None:
        settings = {"endpoint": llm.model_dump(mode="json", exclude=_ENDPOINT_SETTINGS_WITHOUT_EFFECT)}
        server = {"vllm": vllm_server, "llamacpp": llamacpp_server}.get(llm.kind)
        if server is not None:
            settings["server"] = server.model_dump(mode="json", exclude=_SERVER_SETTINGS_WITHOUT_EFFECT)
        key += f"/user-{content_hash(settings)[:12]}"
    return key


@dg.asset(
    deps=["phase2_checkpoint", "phase1_checkpoint", "base_model", "tasks", "environment"],
    group_name="evaluation",
    code_version="5",  # 3: episodes written one by one, resumed after a kill; 4: server settings in the resume key;
    # 5: served checkpoints are prompted with their own template (as trained), not by the chat endpoint
    kinds={"json"},
    pool="gpu",  # a local model generates here (in-process or through a managed vLLM server)
)
def evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, artifacts: ArtifactStore, phase_plan: PhasePlan,
    vllm_server: VLLMServer, llm: LLMEndpoint, llamacpp_server: LlamaCppServer,
) -> dg.MaterializeResult:
    """Held-out tasks of held-out services: pass^k (95 % bootstrap intervals) of the checkpoints side by side."""
    layout = artifacts.layout
    domains = read_domains(layout.domains)
    split = phase_plan.split({d: dom.label for d, dom in domains.items()}, domain_services(layout, domains))
    per_domain = {d: read_tasks(layout.tasks(d) / "tasks.jsonl") for d in split.held_out if (layout.tasks(d) / "tasks.jsonl").exists()}
    # round-robin over held-out domains so a few tasks still cover all of them
    chosen = []
    for i in range(max((len(v) for v in per_domain.values()), default=0)):
        chosen += [tasks[i] for _, tasks in sorted(per_domain.items()) if i < len(tasks)]
    chosen = chosen[: config.max_tasks]
    unknown = sorted(set(config.models) - set(_MODEL_NAMES))
    if unknown or not config.models:
        raise ValueError(f"evaluation.models: unknown {unknown or 'empty list'}; choose from {sorted(_MODEL_NAMES)}")
    if config.generator not in ("transformers", "vllm"):
        raise ValueError(f"generator must be transformers or vllm, got {config.generator!r}")
    if config.user not in ("programmatic", "llm"):
        raise ValueError(f"evaluation.user must be programmatic or llm, got {config.user!r}")
    split_path = layout.evaluation / "held_out_split.json"
    split_path.parent.mkdir(parents=True, exist_ok=True)
    split_path.write_text(json.dumps({**split.__dict__, "tasks": [t.task_id for t in chosen]}, indent=2, sort_keys=True))
    concurrency = config.concurrency or (8 if config.generator == "vllm" else 1)
    context.log.info(f"evaluating {len(chosen)} held-out tasks from {len(per_domain)} domains "
                     f"(held-out services: {', '.join(split.held_out_services) or 'by domain'}), k={config.trials_k}, "
                     f"models {config.models}, {concurrency} at once")

    def progress(done: int, total: int, seconds: float) -> None:
        rate = done / max(seconds, 1e-9) * 60
        eta = (total - done) / max(rate, 1e-9)
        context.log.info(f"evaluation {done}/{total} episodes ({rate:.1f}/min, ETA {eta:.1f} min)")

    servers: list[dict] = []
    with ExitStack() as stack:
        envs = {d: stack.enter_context(Environment.load(layout.environment(d))) for d in per_domain}
        if config.user == "llm":
            client = llm.client(vllm_server=vllm_server, llamacpp_server=llamacpp_server)
            user_factory = lambda seed: OpenAIUserSimulator(client=client, seed=seed)  # noqa: E731
        else:
            user_factory = lambda seed: ScenarioUserSimulator(seed=seed)  # noqa: E731
        agent_factory = None
        if config.generator == "vllm":
            running = ExitStack()
            stack.callback(running.close)

            def served_agent(name, model_dir):
                running.close()  # one model server at a time: the previous model is done
                server = running.enter_context(vllm_server.serve(str(model_dir)))
                servers.append({"model": name, "model_dir": str(model_dir), "startup_s": server.startup_s})
                context.log.info(f"vLLM serves {name} ({model_dir}) at {server.base_url}, ready in {server.startup_s} s")
                client = running.enter_context(OpenAICompatibleClient(base_url=server.base_url, model=server.served_model,
                                                                      max_concurrency=concurrency))
                # prompted as trained (the template's tool signatures), not through the chat endpoint's own rendering
                return ServedTemplateAgent(client, model_dir, max_new_tokens=config.max_new_tokens,
                                           temperature=config.temperature, seed=config.seed)

            agent_factory = served_agent

        report = evaluate(
            {_MODEL_NAMES[m]: layout.model(m) for m in config.models},
            chosen,
            envs,
            user_factory,
            trials_k=config.trials_k,
            seed=config.seed,
            run_episode=run_episode,
            max_turns=config.max_turns,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            out_dir=layout.evaluation,
            agent_factory=agent_factory,
            concurrency=concurrency,
            progress=progress,
            # written one by one: a run killed midway resumes where it stopped
            episodes_path=layout.evaluation / "episodes.jsonl",
            resume_key=resume_key(config.generator, config.user, vllm_server, llm, llamacpp_server),
        )
    path = layout.evaluation / "eval_report.json"
    scores = {name: model.pass_hat_k for name, model in report.models.items()}
    context.log.info(f"pass^k: {scores}")
    numbers = {f"pass^{k}/{name}": float(v) for name, model in report.models.items() for k, v in model.pass_hat_k.items()}
    # the data version: what was measured, not how long it took or where it was written
    measured = report.model_dump(mode="json", exclude={"report_path", "chart_path", "seconds"})
    for episode in measured["episodes"]:
        episode.pop("seconds", None)
        episode.pop("fingerprint", None)  # holds the checkpoints' file times
    for model in measured["models"].values():
        model.pop("model_dir", None)
    return result(
        path=path,
        digest=content_hash(measured),
        metadata={
            **numbers,  # plottable across runs
            "held_out_domains": dg.MetadataValue.json(split.held_out),
            "held_out_services": dg.MetadataValue.json(split.held_out_services),
            "tasks": len(chosen),
            "episodes": len(report.episodes),
            "seconds": report.seconds,
            "pass_hat_k": dg.MetadataValue.json(scores),
            "pass_hat_k_ci95": dg.MetadataValue.json({n: m.pass_hat_k_ci for n, m in report.models.items()}),
            "delta_vs_base": dg.MetadataValue.json(report.delta_vs_baseline),
            "delta_ci95": dg.MetadataValue.json(report.delta_ci),
            "generator": config.generator,
            "user": config.user,
            "servers": dg.MetadataValue.json(servers),
            "comparison": picture(layout.evaluation / "pass_hat_k.png", "pass^k with 95 % bootstrap intervals"),
        },
    )
