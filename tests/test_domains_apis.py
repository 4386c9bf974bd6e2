"""Domains follow API lines where the tool graph alone does not: fragments of one API rejoin it, and two APIs that
implement one interface (twin tool names) never share an environment.

Real parts only: the real ingest of BFCL's multi-turn function docs (../shared/corpora), the real MiniLM
embedder, igraph + leidenalg; the unit tests use hand-made memberships and edges.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from agentscaler_dagster.domains import DomainConfig, discover_domains
from agentscaler_dagster.domains.community import MISC, join_api_fragments, separate_twins

BFCL = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "bfcl-multi-turn-func-doc"


def test_a_single_api_fragment_joins_its_apis_domain_within_the_cap():
    apis = ["veh"] * 6 + ["veh"] * 3 + ["math"] * 4
    membership = np.array([0] * 6 + [1] * 3 + [2] * 4)
    out, log = join_api_fragments(membership, apis, max_tools=10)
    assert len(set(out[:9].tolist())) == 1 and out[9] != out[0]
    assert log == [{"api": "veh", "tools": 3, "into_size": 6}]
    # over the cap the fragment stays its own domain
    out, log = join_api_fragments(membership, apis, max_tools=8)
    assert out[6] != out[0] and log == []
    # a mixed domain is not a fragment; misc is never merged
    mixed = np.array([0] * 6 + [1, 1, MISC] + [1] * 4)
    out, log = join_api_fragments(mixed, apis, max_tools=20)
    assert log == [] and out[8] == MISC


def _twins_case():
    # kv and vec share 3 names (one interface, two implementations); "web" shares only "get" with kv
    tools = ([("kv", n) for n in ("add", "remove", "retrieve", "get", "core_append")]
             + [("vec", n) for n in ("add", "remove", "retrieve", "search")]
             + [("web", n) for n in ("get", "fetch", "query")])
    apis, names = [a for a, _ in tools], [n for _, n in tools]
    # web is linked more to vec than to kv
    src = np.array([0, 1, 5, 6, 9, 10, 9, 0])
    dst = np.array([1, 2, 6, 7, 5, 6, 11, 9])
    w = np.array([0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.9, 0.1], dtype=np.float32)
    return np.zeros(len(tools), dtype=np.int64), apis, names, src, dst, w


def test_twin_apis_are_cut_apart_and_a_shared_word_is_not_a_twin():
    membership, apis, names, src, dst, w = _twins_case()
    out, log = separate_twins(membership, apis, names, src, dst, w, min_shared=3, min_size=3)
    kv, vec, web = out[0], out[5], out[9]
    assert kv != vec and web == vec  # web goes with the part it shares most weight with
    assert log[0]["twins"] == [["kv", "vec"]] and log[0]["parts"] == [["kv"], ["vec", "web"]]
    # one shared name ("get") makes no twins, and 0 turns the rule off
    assert separate_twins(membership, apis, names, src, dst, w, min_shared=5, min_size=3)[1] == []
    assert (separate_twins(membership, apis, names, src, dst, w, min_shared=0, min_size=3)[0] == 0).all()


def test_a_twin_too_small_to_stand_alone_is_kept_and_reported():
    membership, apis, names, src, dst, w = _twins_case()
    out, log = separate_twins(membership, apis, names, src, dst, w, min_shared=3, min_size=8)
    assert len(set(out.tolist())) == 1 and log[0]["kept_together"] == [["vec", "web"]]


@pytest.mark.skipif(not BFCL.exists(), reason="../shared/corpora/bfcl-multi-turn-func-doc not present")
def test_bfcl_classes_become_domains_without_twin_apis_together(tmp_path):
    from agentscaler_dagster.corpus import ingest, read_corpus

    ingest([BFCL], tmp_path / "corpus")
    tools = read_corpus(tmp_path / "corpus")
    cfg = DomainConfig(cache_dir=tmp_path / "emb", write_graphml=False, plot_domain_graph=False)
    result = discover_domains(tools, tmp_path / "domains", cfg)
    label = {t.tool_id: Path(t.source.file).stem for t in tools}
    per_class: dict[str, set[str]] = defaultdict(set)
    for d in result.domains:
        for tid in d.tool_ids:
            per_class[label[tid]].add(d.domain_id)
    # key-value and vector archival memory share tool names: two environments, not one
    assert not per_class["memory_kv"] & per_class["memory_vector"]
    assert result.report["twin_apis"] and result.report["twin_apis"][0]["twins"]
    # the 22-tool vehicle API is one domain (its unit conversions rejoined it)
    assert len(per_class["vehicle_control"]) == 1 and result.report["api_fragments_joined"]
    # every class with more than the minimum domain size is exactly one domain of its own
    owners = defaultdict(set)
    for cls, doms in per_class.items():
        for d in doms:
            owners[d].add(cls)
    big = [c for c in per_class if sum(1 for t in tools if label[t.tool_id] == c) >= 3]
    assert all(len(per_class[c]) == 1 and owners[next(iter(per_class[c]))] == {c} for c in big if c != "web_search")
