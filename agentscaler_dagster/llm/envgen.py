"""The LLM side of environment synthesis: tool code and dependency-edge verification through a server.

Both plug into `envgen.build_environment` (``code_generator=``, ``edge_verifier=``). Whatever a model
writes goes through the same static check and sandboxed validation as the programmatic code, and a
module that fails them falls back to the programmatic generator (see envgen.package).
"""

from __future__ import annotations

import json
import re

from agentscaler_dagster.contracts import Domain, ToolSpec
from agentscaler_dagster.llm.client import BackendError, OpenAICompatibleClient

ALLOWED_IMPORTS = "json, math, re, datetime, copy, itertools, collections, decimal, statistics"

_CODE_SYSTEM = (
    "You write Python tool modules for a simulated environment. Rules: one plain function per tool, "
    "`def <tool_name>(state: dict, **arguments)`, with the tool's arguments as keyword parameters. `state` is "
    "the domain database: a dict of collections, each a dict from record id (string) to record (dict). Reads "
    "look records up and return them; writes check arguments and that referenced records exist, change "
    "`state`, and return the changed record. Raise `ToolError(message)` for a domain error (it is provided; "
    f"do not import it). Imports allowed: {ALLOWED_IMPORTS}. No other imports, no dunder names, no eval, exec, "
    "open, getattr, globals, classes with metaclasses, randomness or clocks. Answer with one ```python block."
)

_FENCE = re.compile(r"```(?:python)?\s*\n(.*?)```", re.DOTALL)


def _extract_code(text: str) -> str:
    match = _FENCE.search(text or "")
    return (match.group(1) if match else text or "").strip() + "\n"


class LLMCodeGenerator:
    """Writes a domain's tool module with a model; each attempt samples anew (the seed moves on)."""

    def __init__(self, client: OpenAICompatibleClient, *, temperature: float = 0.7, max_tokens: int = 4096, seed: int = 0):
        self.client = client
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.name = f"llm:{client.model}"
        self._attempt = 0

    def prompt(self, domain: Domain, tools: list[ToolSpec], schema: dict) -> str:
        collections = {
            name: {"id_field": c.get("id_field"), "fields": sorted((c.get("fields") or {}).keys())}
            for name, c in sorted((schema.get("collections") or {}).items())
        }
        specs = [
            {"name": t.name, "operation": t.operation, "description": t.description, "parameters": t.parameters}
            for t in sorted(tools, key=lambda t: t.name)
        ]
        return (
            f"Domain: {domain.label}\nDatabase collections: {json.dumps(collections, sort_keys=True)}\n"
            f"Tools: {json.dumps(specs, sort_keys=True)}\nWrite the module."
        )

    def generate(self, domain: Domain, tools: list[ToolSpec], schema: dict) -> str:
        seed = self.seed + self._attempt
        self._attempt += 1
        reply = self.client.chat(
            messages=[{"role": "system", "content": _CODE_SYSTEM}, {"role": "user", "content": self.prompt(domain, tools, schema)}],
            temperature=self.temperature, max_tokens=self.max_tokens, seed=seed,
        )
        return _extract_code(reply.get("content") or "")


_EDGE_SCHEMA = {
    "type": "object",
    "properties": {"depends": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["depends", "reason"],
}


class LLMEdgeVerifier:
    """Asks a model whether a candidate dependency edge A -> B is a plausible next step.

    A candidate edge comes from the schemas (A's output feeds B's input); the model may veto it. When the
    server fails or answers off-schema the edge is kept: verification can prune, never invent, and a
    flaky server must not silently thin the graph. Every decision is kept in ``decisions``.
    """

    def __init__(self, client: OpenAICompatibleClient, *, max_tokens: int = 96):
        self.client = client
        self.max_tokens = max_tokens
        self.decisions: dict[tuple[str, str], dict] = {}

    def __call__(self, a: ToolSpec, b: ToolSpec) -> bool:
        key = (a.name, b.name)
        if key not in self.decisions:
            question = (
                f"Tool A: {a.name}: {a.description}\nTool B: {b.name}: {b.description}\n"
                f"B's inputs: {json.dumps(b.parameters.get('properties', {}), sort_keys=True)[:1500]}\n"
                "Would a user plausibly call B right after A, using something A returned? "
                'Answer as JSON: {"depends": true|false, "reason": "..."}'
            )
            try:
                reply = self.client.chat(messages=[{"role": "user", "content": question}], json_schema=_EDGE_SCHEMA,
                                         temperature=0.0, max_tokens=self.max_tokens, seed=0)
                answer = json.loads(reply.get("content") or "")
                self.decisions[key] = {"depends": bool(answer["depends"]), "reason": str(answer.get("reason", ""))[:200]}
            except (BackendError, ValueError, KeyError, TypeError) as exc:
                self.decisions[key] = {"depends": True, "reason": f"kept: verification failed ({type(exc).__name__}: {exc})"[:200]}
        return self.decisions[key]["depends"]


_POLICY_SYSTEM = (
    "You write the policy document an AI agent follows when it serves customers of one service through "
    "tools, in the style of an airline or retail agent policy. Write plain Markdown: who the agent serves, what "
    "it may do, what it must verify and confirm before acting, what it must refuse. Keep every rule you are "
    "given, name the tools as given, add nothing the tools cannot do. No preamble."
)


class LLMPolicyWriter:
    """Writes a domain policy's prose with a model (``envgen.build_environment(policy_writer=...)``)."""

    def __init__(self, client: OpenAICompatibleClient, *, temperature: float = 0.3, max_tokens: int = 1024,
                 seed: int = 0):
        self.client = client
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.name = f"llm:{client.model}"

    def prompt(self, policy, tools: list[ToolSpec]) -> str:
        rules = "\n".join(f"- [{rule.kind}] {rule.text}" for rule in policy.rules)
        tool_lines = "\n".join(f"- {t.name}: {t.description}" for t in sorted(tools, key=lambda t: t.name))
        return f"Service: {policy.domain_id}\nTools:\n{tool_lines}\nRules to keep:\n{rules}\nWrite the policy."

    def write(self, policy, tools: list[ToolSpec], schema: dict) -> str:
        reply = self.client.chat(
            messages=[{"role": "system", "content": _POLICY_SYSTEM}, {"role": "user", "content": self.prompt(policy, tools)}],
            temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed,
        )
        return (reply.get("content") or "").strip()
