import json
from contextlib import ExitStack

import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import picture, result
from agentscaler_dagster.evaluation import bfcl
from agentscaler_dagster.llm import OpenAICompatibleClient
from agentscaler_dagster.resources import ArtifactStore, VLLMServer


class BfclEvaluationConfig(dg.Config):
    # defaults sized for a 2-core CPU: 4 x 5 questions per checkpoint, one batch; raise them on a GPU
    categories: list[str] = Field(default=list(bfcl.DEFAULT_CATEGORIES), description=f"BFCL v4 categories; supported: {', '.join(bfcl.SUPPORTED_CATEGORIES)}.")
    limit_per_category: int = Field(default=5, description="Questions per category, picked by a hash of (seed, question id); 0: every question.")
    seed: int = Field(default=0, description="Seed of the question choice.")
    max_new_tokens: int = Field(default=128, description="Generation limit per model step.")
    batch_size: int = Field(default=32, description="Prompts generated together (left-padded).")
    dtype: str = Field(default="bfloat16", description="bfloat16 (as vLLM serves the model here; faster on CPU) or float32.")
    max_steps_per_turn: int = Field(default=5, description=f"Multi-turn: model steps per user turn before the conversation is force-quit (bfcl-eval: {bfcl.BFCL_MAX_STEPS_PER_TURN}).")
    python: str = Field(default="", description="Python of the bfcl-eval venv; empty: $AGENTSCALER_BFCL_PYTHON or .venv-bfcl/bin/python (scripts/setup_bfcl.sh).")
    generator: str = Field(default="transformers", description="transformers (in-process, batched) or vllm (the `vllm_server` resource serves each checkpoint in turn).")
    concurrency: int = Field(default=16, ge=1, description="Requests at once to the served model (generator: vllm).")


@dg.asset(
    deps=["base_model", "phase2_checkpoint"],
    group_name="evaluation",
    code_version="1",
    kinds={"json"},
    pool="gpu",  # the checkpoints generate here
)
def bfcl_evaluation(
    context: dg.AssetExecutionContext, config: BfclEvaluationConfig, artifacts: ArtifactStore,
    pipes_subprocess_client: dg.PipesSubprocessClient, vllm_server: VLLMServer,
) -> dg.MaterializeResult:
    """BFCL v4 with bfcl-eval's own data and checkers (its own venv, through Pipes): base vs fine-tuned."""
    layout = artifacts.layout
    out = layout.stage("evaluation", "bfcl")
    python = bfcl.bfcl_python(config.python or None)  # fails before any model loads when the venv is missing
    questions = bfcl.select_questions(bfcl.load_questions(python, config.categories), limit_per_category=config.limit_per_category, seed=config.seed)
    context.log.info(f"BFCL: {len(questions)} questions from {', '.join(config.categories)} (seed {config.seed})")
    models = {"base": layout.model("base"), "agentscaler": layout.model("phase2")}
    settings = {"max_new_tokens": config.max_new_tokens, "batch_size": config.batch_size, "dtype": config.dtype,
                "max_steps_per_turn": config.max_steps_per_turn}
    if config.generator not in ("transformers", "vllm"):
        raise ValueError(f"bfcl_evaluation.generator must be transformers or vllm, got {config.generator!r}")
    servers: list[dict] = []
    with ExitStack() as running:
        def served(name, model_dir):
            running.close()  # one model server at a time: the previous checkpoint is done
            server = running.enter_context(vllm_server.serve(str(model_dir)))
            servers.append({"model": name, "startup_s": server.startup_s})
            context.log.info(f"vLLM serves {name} ({model_dir}) at {server.base_url}, ready in {server.startup_s} s")
            client = running.enter_context(OpenAICompatibleClient(base_url=server.base_url, model=server.served_model,
                                                                  max_concurrency=config.concurrency))
            return bfcl.ServedGenerator(client, model_dir, max_new_tokens=config.max_new_tokens, concurrency=config.concurrency)

        answers, seconds = bfcl.generate_answers(models, questions, python=python, progress=context.log.info,
                                                 generator_factory=served if config.generator == "vllm" else None, **settings)
    if config.generator == "vllm":
        settings = {**settings, "generator": "vllm", "concurrency": config.concurrency}
    answers_path = bfcl.write_answers(answers, out / "answers.jsonl")
    scores_path = out / "scores.json"
    scored = pipes_subprocess_client.run(
        command=bfcl.scorer_command(python, "score", "--answers", str(answers_path), "--out", str(scores_path)), context=context
    ).get_materialize_result()
    report = bfcl.write_report(
        bfcl.build_report(json.loads(scores_path.read_text()), questions, models, seed=config.seed,
                          limit_per_category=config.limit_per_category, settings=settings),
        out,
    )
    table = bfcl.markdown_table(report)
    context.log.info("BFCL accuracy (bfcl-eval checker):\n" + table)
    return result(
        path=out / "bfcl_report.json",
        digest=file_digest(out / "bfcl_report.json"),
        metadata={
            **(scored.metadata or {}),
            "questions": report.questions,
            "questions_per_category": dg.MetadataValue.json({c: len(ids) for c, ids in report.question_ids.items()}),
            "accuracy": dg.MetadataValue.json({n: {c: s.accuracy for c, s in m.categories.items()} for n, m in report.models.items()}),
            "errors": dg.MetadataValue.json({n: m.errors for n, m in report.models.items()}),
            "generation_seconds": dg.MetadataValue.json({n: round(s, 1) for n, s in seconds.items()}),
            "generator": config.generator,
            "servers": dg.MetadataValue.json(servers),
            "table": dg.MetadataValue.md(table),
            "comparison": picture(out / "bfcl_accuracy.png", "BFCL v4 accuracy, fine-tuned vs base"),
        },
    )
