"""Build and write a domain's environment package (the folder the runtime serves).

    tools.json              OpenAI tools format
    tool_specs.json         the ToolSpecs
    schema.json             collections keyed by id field, typed fields (JSON Schema), tool bindings
    tools_module.py         the tool code
    dependency_graph.json   nodes (operation, kind, collection), edges (the field that links them), starts
    dependency_graph.png    a picture of it
    states/<state_id>.json  initial states
    validation.json         the validation report: runs, tool kinds, semantic property checks (semantics.py)
    policy.md / policy.json the agent's policy document and its rules (policy.py)
    manifest.json           sha256 of every file above, counts, generator, seed

Same inputs + seed give the same bytes (sorted JSON, fixed drawing, no clock).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from agentscaler_dagster.contracts import (
    Domain,
    EnvironmentManifest,
    ToolSpec,
    content_hash,
)
from agentscaler_dagster.envgen.codegen import CodeGenerator, ProgrammaticCodeGenerator
from agentscaler_dagster.envgen.depgraph import (
    EdgeVerifier,
    build_dependency_graph,
    draw_graph,
    graph_to_json,
)
from agentscaler_dagster.envgen.fieldmatch import FieldMatcher
from agentscaler_dagster.envgen.policy import PolicyWriter, build_policy, write_policy
from agentscaler_dagster.envgen.schema import derive_schema, infer_snapshot_schema
from agentscaler_dagster.envgen.states import generate_states
from agentscaler_dagster.envgen.validation import ValidationReport, validate_parts

ENVGEN_VERSION = "3"

__all__ = ["ENVGEN_VERSION", "EnvironmentManifest", "build_environment", "build_environment_from_snapshot"]


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _dedupe(tools: list[ToolSpec]) -> tuple[list[ToolSpec], list[str]]:
    seen: dict[str, ToolSpec] = {}
    skipped = []
    for spec in sorted(tools, key=lambda t: (t.name, t.tool_id)):
        if spec.name in seen:
            skipped.append(f"{spec.name} ({spec.tool_id}): duplicate tool name")
            continue
        if not isinstance(spec.parameters, dict):
            skipped.append(f"{spec.name} ({spec.tool_id}): parameters is not a JSON Schema object")
            continue
        seen[spec.name] = spec
    return list(seen.values()), skipped


def _choose_code(domain: Domain, tools: list[ToolSpec], schema: dict, states: dict, *, seed: int,
                 code_generator: CodeGenerator | None, max_attempts: int, min_pass_rate: float,
                 runtime) -> tuple[str, str, ValidationReport, list[dict]]:
    attempts: list[dict] = []
    if code_generator is not None:
        for attempt in range(max_attempts):
            try:
                source = code_generator.generate(domain, tools, schema)
            except Exception as exc:  # a generator that fails is an attempt, and the fallback still runs
                attempts.append({"attempt": attempt, "error": f"{type(exc).__name__}: {exc}"})
                continue
            report = validate_parts(domain.domain_id, tools, source, schema, states, seed=seed,
                                    min_pass_rate=min_pass_rate, runtime=runtime)
            if report.usable:
                return source, getattr(code_generator, "name", type(code_generator).__name__), report, attempts
            reasons = report.static_problems[:5] + [f"{t.tool}: {t.error}" for t in report.failures[:5]]
            attempts.append({"attempt": attempt, "pass_rate": report.pass_rate, "problems": reasons})
    fallback = ProgrammaticCodeGenerator()
    source = fallback.generate(domain, tools, schema)
    report = validate_parts(domain.domain_id, tools, source, schema, states, seed=seed,
                            min_pass_rate=min_pass_rate, runtime=runtime)
    return source, fallback.name, report, attempts


def _write_package(out_dir: Path, *, domain: Domain, tools: list[ToolSpec], schema: dict, source: str,
                   graph, states: dict[str, dict], report: ValidationReport, seed: int, generator: str,
                   attempts: list[dict], skipped: list[str], edge_matcher: str = "name",
                   policy_writer: PolicyWriter | None = None) -> EnvironmentManifest:
    out_dir.mkdir(parents=True, exist_ok=True)
    states_dir = out_dir / "states"
    states_dir.mkdir(exist_ok=True)
    for stale in states_dir.glob("*.json"):
        if stale.stem not in states:
            stale.unlink()
    texts = {
        "tools.json": _dump([t.openai_tool() for t in tools]),
        "tool_specs.json": _dump([t.model_dump(mode="json") for t in tools]),
        "schema.json": _dump(schema),
        "tools_module.py": source,
        "dependency_graph.json": _dump(graph_to_json(graph)),
        "validation.json": _dump(report.model_dump(mode="json")),
    }
    policy = write_policy(build_policy(domain.domain_id, domain.label, tools, schema), tools, schema, policy_writer)
    texts["policy.md"] = policy.text
    texts["policy.json"] = _dump(policy.model_dump(mode="json"))
    for sid, state in sorted(states.items()):
        texts[f"states/{sid}.json"] = _dump(state)
    for rel, text in texts.items():
        (out_dir / rel).write_text(text, encoding="utf-8")
    draw_graph(graph, out_dir / "dependency_graph.png", f"{domain.domain_id} ({domain.label})")
    files = {rel: hashlib.sha256((out_dir / rel).read_bytes()).hexdigest()
             for rel in sorted(list(texts) + ["dependency_graph.png"])}
    gj = graph_to_json(graph)
    manifest = EnvironmentManifest(
        domain_id=domain.domain_id, label=domain.label, seed=seed, generator=generator,
        generator_attempts=attempts, schema_source=schema.get("source", "tools"), n_tools=len(tools),
        n_collections=len(schema["collections"]), n_states=len(states), n_edges=len(gj["edges"]),
        n_embedding_edges=sum(1 for e in gj["edges"] if e.get("match") == "embedding"), edge_matcher=edge_matcher,
        n_starts=len(gj["starts"]), pass_rate=report.pass_rate, usable=report.usable, skipped_tools=skipped,
        envgen_version=ENVGEN_VERSION, semantic_valid=report.semantic_valid, tool_kinds=report.tool_kinds,
        failed_properties={t.tool: t.failed for t in report.semantics if t.failed}, policy_file="policy.md",
        files=files, content_hash=content_hash(files),
    )
    (out_dir / "manifest.json").write_text(_dump(manifest.model_dump(mode="json")), encoding="utf-8")
    manifest.package_dir = str(out_dir)
    return manifest


def build_environment(domain: Domain, tools: list[ToolSpec], out_dir: str | Path, *, seed: int,
                      n_states: int = 3, code_generator: CodeGenerator | None = None,
                      edge_verifier: EdgeVerifier | None = None, field_matcher: FieldMatcher | None = None,
                      min_pass_rate: float = 0.9, max_attempts: int = 3, runtime=None,
                      policy_writer: PolicyWriter | None = None) -> EnvironmentManifest:
    """Materialise a domain: schema, dependency graph, tool code, initial states, validation, manifest.

    ``code_generator`` (e.g. an LLM) is tried up to ``max_attempts`` times; code that fails the static
    check or validation falls back to the programmatic generator. ``edge_verifier(a, b) -> bool`` may veto
    dependency edges; ``field_matcher`` adds edges where an output's name embeds close to a required input's
    (``fieldmatch``). ``runtime`` lets several builds share one sandbox worker. ``policy_writer`` (e.g. an
    LLM) rewrites the policy's text; its rules stay the programmatic ones, and a failure keeps that text.
    """
    if not tools:
        raise ValueError(f"domain {domain.domain_id}: no tools given")
    if n_states < 1:
        raise ValueError(f"n_states must be >= 1, got {n_states}")
    tools, skipped = _dedupe(tools)
    schema = derive_schema(domain.domain_id, tools)
    graph = build_dependency_graph(tools, schema, edge_verifier=edge_verifier, field_matcher=field_matcher)
    states = generate_states(schema, seed=seed, n_states=n_states)
    source, generator, report, attempts = _choose_code(
        domain, tools, schema, states, seed=seed, code_generator=code_generator, max_attempts=max_attempts,
        min_pass_rate=min_pass_rate, runtime=runtime)
    return _write_package(Path(out_dir), domain=domain, tools=tools, schema=schema, source=source, graph=graph,
                          states=states, report=report, seed=seed, generator=generator, attempts=attempts,
                          skipped=skipped, policy_writer=policy_writer,
                          edge_matcher=field_matcher.matcher_id if field_matcher else "name")


def _subsample(state: dict, schema: dict, rng: random.Random, keep: float) -> dict:
    """A smaller variant of a snapshot that keeps every record some kept record refers to."""
    kept: dict = {}
    for name in sorted(schema["collections"]):
        table = state.get(name, {})
        keys = [k for k in sorted(table) if rng.random() < keep] or sorted(table)[:1]
        kept[name] = {k: table[k] for k in keys}
    changed = True
    while changed:
        changed = False
        for name, coll in sorted(schema["collections"].items()):
            for record in list(kept[name].values()):
                for field, ref in coll["references"].items():
                    value = record.get(field)
                    for key in (value if isinstance(value, list) else [value]):
                        if key is not None and str(key) in state.get(ref, {}) and str(key) not in kept[ref]:
                            kept[ref][str(key)] = state[ref][str(key)]
                            changed = True
    out = {name: dict(sorted(kept[name].items())) for name in sorted(kept)}
    out["_meta"] = state.get("_meta", {})
    return out


def build_environment_from_snapshot(domain: Domain, tool_specs: list[ToolSpec], snapshot: dict,
                                    out_dir: str | Path, *, seed: int = 0, n_states: int = 1,
                                    code_generator: CodeGenerator | None = None,
                                    edge_verifier: EdgeVerifier | None = None,
                                    field_matcher: FieldMatcher | None = None, min_pass_rate: float = 0.9,
                                    max_attempts: int = 3, runtime=None) -> EnvironmentManifest:
    """Bring your own database: the schema is inferred from ``snapshot`` (collections of records, as lists
    or keyed by id) and the tools are bound to it. State ``snapshot`` is the data as given (normalised to
    id-keyed collections); with ``n_states > 1`` smaller variants that keep referential integrity follow.
    """
    if not tool_specs:
        raise ValueError(f"domain {domain.domain_id}: no tools given")
    tools, skipped = _dedupe(tool_specs)
    schema, state = infer_snapshot_schema(domain.domain_id, tools, snapshot)
    meta = snapshot.get("_meta") if isinstance(snapshot.get("_meta"), dict) else {}
    counters = dict(meta.get("counters") or {})
    for name, coll in schema["collections"].items():
        numbers = [int(str(k).rsplit("-", 1)[-1]) for k in state[name] if str(k).rsplit("-", 1)[-1].isdigit()]
        counters.setdefault(name, max(numbers, default=len(state[name])) + 1)
    state["_meta"] = {**meta, "counters": dict(sorted(counters.items()))}
    states = {"snapshot": state}
    rng = random.Random(f"snapshot:{seed}")
    for i in range(1, n_states):
        states[f"snapshot_sub_{i}"] = _subsample(state, schema, rng, keep=max(0.3, 1.0 - 0.25 * i))
    graph = build_dependency_graph(tools, schema, edge_verifier=edge_verifier, field_matcher=field_matcher)
    source, generator, report, attempts = _choose_code(
        domain, tools, schema, states, seed=seed, code_generator=code_generator, max_attempts=max_attempts,
        min_pass_rate=min_pass_rate, runtime=runtime)
    return _write_package(Path(out_dir), domain=domain, tools=tools, schema=schema, source=source, graph=graph,
                          states=states, report=report, seed=seed, generator=generator, attempts=attempts,
                          skipped=skipped,
                          edge_matcher=field_matcher.matcher_id if field_matcher else "name")
