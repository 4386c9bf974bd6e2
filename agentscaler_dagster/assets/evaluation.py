import time
from contextlib import ExitStack

import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import picture, result
from agentscaler_dagster.domains.store import read_domains
from agentscaler_dagster.evaluation import evaluate
from agentscaler_dagster.llm import OpenAIChatAgent, OpenAICompatibleClient
from agentscaler_dagster.resources import ArtifactStore, PhasePlan, VLLMServer
from agentscaler_dagster.rollout import ScriptedUserSimulator, run_episode
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import read_tasks


class EvaluationConfig(dg.Config):
    # defaults sized for a 2-core CPU (~0.3 s per generated token for the 270M model); raise them on a GPU
    max_tasks: int = Field(default=3, description="Held-out tasks evaluated (spread over the held-out domains).")
    trials_k: int = Field(default=1, description="Trials per task; pass^k is reported for k = 1..trials_k (use temperature > 0 for k > 1).")
    max_turns: int = Field(default=3, description="Turn limit of one evaluation episode.")
    max_new_tokens: int = Field(default=48, description="Generation limit per agent turn.")
    temperature: float = Field(default=0.0, description="Agent sampling temperature; 0 is greedy.")
    generator: str = Field(default="transformers", description="transformers (in-process generation) or vllm (the `vllm_server` resource serves each model in turn).")
    seed: int = Field(default=0, description="Seed of the user simulator and task choice.")


@dg.asset(
    deps=["phase2_checkpoint", "base_model", "tasks", "environment"],
    group_name="evaluation",
    code_version="1",
    kinds={"json"},
    pool="gpu",  # a local model generates here (in-process or through a managed vLLM server)
)
def evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, artifacts: ArtifactStore, phase_plan: PhasePlan, vllm_server: VLLMServer
) -> dg.MaterializeResult:
    """Held-out tasks in held-out domains: pass^k of the fine-tuned model against its base."""
    layout = artifacts.layout
    split = phase_plan.split({d: dom.label for d, dom in read_domains(layout.domains).items()})
    per_domain = {d: read_tasks(layout.tasks(d) / "tasks.jsonl") for d in split.held_out if (layout.tasks(d) / "tasks.jsonl").exists()}
    # round-robin over held-out domains so a few tasks still cover all of them
    chosen = []
    for i in range(max((len(v) for v in per_domain.values()), default=0)):
        chosen += [tasks[i] for _, tasks in sorted(per_domain.items()) if i < len(tasks)]
    chosen = chosen[: config.max_tasks]
    context.log.info(f"evaluating {len(chosen)} held-out tasks from {len(per_domain)} domains, k={config.trials_k}")
    started, done = time.monotonic(), [0]
    total = len(chosen) * config.trials_k * 2

    def logged_episode(*args, **kwargs):
        trajectory = run_episode(*args, **kwargs)
        done[0] += 1
        rate = done[0] / max(time.monotonic() - started, 1e-9) * 60
        context.log.info(f"{done[0]}/{total} evaluation episodes ({rate:.1f}/min), last ended by {trajectory.termination}")
        return trajectory

    if config.generator not in ("transformers", "vllm"):
        raise ValueError(f"generator must be transformers or vllm, got {config.generator!r}")
    servers: list[dict] = []

    with ExitStack() as stack:
        envs = {d: stack.enter_context(Environment.load(layout.environment(d))) for d in per_domain}
        agent_factory = None
        if config.generator == "vllm":
            running = ExitStack()
            stack.callback(running.close)

            def agent_factory(name, model_dir):
                running.close()  # one model server at a time: the previous model is done
                server = running.enter_context(vllm_server.serve(str(model_dir)))
                servers.append({"model": name, "model_dir": str(model_dir), "startup_s": server.startup_s})
                context.log.info(f"vLLM serves {name} ({model_dir}) at {server.base_url}, ready in {server.startup_s} s")
                client = running.enter_context(OpenAICompatibleClient(base_url=server.base_url, model=server.served_model))
                return OpenAIChatAgent(client=client, temperature=config.temperature, max_tokens=config.max_new_tokens, seed=config.seed)

        report = evaluate(
            {"base": layout.model("base"), "agentscaler": layout.model("phase2")},
            chosen,
            envs,
            lambda seed: ScriptedUserSimulator(seed=seed),
            trials_k=config.trials_k,
            seed=config.seed,
            run_episode=logged_episode,
            max_turns=config.max_turns,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            out_dir=layout.evaluation,
            agent_factory=agent_factory,
        )
    path = layout.evaluation / "eval_report.json"
    scores = {name: model.pass_hat_k for name, model in report.models.items()}
    context.log.info(f"pass^k: {scores}")
    return result(
        path=path,
        digest=file_digest(path),
        metadata={
            "held_out_domains": dg.MetadataValue.json(split.held_out),
            "tasks": len(chosen),
            "episodes": len(report.episodes),
            "pass_hat_k": dg.MetadataValue.json(scores),
            "delta_vs_base": dg.MetadataValue.json(report.delta_vs_baseline),
            "generator": config.generator,
            "servers": dg.MetadataValue.json(servers),
            "comparison": picture(layout.evaluation / "pass_hat_k.png", "pass^k, fine-tuned vs base"),
        },
    )
