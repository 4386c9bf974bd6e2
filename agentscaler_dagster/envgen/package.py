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

Quarantine: when validation fails and the failures belong to single tools (a tool that runs on no initial
state, or breaks its kind's contract), those tools are left out and the package is built again from the
others (schema, states, code, graph: leaving tools out can change the schema, so up to
``QUARANTINE_ROUNDS`` times). The package then holds only the remaining tools, and ``quarantined_tools``
(tool -> reason) in manifest.json (``contracts.EnvironmentManifest``) and validation.json says what was left
out and why. Failures of the module or the states as a whole are not quarantined; a domain that quarantine
does not save is written whole, as before, with ``quarantine_note`` in validation.json saying why.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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

# Rebuilds after leaving failing tools out. Each rebuild derives the schema from fewer tools, which can make
# a tool that passed fail (a field or reference that only a removed tool declared); a few rounds settle it,
# and a domain still failing after them has a problem the quarantine is not the answer to.
QUARANTINE_ROUNDS = 3
# What must remain of a domain for it to be served: at least two tools (a task is a walk over at least one
# dependency edge) and at least half of the domain's tools. Where more than half fail, the failures say the
# domain was not understood (schema or states), not that a few specs are bad, and the rest would stand for
# a service it no longer resembles.
MIN_KEPT_TOOLS = 2
MIN_KEPT_SHARE = 0.5
_REASON_CHARS = 400

__all__ = ["ENVGEN_VERSION", "MIN_KEPT_SHARE", "MIN_KEPT_TOOLS", "QUARANTINE_ROUNDS", "EnvironmentManifest",
           "PackageManifest", "build_environment", "build_environment_from_snapshot"]


# the name envgen used while ``quarantined_tools`` lived here; the contract now carries it
PackageManifest = EnvironmentManifest


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


@dataclass
class _Parts:
    """One build of a domain's environment from a set of tools, validated."""

    tools: list[ToolSpec]
    schema: dict
    graph: Any
    states: dict[str, dict]
    source: str
    generator: str
    report: ValidationReport
    attempts: list[dict]


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def failing_tools(report: ValidationReport) -> dict[str, str]:
    """Tool -> why it fails, for the failures that belong to single tools: a run check that never passed, a
    property of its kind it breaks, a function the module lacks. Empty when the module or the states fail
    as a whole (static problems, no compile, state problems): leaving tools out is no answer to those."""
    if report.static_problems or not report.compiled or report.state_problems:
        return {}
    reasons: dict[str, list[str]] = {}
    for check in report.tools:
        if not check.ok:
            reasons.setdefault(check.tool, []).append(f"does not run: {check.error or 'no call succeeded'}")
    for sem in report.semantics:
        # "runs" repeats the run check's failure in other words
        failed = [f for f in sem.failed if not (f.startswith("runs:") and sem.tool in reasons)]
        if failed:
            reasons.setdefault(sem.tool, []).append(f"breaks the {sem.kind} contract: " + "; ".join(failed))
    for name in report.missing_functions:
        reasons.setdefault(name, ["the tool module has no function for it"])
    return {name: _clip("; ".join(why)) for name, why in sorted(reasons.items())}


def _quarantine(first: _Parts, rebuild: Callable[[list[ToolSpec]], _Parts]) -> tuple[_Parts, dict[str, str]]:
    """``first`` when it is usable or cannot be saved (with ``quarantine_note`` set on its report); else the
    build from the tools that remain once the failing ones are left out, and those tools with their reasons."""
    if first.report.usable:
        return first, {}
    total = len(first.tools)
    floor = max(MIN_KEPT_TOOLS, math.ceil(MIN_KEPT_SHARE * total))
    parts, quarantined = first, {}
    note = f"still failing after {QUARANTINE_ROUNDS} rounds of quarantine"
    for _ in range(QUARANTINE_ROUNDS):
        failing = failing_tools(parts.report)
        if not failing:
            note = ("not quarantined: the failures are not single tools' (static problems, compile or state "
                    "problems)" if (parts.report.static_problems or not parts.report.compiled
                                    or parts.report.state_problems) else
                    "not quarantined: no single tool fails, yet the domain is not valid")
            if quarantined:
                note = f"after leaving out {len(quarantined)} failing tools, {note}"
            break
        remaining = [t for t in parts.tools if t.name not in failing]
        if len(remaining) < floor:
            note = (f"not quarantined: {len(quarantined) + len(failing)} of {total} tools fail; a domain is kept "
                    f"only while at least {floor} of its tools remain (at least {MIN_KEPT_TOOLS}, and at least "
                    f"{MIN_KEPT_SHARE:.0%})")
            break
        quarantined.update(failing)
        parts = rebuild(remaining)
        if parts.report.usable:
            parts.report.quarantined_tools = dict(sorted(quarantined.items()))
            return parts, dict(sorted(quarantined.items()))
    # not saved: the package is the whole domain's, as without the quarantine, with the reason it was not
    first.report.quarantine_note = note
    return first, {}


def _memo_verifier(edge_verifier: EdgeVerifier | None) -> EdgeVerifier | None:
    """The verifier's answer per pair of tools, asked once however often the graph is rebuilt."""
    if edge_verifier is None:
        return None
    answers: dict[tuple, bool] = {}

    def verify(a: ToolSpec, b: ToolSpec) -> bool:
        key = (a.tool_id, a.name, b.tool_id, b.name)
        if key not in answers:
            answers[key] = edge_verifier(a, b)
        return answers[key]

    return verify


def _write_package(out_dir: Path, *, domain: Domain, tools: list[ToolSpec], schema: dict, source: str,
                   graph, states: dict[str, dict], report: ValidationReport, seed: int, generator: str,
                   attempts: list[dict], skipped: list[str], edge_matcher: str = "name",
                   policy_writer: PolicyWriter | None = None,
                   quarantined: dict[str, str] | None = None) -> EnvironmentManifest:
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
        files=files, content_hash=content_hash(files), quarantined_tools=dict(sorted((quarantined or {}).items())),
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

    Tools that fail validation on their own are quarantined (module docstring): the package is rebuilt
    without them and ``quarantined_tools`` names them with the reason.
    """
    if not tools:
        raise ValueError(f"domain {domain.domain_id}: no tools given")
    if n_states < 1:
        raise ValueError(f"n_states must be >= 1, got {n_states}")
    tools, skipped = _dedupe(tools)
    edge_verifier = _memo_verifier(edge_verifier)

    def build(kept: list[ToolSpec], generator: CodeGenerator | None) -> _Parts:
        schema = derive_schema(domain.domain_id, kept)
        graph = build_dependency_graph(kept, schema, edge_verifier=edge_verifier, field_matcher=field_matcher)
        states = generate_states(schema, seed=seed, n_states=n_states)
        source, name, report, attempts = _choose_code(
            domain, kept, schema, states, seed=seed, code_generator=generator, max_attempts=max_attempts,
            min_pass_rate=min_pass_rate, runtime=runtime)
        return _Parts(kept, schema, graph, states, source, name, report, attempts)

    return _build_and_write(build, tools, code_generator, out_dir, domain=domain, seed=seed, skipped=skipped,
                            field_matcher=field_matcher, policy_writer=policy_writer)


def _build_and_write(build, tools: list[ToolSpec], code_generator: CodeGenerator | None, out_dir: str | Path, *,
                     domain: Domain, seed: int, skipped: list[str], field_matcher: FieldMatcher | None,
                     policy_writer: PolicyWriter | None = None) -> EnvironmentManifest:
    """``build(tools, generator)`` once, then without the tools it failed on (``_quarantine``), then written."""
    first = build(tools, code_generator)
    # an unusable first build holds the programmatic generator's code (a plug-in's is kept only when usable),
    # and its report named the failing tools: the rebuilds use that generator too
    parts, quarantined = _quarantine(first, lambda kept: build(kept, None))
    return _write_package(Path(out_dir), domain=domain, tools=parts.tools, schema=parts.schema,
                          source=parts.source, graph=parts.graph, states=parts.states, report=parts.report,
                          seed=seed, generator=parts.generator, attempts=first.attempts, skipped=skipped,
                          policy_writer=policy_writer, quarantined=quarantined,
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
    Tools that fail validation on their own are quarantined as in ``build_environment``.
    """
    if not tool_specs:
        raise ValueError(f"domain {domain.domain_id}: no tools given")
    tools, skipped = _dedupe(tool_specs)
    edge_verifier = _memo_verifier(edge_verifier)

    def build(kept: list[ToolSpec], generator: CodeGenerator | None) -> _Parts:
        schema, state = infer_snapshot_schema(domain.domain_id, kept, snapshot)
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
        graph = build_dependency_graph(kept, schema, edge_verifier=edge_verifier, field_matcher=field_matcher)
        source, name, report, attempts = _choose_code(
            domain, kept, schema, states, seed=seed, code_generator=generator, max_attempts=max_attempts,
            min_pass_rate=min_pass_rate, runtime=runtime)
        return _Parts(kept, schema, graph, states, source, name, report, attempts)

    return _build_and_write(build, tools, code_generator, out_dir, domain=domain, seed=seed, skipped=skipped,
                            field_matcher=field_matcher)
