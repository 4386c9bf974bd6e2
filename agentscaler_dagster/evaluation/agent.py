"""An agent policy backed by a local transformers model (the base or a fine-tuned checkpoint)."""

from __future__ import annotations

import time
from pathlib import Path

from agentscaler_dagster.sft.chat_template import END_OF_TURN, parse_assistant_output, render


class TransformersAgent:
    """AgentPolicy over a model directory written by ``prepare_base_model`` or ``train``.

    Prompts with the project's chat template (tools included), generates until ``<end_of_turn>``, and
    parses ``<tool_call>{...}</tool_call>`` lines into OpenAI tool calls; any other output - malformed
    calls included - is a text reply, so a weak model loses the episode instead of crashing it.
    Greedy when ``temperature == 0``; otherwise sampling seeded by ``seed`` (see ``reset``).
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        name: str | None = None,
        num_threads: int | None = None,
    ):
        import torch

        from agentscaler_dagster.sft.base_model import load_model_and_tokenizer

        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model_dir = Path(model_dir)
        self.model, self.tokenizer = load_model_and_tokenizer(self.model_dir)
        self.model.eval()
        self.name = name or f"transformers:{self.model_dir.name}"
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self._turn = 0
        self.last_generation: dict = {}
        self._stop_ids = [self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(END_OF_TURN)]

    def reset(self, *, seed: int) -> None:
        """Start a new episode whose sampling is fixed by ``seed`` (the evaluation derives it per task and trial)."""
        self.seed = seed
        self._turn = 0

    def generate_text(self, prompt: str) -> str:
        import torch

        encoded = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        sampling = self.temperature > 0
        kwargs = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": sampling,
            "eos_token_id": self._stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampling:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        started = time.perf_counter()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(self.seed * 10_007 + self._turn)
            output = self.model.generate(**encoded, **kwargs)
        self._turn += 1
        new_tokens = output[0, encoded["input_ids"].shape[1] :]
        self.last_generation = {
            "prompt_tokens": int(encoded["input_ids"].shape[1]),
            "new_tokens": int(new_tokens.shape[0]),
            "seconds": round(time.perf_counter() - started, 4),
        }
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True)

    def act(self, messages: list[dict], tools: list[dict]) -> dict:
        prompt = render(self.tokenizer, messages, tools, add_generation_prompt=True)
        text = self.generate_text(prompt)
        prior_calls = sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")
        return parse_assistant_output(text, first_index=prior_calls)


class ServedTemplateAgent:
    """AgentPolicy over a checkpoint served by an OpenAI-compatible server, prompted exactly as it was trained.

    The prompt is rendered here with the checkpoint's own chat template (``render``: tools as compact
    signatures, as every SFT record renders) and sent to ``/v1/completions`` as text (the server adds no special
    tokens: the template has its ``<bos>``); the reply is parsed with ``parse_assistant_output``, the inverse of
    how an assistant turn renders. The chat endpoint would let the server render the tools itself, from their
    JSON schemas: a prompt the checkpoint never saw in training, two to six times longer.
    """

    def __init__(self, client, model_dir: Path, *, max_new_tokens: int = 128, temperature: float = 0.0,
                 seed: int = 0, name: str | None = None):
        from transformers import AutoTokenizer

        from agentscaler_dagster.sft.chat_template import CHAT_TEMPLATE

        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.client, self.model_dir = client, Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        if not getattr(self.tokenizer, "chat_template", None):
            self.tokenizer.chat_template = CHAT_TEMPLATE
        self.name = name or f"served:{client.model}"
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed

    @property
    def sampling(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_new_tokens, "seed": self.seed}

    def clone(self) -> "ServedTemplateAgent":
        """Another agent on the same client and tokenizer: for concurrent episodes."""
        other = object.__new__(ServedTemplateAgent)
        other.__dict__.update(self.__dict__)
        return other

    def reset(self, *, seed: int) -> None:
        self.seed = seed

    def _request(self, messages: list[dict], tools: list[dict]) -> dict:
        extra = {"add_special_tokens": False}
        if self.temperature > 0:
            extra["seed"] = self.seed
        return {"prompt": render(self.tokenizer, messages, tools, add_generation_prompt=True),
                "max_tokens": self.max_new_tokens, "temperature": self.temperature, "stop": [END_OF_TURN], "extra": extra}

    def act(self, messages: list[dict], tools: list[dict]) -> dict:
        return _parsed(self.client.complete(**self._request(messages, tools)), messages)

    async def aact(self, messages: list[dict], tools: list[dict]) -> dict:
        """``act`` for the asyncio episode engine."""
        return _parsed(await self.client.acomplete(**self._request(messages, tools)), messages)


def _parsed(reply: dict, messages: list[dict]) -> dict:
    prior_calls = sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")
    return parse_assistant_output(reply["text"], first_index=prior_calls)
