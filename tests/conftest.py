"""Shared fixtures. Tests use real parts: a real Dagster instance, real files, real models where small."""

from __future__ import annotations

import os
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
