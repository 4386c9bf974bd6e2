"""The project's chat template: Gemma 3 turn format plus tools, tool calls and tool results.

The Gemma 3 270M GGUF carries no chat template, so the project writes its own:

    <bos><start_of_turn>user
    {system}

    {tools block}

    {first user message}<end_of_turn>
    <start_of_turn>model
    {reply text}
    <tool_call>{"name": "get_order", "arguments": {"order_id": "W1"}}</tool_call><end_of_turn>
    <start_of_turn>user
    <tool_response>{...}</tool_response><end_of_turn>
    <start_of_turn>model
    ...

Gemma has no system or tool role: the system prompt and the tool list go into the first user turn (as
Gemma's own instruction-tuned template does with the system prompt), and tool results are a user-side turn
(consecutive tool results share one turn). The same text is what SFT trains on and what the evaluation
agent prompts with, so ``parse_assistant_output`` is the exact inverse of how an assistant turn renders.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentscaler_dagster.contracts import canonical_json

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"
GENERATION_PROMPT = "<start_of_turn>model\n"

TOOLS_PREAMBLE = (
    "You can call the tools listed below. To call a tool, write one line per call:\n"
    '<tool_call>{"name": TOOL_NAME, "arguments": {ARGUMENTS}}</tool_call>\n'
    "The results come back inside <tool_response></tool_response>. Available tools:"
)

# Whitespace is controlled with {%- -%} so that every character of the output is deliberate: the SFT
# mask is computed from these exact strings.
CHAT_TEMPLATE = (
    "{{- bos_token -}}\n"
    "{%- if messages and messages[0]['role'] == 'system' -%}\n"
    "  {%- set preamble = messages[0]['content'] or '' -%}\n"
    "  {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "  {%- set preamble = '' -%}\n"
    "  {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- if tools -%}\n"
    "  {%- set ns = namespace(block='" + TOOLS_PREAMBLE.replace("\n", "\\n").replace("'", "\\'") + "') -%}\n"
    "  {%- for tool in tools -%}\n"
    "    {%- if tool['signature'] is defined -%}\n"
    "      {%- set ns.block = ns.block + '\\n' + tool['signature'] -%}\n"
    "    {%- else -%}\n"
    "      {%- set spec = tool['function'] if tool['function'] is defined else tool -%}\n"
    "      {%- set ns.block = ns.block + '\\n' + (spec | tojson(sort_keys=true)) -%}\n"
    "    {%- endif -%}\n"
    "  {%- endfor -%}\n"
    "  {%- set preamble = (preamble + '\\n\\n' + ns.block) if preamble else ns.block -%}\n"
    "{%- endif -%}\n"
    "{%- if preamble and (not loop_messages or loop_messages[0]['role'] != 'user') -%}\n"
    "  {{- '<start_of_turn>user\\n' + preamble + '<end_of_turn>\\n' -}}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "  {%- set role = message['role'] -%}\n"
    "  {%- if role == 'user' -%}\n"
    "    {{- '<start_of_turn>user\\n' -}}\n"
    "    {%- if loop.first and preamble -%}{{- preamble + '\\n\\n' -}}{%- endif -%}\n"
    "    {{- (message['content'] or '') + '<end_of_turn>\\n' -}}\n"
    "  {%- elif role == 'assistant' -%}\n"
    "    {{- '<start_of_turn>model\\n' -}}\n"
    "    {%- set text = message['content'] or '' -%}\n"
    "    {{- text -}}\n"
    "    {%- for call in (message['tool_calls'] or []) -%}\n"
    "      {%- set fn = call['function'] if call['function'] is defined else call -%}\n"
    "      {%- if text or not loop.first -%}{{- '\\n' -}}{%- endif -%}\n"
    "      {%- set args = fn['arguments'] -%}\n"
    "      {{- '<tool_call>{\"name\": ' + (fn['name'] | tojson) + ', \"arguments\": ' -}}\n"
    "      {%- if args is string -%}{{- args -}}{%- else -%}{{- args | tojson(sort_keys=true) -}}{%- endif -%}\n"
    "      {{- '}</tool_call>' -}}\n"
    "    {%- endfor -%}\n"
    "    {{- '<end_of_turn>\\n' -}}\n"
    "  {%- elif role == 'tool' -%}\n"
    "    {%- if loop.first or loop.previtem['role'] != 'tool' -%}{{- '<start_of_turn>user\\n' -}}\n"
    "    {%- else -%}{{- '\\n' -}}{%- endif -%}\n"
    "    {{- '<tool_response>' + (message['content'] or '') + '</tool_response>' -}}\n"
    "    {%- if loop.last or loop.nextitem['role'] != 'tool' -%}{{- '<end_of_turn>\\n' -}}{%- endif -%}\n"
    "  {%- else -%}\n"
    "    {{- raise_exception('unsupported message role: ' + role) -}}\n"
    "  {%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}\n"
)

_TOOL_CALL_RE = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


def normalize_messages(messages: list[dict]) -> list[dict]:
    """OpenAI chat messages in the shape the template and the SFT JSONL use.

    Tool-call arguments become dicts (the Hugging Face chat-template convention; TRL and ms-swift read
    both), tool outputs become text, and keys the template does not read are dropped. Raises
    ``ValueError`` naming the message when a message cannot be rendered.
    """
    out: list[dict] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"message {index}: unsupported role {role!r} (expected system, user, assistant, tool)")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            content = canonical_json(content)
        if role == "assistant":
            calls = []
            for call_index, call in enumerate(message.get("tool_calls") or []):
                fn = call.get("function", call)
                name = fn.get("name")
                if not isinstance(name, str) or not name:
                    raise ValueError(f"message {index}: tool call {call_index} has no function name")
                arguments = fn.get("arguments", {})
                if isinstance(arguments, str):
                    try:
                        arguments = json.loads(arguments) if arguments.strip() else {}
                    except json.JSONDecodeError:
                        pass  # kept as text: the model did emit it, and the template renders it verbatim
                entry = {"type": "function", "function": {"name": name, "arguments": arguments}}
                if call.get("id"):
                    entry["id"] = call["id"]
                calls.append(entry)
            item: dict[str, Any] = {"role": "assistant", "content": content or ""}
            if calls:
                item["tool_calls"] = calls
        elif role == "tool":
            item = {"role": "tool", "content": content or ""}
            for key in ("tool_call_id", "name"):
                if message.get(key):
                    item[key] = message[key]
        else:
            item = {"role": role, "content": content or ""}
        out.append(item)
    return out


def render(tokenizer, messages: list[dict], tools: list[dict] | None = None, *, add_generation_prompt: bool = False) -> str:
    """Render ``messages`` (and ``tools``) with the tokenizer's chat template to text."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "tokenizer has no chat_template; load it from a directory written by prepare_base_model or train"
        )
    return tokenizer.apply_chat_template(
        normalize_messages(messages),
        tools=compact_tools(tools) or None,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def parse_assistant_output(text: str, *, call_id_prefix: str = "call", first_index: int = 0) -> dict:
    """Turn generated text into an OpenAI-format assistant message.

    Each well-formed ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` becomes a tool call with
    id ``f"{call_id_prefix}_{first_index + i}"``; the text outside them is the reply. Output with a
    malformed tool call (bad JSON, no name, arguments not an object) is returned as a plain text reply, so
    the conversation goes on and the episode is judged on what the model actually did. Never raises.
    """
    text = (text or "").replace(END_OF_TURN, "").strip()
    calls = []
    for match in _TOOL_CALL_RE.finditer(text):
        try:
            payload = json.loads(match.group(1))
        except json.JSONDecodeError:
            return {"role": "assistant", "content": text}
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str) or not payload["name"]:
            return {"role": "assistant", "content": text}
        arguments = payload.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                return {"role": "assistant", "content": text}
        if not isinstance(arguments, dict):
            return {"role": "assistant", "content": text}
        calls.append(
            {
                "id": f"{call_id_prefix}_{first_index + len(calls)}",
                "type": "function",
                "function": {"name": payload["name"], "arguments": json.dumps(arguments, ensure_ascii=False)},
            }
        )
    if TOOL_CALL_OPEN in _TOOL_CALL_RE.sub("", text):
        # an unclosed call (often cut off by max_new_tokens) is not a call
        return {"role": "assistant", "content": text}
    reply = _TOOL_CALL_RE.sub("", text).strip()
    message: dict[str, Any] = {"role": "assistant", "content": reply or None}
    if calls:
        message["tool_calls"] = calls
    elif not reply:
        message["content"] = ""
    return message



def _type_text(schema: Any, depth: int = 0) -> str:
    if not isinstance(schema, dict):
        return "any"
    if schema.get("enum"):
        return "|".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{_type_text(schema.get('items'), depth + 1)}]"
    if kind == "object" and schema.get("properties") and depth < 2:
        return "{" + ", ".join(_argument_text(n, sub, n in (schema.get("required") or []), depth + 1)
                               for n, sub in schema["properties"].items()) + "}"
    return "string(" + schema["format"] + ")" if kind == "string" and schema.get("format") else str(kind)


def _argument_text(name: str, schema: Any, required: bool, depth: int = 0) -> str:
    text = f"{name}{'' if required else '?'}: {_type_text(schema, depth)}"
    if isinstance(schema, dict) and "default" in schema:
        text += f" = {json.dumps(schema['default'])}"
    return text


def _first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    cut = text.find(". ")
    if 0 < cut < limit:
        return text[: cut + 1]
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def tool_signature(tool: dict) -> str:
    """One line per tool: ``name(arg: type, optional?: type = default) - first sentence of the description``."""
    spec = tool.get("function", tool)
    parameters = spec.get("parameters") or {}
    required = set(parameters.get("required") or [])
    arguments = ", ".join(_argument_text(n, sub, n in required) for n, sub in (parameters.get("properties") or {}).items())
    return f"{spec.get('name', '')}({arguments}) - {_first_sentence(spec.get('description', ''))}"


def compact_tools(tools: list[dict] | None) -> list[dict] | None:
    """Tools as the model sees them: one signature line each (names, types, enums, defaults, required).

    A domain's full OpenAI schemas run to ~2,000 tokens, which leaves a 270M model on a CPU no room for
    the conversation; a signature carries what a call needs in about a quarter of that. SFT records keep
    the full schemas (other trainers read them); only the rendered prompt is compact.
    """
    if not tools:
        return tools
    return [{"signature": tool_signature(tool)} for tool in tools]
