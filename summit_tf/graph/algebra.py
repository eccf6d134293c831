"""Set algebra on two classes' attribution graphs: what they share and what sets them apart.

Nodes are ``layer:channel``; edges are (upper node, lower node), skip edges of residual networks
included (their records say ``"skip": true``). Every record carries both classes' weights from their
*full* graphs (PageRank and A count for nodes, influence count for edges), so a channel kept for one class
shows how close it came for the other (the paper's bear example).
"""

from __future__ import annotations

import numpy as np

from summit_tf import imagenet
from summit_tf.graph.attribution import AttributionGraph

SETS = ("intersection", "a_minus_b", "b_minus_a", "union")


def _edges(ag: AttributionGraph) -> tuple[np.ndarray, np.ndarray]:
    """(key, weight) of every edge of the full graph (layer pairs', then skip edges): one int64 key per
    edge, ``hi * V + lo`` (the int32 vertex ids would overflow)."""
    hi, lo, weight = ag.full.all_edges()
    return hi.astype(np.int64) * ag.structure.num_vertices + lo, weight


def _edge_index(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    return keys[order], order


def _lookup(index: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """Edge positions of ``keys`` in a full graph (see :func:`_edge_index`), -1 where absent."""
    sorted_keys, order = index
    if sorted_keys.size == 0:
        return np.full(keys.size, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return np.where(sorted_keys[pos] == keys, order[pos], -1)


def _membership(in_a: np.ndarray, in_b: np.ndarray) -> dict[str, np.ndarray]:
    return {"intersection": in_a & in_b, "a_minus_b": in_a & ~in_b, "b_minus_a": in_b & ~in_a,
            "union": in_a | in_b}


def compare(a: AttributionGraph, b: AttributionGraph) -> dict:
    """JSON-able comparison of two classes' kept nodes and edges (same run, same structure)."""
    sa, sb = a.structure, b.structure
    if sa is not sb and (sa.layers != sb.layers or not np.array_equal(sa.channel_of, sb.channel_of)):
        raise ValueError("the two attribution graphs come from runs with different layers or channels")
    st = a.structure
    nodes = np.flatnonzero(a.selection.kept | b.selection.kept)
    node_sets = _membership(a.selection.kept[nodes], b.selection.kept[nodes])

    (keys_a, weight_a), (keys_b, weight_b) = _edges(a), _edges(b)
    n = st.num_vertices
    ka, kb = a.kept_all_edges, b.kept_all_edges
    keys = np.union1d(keys_a[ka], keys_b[kb])
    pa, pb = _lookup(_edge_index(keys_a), keys), _lookup(_edge_index(keys_b), keys)
    kept_a = np.where(pa >= 0, ka[np.maximum(pa, 0)], False)
    kept_b = np.where(pb >= 0, kb[np.maximum(pb, 0)], False)
    edge_sets = _membership(kept_a, kept_b)

    def name(v: int) -> str:
        return st.name(int(v))

    def node_side(ag: AttributionGraph, v: int) -> dict:
        return {"count": int(ag.count[v]), "pagerank": float(ag.pagerank[v]),
                "kept": bool(ag.selection.kept[v])}

    def edge_side(weight: np.ndarray, kept: np.ndarray, pos: int) -> dict:
        if pos < 0:
            return {"inf": 0, "kept": False}
        return {"inf": int(weight[pos]), "kept": bool(kept[pos])}

    node_records = []
    for idx, v in enumerate(nodes):
        node_records.append({
            "layer": st.layers[st.layer_of[v]], "channel": int(st.channel_of[v]),
            "in": "both" if node_sets["intersection"][idx] else ("a" if node_sets["a_minus_b"][idx] else "b"),
            "a": node_side(a, v), "b": node_side(b, v),
        })
    edge_records = []
    for idx, key in enumerate(keys.tolist()):
        hi, lo = divmod(key, n)
        edge_records.append({
            "layer": st.layers[st.layer_of[hi]], "channel": int(st.channel_of[hi]),
            "prev_layer": st.layers[st.layer_of[lo]], "prev_channel": int(st.channel_of[lo]),
            "in": "both" if edge_sets["intersection"][idx] else ("a" if edge_sets["a_minus_b"][idx] else "b"),
            "a": edge_side(weight_a, ka, int(pa[idx])), "b": edge_side(weight_b, kb, int(pb[idx])),
            **({"skip": bool(st.layer_of[hi] - st.layer_of[lo] > 1)} if st.skips else {}),
        })
    sets = {}
    for s in SETS:
        sets[s] = {
            "nodes": [name(v) for v in nodes[node_sets[s]]],
            "edges": [[name(k // n), name(k % n)] for k in keys[edge_sets[s]].tolist()],
        }
    union_nodes, union_edges = len(nodes), len(keys)
    return {
        "a": _class_info(a), "b": _class_info(b),
        "graph_config": a.config.to_dict(),
        "summary": {
            **{s: {"nodes": len(sets[s]["nodes"]), "edges": len(sets[s]["edges"])} for s in SETS},
            "jaccard_nodes": len(sets["intersection"]["nodes"]) / union_nodes if union_nodes else 0.0,
            "jaccard_edges": len(sets["intersection"]["edges"]) / union_edges if union_edges else 0.0,
        },
        "sets": sets,
        "nodes": node_records,
        "edges": edge_records,
    }


def _class_info(ag: AttributionGraph) -> dict:
    return {"target_class": ag.class_id, "synset": imagenet.synsets()[ag.class_id], "name": ag.name,
            "numOfInstances": ag.num_images}
