"""The tool dependency graph of a domain: A -> B when what A returns can fill a required input of B.

A tool's outputs are the fields of the records it returns (its collection's fields, the id field
included) plus the properties of its ``returns`` schema. B's required inputs are named by the field they
stand for (``id`` of get_order stands for ``order_id``), so matching is by that canonical name and the
type. Shared generic names (name, status, ...) link tools of the same collection only. Records a tool
deletes, cancels or closes cannot feed a later write on the same collection, and none of them can feed a
read of the record that is gone. Tools without required inputs are the walk starts. ``edge_verifier``
(e.g. an LLM judge) may veto any candidate edge.

With a ``field_matcher`` (``fieldmatch.FieldMatcher``), a required input that none of A's outputs names
exactly may still be fed by an output whose name embeds close to it (``contactid`` <- ``contact_id``,
``application_id`` <- ``app_id``). Such an edge carries ``match: embedding``, the similarity, and
``sources`` (input parameter -> output field), which the task sampler uses to pass the value along.
"""

from __future__ import annotations

from typing import Callable

import networkx as nx

from agentscaler_dagster.contracts import ToolSpec
from agentscaler_dagster.envgen.fieldmatch import FieldMatcher
from agentscaler_dagster.envgen.naming import GENERIC_FIELDS, to_snake

EdgeVerifier = Callable[[ToolSpec, ToolSpec], bool]


def _base_type(schema: dict) -> str:
    t = (schema or {}).get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return t


def _compatible(a: str, b: str) -> bool:
    return a == b or {a, b} <= {"integer", "number"} or {a, b} == {"string", "integer"}


def tool_outputs(spec: ToolSpec, binding: dict, schema: dict) -> dict[str, str]:
    """Canonical field name -> type of everything a tool's result carries."""
    coll = schema["collections"][binding["collection"]]
    outputs = {field: _base_type(fs) for field, fs in coll["record"]["properties"].items()}
    returns = spec.returns if isinstance(spec.returns, dict) else {}
    if returns.get("type") == "array" and isinstance(returns.get("items"), dict):
        returns = returns["items"]
    for prop, ps in (returns.get("properties") or {}).items():
        if isinstance(ps, dict):
            outputs.setdefault(to_snake(prop), _base_type(ps))
    return outputs


def tool_inputs(spec: ToolSpec, binding: dict, schema: dict) -> dict[str, tuple[str, str, str]]:
    """Required parameter -> (canonical field, type, collection the field lives in)."""
    required = spec.parameters.get("required") or []
    props = spec.parameters.get("properties") or {}
    out = {}
    for param in required:
        role = binding["params"].get(param)
        if role is None or role["role"] in ("limit", "offset", "page", "sort"):
            continue
        ptype = _base_type(props.get(param) or {})
        if role["role"] in ("id", "id_in"):
            coll = schema["collections"][binding["collection"]]
            out[param] = (coll["id_field"], ptype, binding["collection"])
        elif role["role"] == "ref":
            target = schema["collections"][role["ref"]]
            out[param] = (target["id_field"], ptype, role["ref"])
            out[param + "\0field"] = (role["field"], ptype, binding["collection"])
        elif role["role"] == "query":
            out[param] = (to_snake(param), ptype, binding["collection"])
        else:
            out[param] = (role["field"], ptype, binding["collection"])
    return out


def _feeds(field: str, coll_of_field: str, a_collection: str, same: bool, schema: dict) -> bool:
    """Whether a field A returns may carry a value into B's input on ``coll_of_field``."""
    is_id = field.endswith("_id") or field == schema["collections"][coll_of_field]["id_field"]
    if not is_id and field in GENERIC_FIELDS and not same:
        return False
    a_coll = schema["collections"][a_collection]
    if is_id and coll_of_field != a_collection and field not in a_coll["references"] and field != a_coll["id_field"]:
        return False
    return True


def build_dependency_graph(tools: list[ToolSpec], schema: dict, *, edge_verifier: EdgeVerifier | None = None,
                           field_matcher: FieldMatcher | None = None) -> nx.DiGraph:
    bindings = schema["bindings"]
    graph = nx.DiGraph()
    specs = sorted(tools, key=lambda t: t.name)
    inputs = {s.name: tool_inputs(s, bindings[s.name], schema) for s in specs}
    outputs = {s.name: tool_outputs(s, bindings[s.name], schema) for s in specs}
    if field_matcher is not None:
        field_matcher.prepare(sorted({f for ins in inputs.values() for f, _, _ in ins.values()}
                                     | {f for outs in outputs.values() for f in outs}))
    for spec in specs:
        binding = bindings[spec.name]
        required = sorted({p.split("\0")[0] for p in inputs[spec.name]})
        graph.add_node(spec.name, operation=spec.operation, kind=binding["kind"], collection=binding["collection"],
                       required=required, start=not required)
    for a in specs:
        ba = bindings[a.name]
        ends_record = ba["kind"] == "delete" or (ba["kind"] == "transition" and ba.get("terminal"))
        for b in specs:
            if a.name == b.name:
                continue
            bb = bindings[b.name]
            same = ba["collection"] == bb["collection"]
            if same and ends_record and (bb["operation"] == "write" or ba["kind"] == "delete"):
                continue
            fields, sources, scores = [], {}, []
            for param, (field, ptype, coll_of_field) in sorted(inputs[b.name].items()):
                have = outputs[a.name].get(field)
                if have is not None and _compatible(have, ptype):
                    if _feeds(field, coll_of_field, ba["collection"], same, schema):
                        fields.append(field)
                    continue
                if field_matcher is None or "\0" in param or (field in GENERIC_FIELDS and not same):
                    continue
                best = None
                for offered, otype in sorted(outputs[a.name].items()):
                    if not _compatible(otype, ptype):
                        continue
                    # the offered field stands in for the wanted one: judge it where that one lives
                    if not _feeds(offered, ba["collection"], ba["collection"], same, schema):
                        continue
                    found = field_matcher.match(field, offered)
                    if found is not None and (best is None or found.score > best[0]):
                        best = (found.score, offered)
                if best is not None:
                    sources[param] = best[1]
                    scores.append(best[0])
            fields = sorted(set(fields))
            if not fields and not sources:
                continue
            if edge_verifier is not None and not edge_verifier(a, b):
                continue
            # reads before writes on the same record: a read that feeds a write is the likelier next step
            weight = 2.0 if same and a.operation == "read" and b.operation == "write" else 1.0
            data = {"field": (fields or sorted(sources.values()))[0], "fields": fields or sorted(set(sources.values())),
                    "weight": weight, "match": "name" if fields else "embedding"}
            if sources:
                data["sources"] = dict(sorted(sources.items()))
                data["similarity"] = min(scores)
            graph.add_edge(a.name, b.name, **data)
    return graph


def graph_to_json(graph: nx.DiGraph) -> dict:
    nodes = [{"name": n, **{k: graph.nodes[n][k] for k in sorted(graph.nodes[n])}} for n in sorted(graph.nodes)]
    edges = [{"source": a, "target": b, **{k: graph.edges[a, b][k] for k in sorted(graph.edges[a, b])}}
             for a, b in sorted(graph.edges)]
    starts = [n for n in sorted(graph.nodes) if graph.nodes[n].get("start")]
    return {"nodes": nodes, "edges": edges, "starts": starts}


def draw_graph(graph: nx.DiGraph, path, title: str) -> None:
    """PNG of the graph (Agg backend, fixed layout and no timestamp, so the bytes repeat)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, graph.number_of_nodes())
    size = min(14.0, 4.0 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size), dpi=72)
    pos = nx.circular_layout(sorted(graph.nodes)) if n > 1 else {m: (0.0, 0.0) for m in graph.nodes}
    colors = ["#4c9be8" if graph.nodes[m].get("operation") == "read" else "#e8814c" for m in sorted(graph.nodes)]
    nx.draw_networkx_nodes(graph, pos, nodelist=sorted(graph.nodes), node_color=colors, node_size=500, ax=ax)
    by_name = [e for e in sorted(graph.edges) if graph.edges[e].get("match", "name") == "name"]
    by_similarity = [e for e in sorted(graph.edges) if graph.edges[e].get("match") == "embedding"]
    nx.draw_networkx_edges(graph, pos, edgelist=by_name, arrows=True, arrowsize=12,
                           edge_color="#777777", ax=ax, node_size=500)
    if by_similarity:
        nx.draw_networkx_edges(graph, pos, edgelist=by_similarity, arrows=True, arrowsize=12, style="dashed",
                               edge_color="#2a9d5c", ax=ax, node_size=500)
    nx.draw_networkx_labels(graph, pos, font_size=8, ax=ax)
    similar = f", {len(by_similarity)} by name similarity (dashed green)" if by_similarity else ""
    ax.set_title(f"{title}: {graph.number_of_nodes()} tools, {graph.number_of_edges()} edges{similar} "
                 "(blue read, orange write)", fontsize=9)
    ax.margins(0.18)  # room for the labels of the outermost nodes
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
