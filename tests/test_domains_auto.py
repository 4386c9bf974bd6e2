"""Automatic threshold / resolution, the new text representations and readable unique labels.

Real parts only: numpy vectors drawn with a fixed seed, the hashing embedder, igraph + leidenalg, the real
discover_domains writing its artifacts to tmp_path. Tools are hand-written ToolSpecs.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from agentscaler_dagster.contracts import HttpBinding, ToolSource, ToolSpec
from agentscaler_dagster.domains import DomainConfig, discover_domains, tool_text
from agentscaler_dagster.domains.auto import HIGH, LOW, RESOLUTION_GRID, auto_resolution, auto_threshold, kth_similarities, typical_size
from agentscaler_dagster.domains.labels import make_labels, short_title


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_kth_similarity_matches_a_dense_sort():
    emb = _unit(np.random.default_rng(0).normal(size=(60, 8)))
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    expected = -np.sort(-sims, axis=1)[:, 4]
    assert np.allclose(kth_similarities(emb, k=5), expected, atol=1e-6)


def test_auto_threshold_follows_the_corpus_distribution():
    rng = np.random.default_rng(1)
    spread = _unit(rng.normal(size=(200, 64)))  # unrelated texts: near-orthogonal, k-th similarity ~0.2
    centres = _unit(rng.normal(size=(10, 64)))
    tight = _unit(np.repeat(centres, 20, axis=0) + 0.02 * rng.normal(size=(200, 64)))  # 10 tight families
    t_spread, info = auto_threshold(spread)
    t_tight, _ = auto_threshold(tight)
    assert t_spread == LOW  # clipped from below
    assert 0.8 < t_tight <= HIGH
    assert info["value"] == t_spread and info["sampled_texts"] == 200 and "quantile" in info["rule"]


def test_typical_size_is_the_median_tools_community():
    # 1 community of 10 tools and 10 singletons: the median tool (of 20) sits in the big one
    assert typical_size(np.array([0] * 10 + list(range(1, 11)))) == 10
    assert typical_size(np.array([0] * 3 + list(range(1, 11)))) == 1


def _tool(name, title, path, params, desc):
    props = {p: {"type": "string"} for p in params}
    return ToolSpec(tool_id=hashlib.sha256(f"{title}/{name}".encode()).hexdigest()[:16], name=name, description=desc,
                    parameters={"type": "object", "properties": props}, operation="read",
                    source=ToolSource(format="openapi3", file=f"{title}.json", api_title=title),
                    http=HttpBinding(method="GET", path=path))


def _families() -> list[ToolSpec]:
    tools = []
    for i in range(8):
        tools.append(_tool(f"listMessages{i}", "Gmail API", f"/users/{{userId}}/messages/{i}", ["userId", "q"],
                           f"Lists the messages in the user's mailbox, page {i}."))
        tools.append(_tool(f"getForecast{i}", "Open Weather", f"/forecast/{i}", ["lat", "lon"],
                           f"Weather forecast for a location, variant {i}."))
    return tools


def test_default_config_chooses_and_records_its_settings(tmp_path):
    tools = _families()
    cfg = DomainConfig(embedder="hashing", min_domain_size=2, max_domain_share=1.0, plot_domain_graph=False)
    assert cfg.threshold is None and cfg.resolution is None
    a = discover_domains(tools, tmp_path / "a", cfg)
    rep = a.report
    assert rep["threshold"] == rep["auto"]["threshold"]["value"] and LOW <= rep["threshold"] <= HIGH
    assert rep["resolution"] == rep["auto"]["resolution"]["value"]
    tried = rep["auto"]["resolution"]["tried"]
    # the top of the grid first, then from the bottom up to the first value under the target
    assert tried[0]["resolution"] == RESOLUTION_GRID[-1] and tried[1]["resolution"] == RESOLUTION_GRID[0]
    assert len(a.domains) == 2
    on_disk = json.loads((tmp_path / "a" / "domains_report.json").read_text())
    assert on_disk["auto"] == json.loads(json.dumps(rep["auto"]))
    b = discover_domains(list(reversed(tools)), tmp_path / "b", cfg)
    assert a.paths["domains"].read_bytes() == b.paths["domains"].read_bytes()
    # a value given in the config is used as is, and nothing is recorded as chosen
    fixed = discover_domains(tools, tmp_path / "c", cfg.model_copy(update={"threshold": 0.3, "resolution": 1.0}))
    assert fixed.report["auto"] == {} and fixed.report["threshold"] == 0.3 and fixed.report["resolution"] == 1.0


def test_api_name_description_text():
    t = _families()[0]
    assert tool_text(t, "api+name+description") == "Gmail API. list messages0: Lists the messages in the user's mailbox, page 0."
    assert tool_text(t, "api+name+description+parameters").endswith(". Parameters: q, user id")
    with pytest.raises(ValueError, match="unknown fields 'nope'"):
        tool_text(t, "nope")


def test_labels_name_the_dominant_api_and_stay_unique():
    tools = _families()
    gmail = [t for t in tools if t.source.api_title == "Gmail API"]
    weather = [t for t in tools if t.source.api_title == "Open Weather"]
    labels = make_labels([gmail[:4], gmail[4:], weather])
    assert labels[0].startswith("gmail-") and labels[2].startswith("open-weather")
    assert "messages" in labels[0] and "forecast" in labels[2]
    assert len(set(labels)) == 3, labels  # the second Gmail half gets a distinct label
    assert short_title("Amazon EC2 Container Service API v2") == ["amazon", "ec2", "container"]


def test_split_min_tools_keeps_a_small_corpus_api_whole(tmp_path):
    # 16 tools per API is 50 % of this corpus: over max_domain_share 0.3, but under split_min_tools (40),
    # so each API stays one domain; with split_min_tools=1 the share alone decides and they are split
    tools = _families()
    cfg = DomainConfig(embedder="hashing", threshold=0.3, resolution=1.0, min_domain_size=1, max_domain_share=0.3,
                       plot_domain_graph=False)
    whole = discover_domains(tools, tmp_path / "a", cfg)
    assert sorted(len(d.tool_ids) for d in whole.domains) == [8, 8] and whole.report["giant_splits"] == []
    split = discover_domains(tools, tmp_path / "b", cfg.model_copy(update={"split_min_tools": 1}))
    assert max(len(d.tool_ids) for d in split.domains) <= 4 and split.report["giant_splits"]


def test_auto_resolution_tries_the_top_first_and_returns_the_chosen_membership():
    def fake_detect(sizes):
        calls = []

        def detect(g, *, resolution, seed):
            calls.append(resolution)
            size = sizes[resolution]
            return np.repeat(np.arange(100 // size), size)  # 100 tools in communities of `size`

        return detect, calls

    # a corpus too big for the grid: the top stays above the target, so it is chosen after one run
    detect, calls = fake_detect({r: 50 for r in RESOLUTION_GRID})
    chosen, info, membership = auto_resolution(None, detect, seed=0, target=40)
    assert chosen == RESOLUTION_GRID[-1] and calls == [RESOLUTION_GRID[-1]] and typical_size(membership) == 50
    # otherwise the smallest grid value under the target, found from the bottom, with that value's membership
    sizes = {r: (50 if r < 1.0 else 25) for r in RESOLUTION_GRID}
    detect, calls = fake_detect(sizes)
    chosen, info, membership = auto_resolution(None, detect, seed=0, target=40)
    assert chosen == 1.0 and calls == [RESOLUTION_GRID[-1], 0.25, 0.35, 0.5, 0.7, 1.0]
    assert typical_size(membership) == 25 and [t["resolution"] for t in info["tried"]] == calls
