"""Attribution graphs: full-graph construction, PageRank against NetworkX, the selection rules, worked out."""

import math

import networkx as nx
import numpy as np
import pytest

from summit_tf import store
from summit_tf.graph import build, kernels
from summit_tf.graph.attribution import GraphConfig, attribution_graph
from synthetic import aggregates as synthetic


def _save_load(tmp_path, agg):
    store.save(tmp_path / "run.h5", agg)
    return store.load(tmp_path / "run.h5")


def _chain_aggregates():
    """l0 -> l1 -> l2, two channels each. l1:1 hangs on l0:0 with weight 100; l1:0 on l0:0 with weight 1.
    l2:0 (the class's strongest l2 channel) reaches down only through l1:0, which PageRank ranks low.
    """
    links = {
        "l1/conv": ("l0", "l1", 0, [[[1, 0], [100, 0]]]),
        "l2/conv": ("l1", "l2", 0, [[[1, 0], [0, 1]]]),
    }
    A = {"l0": [[9, 1]], "l1": [[1, 9]], "l2": [[9, 0]]}
    return synthetic.from_counts({"l0": 2, "l1": 2, "l2": 2}, A, links, classes=[5], count=[120])


def _nx_graph(ag, directed=False):
    """The class's full graph built from its edges, as SUMMIT built its NetworkX graph: a channel without
    any edge is no node."""
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_weighted_edges_from(zip(ag.full.hi.tolist(), ag.full.lo.tolist(), ag.full.weight.tolist(),
                                  strict=True))
    return g


def _reference_reset(ag, g):
    """SUMMIT's personalization: A / (the layer's max of A over non-excluded channels), nodes of g only."""
    st = ag.structure
    top = {index: max(ag.count[st.layer_of == index], default=0) for index in range(len(st.layers))}
    reset = {v: ag.count[v] / top[st.layer_of[v]] if top[st.layer_of[v]] else 0.0 for v in g.nodes}
    return reset if any(reset.values()) else dict.fromkeys(g.nodes, 1.0)


def _nx_pagerank(ag, directed=False):
    """NetworkX's PageRank on the graph SUMMIT built, 0 for channels that are not nodes."""
    g = _nx_graph(ag, directed)
    pr = nx.pagerank(g, alpha=0.85, personalization=_reference_reset(ag, g), weight="weight", tol=1e-13,
                     max_iter=10_000)
    return np.array([pr.get(v, 0.0) for v in range(ag.structure.num_vertices)])


def _share(pr, ids, v):
    return pr[v] / pr[ids].sum()


def test_relax_case_worked_out(tmp_path):
    node_mass, step = 0.5, 0.05
    with _save_load(tmp_path, _chain_aggregates()) as agg:
        ag = attribution_graph(agg, 5, GraphConfig(node_mass=node_mass, relax_step=step))
    st = ag.structure
    v = {(layer, c): int(st.vertex[layer][c]) for layer in st.layers for c in range(2)}
    pr = _nx_pagerank(ag)
    l0, l1, l2 = ([v[(layer, 0)], v[(layer, 1)]] for layer in ("l0", "l1", "l2"))
    # Preconditions of the worked answer: each layer's favourite holds at least half its layer's mass.
    s_l0 = _share(pr, l0, v[("l0", 0)])
    s_l1 = _share(pr, l1, v[("l1", 1)])
    s_l2 = _share(pr, l2, v[("l2", 0)])
    assert min(s_l0, s_l1, s_l2) >= node_mass
    # Round 0 keeps l0:0, l1:1, l2:0; l2:0's only edge goes to l1:0 (not kept), so l1 and l2 grow by a step
    # per round until l1's share passes l1:1's, which brings in l1:0 (grounded through l0:0).
    rounds = math.floor((s_l1 - node_mass) / step) + 1
    final = node_mass + rounds * step
    expected_nodes = {("l0", 0), ("l1", 0), ("l1", 1), ("l2", 0)} | ({("l2", 1)} if s_l2 < final else set())
    assert set(ag.kept_nodes()) == expected_nodes
    expected_edges = {("l1", 0, "l0", 0, 1), ("l1", 1, "l0", 0, 100), ("l2", 0, "l1", 0, 1)}
    if ("l2", 1) in expected_nodes:
        expected_edges.add(("l2", 1, "l1", 1, 1))
    assert set(ag.kept_edge_list()) == expected_edges
    assert ag.selection.relax_rounds == rounds
    assert ag.selection.masses == pytest.approx({"l0": node_mass, "l1": final, "l2": final})
    assert ag.selection.disconnected == []
    np.testing.assert_allclose(ag.pagerank, pr, atol=1e-9)


def test_no_relax_needed_keeps_top_node_per_layer():
    ag = attribution_graph(_chain_aggregates(), 5, GraphConfig(node_mass=0.5, relax_step=0.0))
    assert set(ag.kept_nodes()) == {("l0", 0), ("l1", 1), ("l2", 0)}
    assert set(ag.kept_edge_list()) == {("l1", 1, "l0", 0, 100)}  # l2:0 -> l1:0 lacks its lower end
    assert ag.selection.disconnected == ["l2"]


def _relax_rules_disagree():
    """l0 (x, y) -> l1 (a, b, d) -> l2 (c, e). a hangs on x; b and d only on y, which PageRank ranks low;
    c, the class's strongest l2 channel, hangs on b alone."""
    links = {
        # I[class][out][in]
        "l1/conv": ("l0", "l1", 0, [[[10, 0], [0, 1], [0, 1]]]),
        "l2/conv": ("l1", "l2", 0, [[[0, 10, 0], [0, 0, 1]]]),
    }
    A = {"l0": [[9, 1]], "l1": [[5, 5, 1]], "l2": [[9, 1]]}
    return synthetic.from_counts({"l0": 2, "l1": 3, "l2": 2}, A, links, classes=[3], count=[50])


def test_relax_only_when_a_layer_has_no_edge_between_kept_nodes():
    """SUMMIT relaxed only when a layer had no edge between kept nodes down to the layer below; the
    "lower end must itself reach further down" rule only filters the written ``prev_channels``."""
    node_mass = 0.5
    ag = attribution_graph(_relax_rules_disagree(), 3, GraphConfig(node_mass=node_mass, relax_step=0.05))
    st = ag.structure
    v = {(layer, c): int(st.vertex[layer][c]) for layer in st.layers for c in range(st.channels[layer])}
    pr = _nx_pagerank(ag)
    # Preconditions, from NetworkX: x and c each hold at least half their layer; in l1, a and b each hold
    # less than half and together at least half, and both outrank d.
    assert _share(pr, [v["l0", 0], v["l0", 1]], v["l0", 0]) >= node_mass
    assert _share(pr, [v["l2", 0], v["l2", 1]], v["l2", 0]) >= node_mass
    l1 = [v["l1", c] for c in range(3)]
    a, b, d = (_share(pr, l1, u) for u in l1)
    assert max(a, b) < node_mass <= a + b and min(a, b) > d
    # By hand: kept x | a, b | c. l1 is valid (a-x), l2 is valid (c-b, both kept): no relaxing. Written
    # edges: a -> x (x is in the first layer); c -> b is not written, since b has no kept edge down.
    assert set(ag.kept_nodes()) == {("l0", 0), ("l1", 0), ("l1", 1), ("l2", 0)}
    assert ag.selection.relax_rounds == 0 and ag.selection.disconnected == []
    assert ag.selection.masses == {"l0": node_mass, "l1": node_mass, "l2": node_mass}
    assert set(ag.kept_edge_list()) == {("l1", 0, "l0", 0, 10)}
    doc = ag.to_json()
    assert [n["prev_channels"] for n in doc["l2"]] == [[]]
    assert {n["channel"]: n["prev_channels"] for n in doc["l1"]} == {0: [{"prev_channel": 0, "inf": 10}],
                                                                     1: []}


def test_channels_without_edges_are_not_nodes():
    """SUMMIT's graph was built from edges: l0:1 has none, so it takes no PageRank and is never kept, even
    when a layer keeps all of its mass."""
    ag = attribution_graph(_chain_aggregates(), 5, GraphConfig(node_mass=1.0, relax_step=0.0))
    isolated = int(ag.structure.vertex["l0"][1])
    assert ag.count[isolated] == 1 and ag.pagerank[isolated] == 0.0
    assert ("l0", 1) not in ag.kept_nodes() and len(ag.kept_nodes()) == 5
    np.testing.assert_allclose(ag.pagerank, _nx_pagerank(ag), atol=1e-9)


def _inception_block():
    """p (3 channels) -> m: channels 0-1 from a 1x1 link, 2-3 from a 3x3 link through a 2-channel
    bottleneck."""
    links = {
        "m/1x1": ("p", "m", 0, [[[1, 0, 0], [2, 3, 0]]]),
        "m/3x3_bottleneck": ("p", "m/3x3_bottleneck", 0, [[[5, 1, 0], [0, 4, 2]]]),
        "m/3x3": ("m/3x3_bottleneck", "m", 2, [[[3, 0], [1, 2]]]),
    }
    A = {"p": [[4, 2, 1]], "m": [[1, 2, 3, 4]]}
    return synthetic.from_counts({"p": 3, "m": 4}, A, links)


def test_two_hop_rule(tmp_path):
    with _save_load(tmp_path, _inception_block()) as agg:
        st = build.structure(agg)
        full = build.full_graph(agg, 0, st)
        assert st.ignored_links == []
    edges = {(int(st.channel_of[h]), int(st.channel_of[lo]), int(w))
             for h, lo, w in zip(full.hi, full.lo, full.weight, strict=True)}
    # Direct rows have 1 and 2 inputs: on average 1 (floored), so each 3x3 channel keeps its strongest
    # bottleneck path only. m:2: max(min(3,[5,1,0]), min(0,..)) = [3,1,0] -> p:0 (3).
    # m:3: max(min(1,[5,1,0]), min(2,[0,4,2])) = [1,2,2] -> tie, lower channel p:1 (2).
    assert edges == {(0, 0, 1), (1, 0, 2), (1, 1, 3), (2, 0, 3), (3, 1, 2)}


def test_exclusions_remove_nodes_and_their_edges():
    agg = _inception_block()
    agg.config["exclude_channels"] = "p:0;m:3"
    st = build.structure(agg)
    full = build.full_graph(agg, 0, st)
    assert st.num_vertices == 5 and st.vertex["p"][0] == -1 and st.vertex["m"][3] == -1
    edges = {(int(st.channel_of[h]), int(st.channel_of[lo]), int(w))
             for h, lo, w in zip(full.hi, full.lo, full.weight, strict=True)}
    # Without p:0 the direct rows have 0 and 1 inputs (k = 1); m:2's paths to p:1 (1) remain.
    assert edges == {(1, 1, 3), (2, 1, 1)}
    assert build.parse_excluded({"p": [0], "m": [3]}, st.channels).keys() == {"p", "m"}
    # spaces without vertices (an inner space, a layer the run did not count) were excluded while counting
    assert build.parse_excluded("q:1;m/3x3_bottleneck:0;m:3", st.channels).keys() == {"m"}
    with pytest.raises(ValueError, match="expected LAYER"):
        build.parse_excluded("p", st.channels)
    with pytest.raises(ValueError, match="out of range"):
        build.parse_excluded({"p": [3]}, st.channels)


def _maxmin_reference(branch, inner):
    """``max_b min(branch[j, b], inner[b, i])`` in float64 by broadcasting."""
    b, i = np.asarray(branch, np.float64), np.asarray(inner, np.float64)
    return np.minimum(b[:, :, None], i[None, :, :]).max(axis=1)


def _top_k_reference(w, k):
    """Each row's ``k`` largest positive entries, ties to the lower column (a sort per row)."""
    out = np.zeros_like(w)
    for j, row in enumerate(w):
        order = np.lexsort((np.arange(row.size), -row))[: k if k > 0 else row.size]
        keep = order[row[order] > 0]
        out[j, keep] = row[keep]
    return out


def _vertex_ids(rng, size, drop):
    ids = np.arange(size) + 100  # vertex ids are offsets into the run's numbering
    ids[rng.random(size) < drop] = -1
    return ids


def _as_dense(hi, lo, w, vout, vin):
    dense = np.zeros((vout.size, vin.size))
    rows = {int(v): j for j, v in enumerate(vout) if v >= 0}
    cols = {int(v): i for i, v in enumerate(vin) if v >= 0}
    for h, lo_, x in zip(hi.tolist(), lo.tolist(), w.tolist(), strict=True):
        dense[rows[h], cols[lo_]] = x
    return dense


@pytest.mark.parametrize("top", [3, 9, 1000, 70_000])  # heavy ties ... int16 ... int32 counts
@pytest.mark.parametrize("k", [0, 1, 4, 23, 40])
def test_two_hop_edges_against_reference(top, k):
    rng = np.random.default_rng(top + k)
    branch = rng.integers(1, top + 1, (13, 9)) * (rng.random((13, 9)) < 0.5)
    branch[4] = 0
    density = np.linspace(0, 1, 23)[None, :]  # input i has about i/22 of the inner channels
    inner = rng.integers(1, top + 1, (9, 23)) * (rng.random((9, 23)) < density)
    inner[2] = 0
    vin, vout = _vertex_ids(rng, 23, 0.15), _vertex_ids(rng, 13, 0.15)
    dtype = np.int16 if top < 2**15 else np.int32
    hi, lo, w = kernels.two_hop_edges(branch.astype(dtype), inner.astype(dtype), vin, vout, k)
    want = _maxmin_reference(branch, inner)
    want[:, vin < 0] = 0
    want = _top_k_reference(want, k)
    want[vout < 0] = 0
    assert want.any() and hi.dtype == lo.dtype == w.dtype == np.int32
    np.testing.assert_array_equal(_as_dense(hi, lo, w, vout, vin), want)
    assert np.all(np.diff(hi.astype(np.int64) * 1000 + lo) > 0)  # row-major, no duplicates


def test_direct_edges_against_nonzero():
    rng = np.random.default_rng(5)
    counts = (rng.integers(0, 40, (17, 31)) * (rng.random((17, 31)) < 0.3)).astype(np.int32)
    vin, vout = _vertex_ids(rng, 31, 0.2), _vertex_ids(rng, 17, 0.2)
    hi, lo, w = kernels.direct_edges(counts, vin, vout)
    want = counts * (vout >= 0)[:, None] * (vin >= 0)[None, :]
    j, i = np.nonzero(want)
    np.testing.assert_array_equal(np.stack([hi, lo, w]), np.stack([vout[j], vin[i], want[j, i]]))


def _dense_full_graph(agg, slot, st):
    """The full-graph rules on dense float64 matrices: hops max-combined, k from the direct rows."""
    edges = set()
    for index in range(1, len(st.layers)):
        layer, prev = st.layers[index], st.layers[index - 1]
        vin, vout = st.vertex[prev], st.vertex[layer]
        weights = np.zeros((vout.size, vin.size))
        direct = np.zeros(vout.size, bool)
        for hop in (h for h in st.hops[layer] if not h.inner):
            block = weights[hop.offset:hop.offset + hop.cout]
            np.maximum(block, agg.I[hop.link][slot], out=block)
            direct[hop.offset:hop.offset + hop.cout] = True
        weights[:, vin < 0] = 0
        live = direct & (vout >= 0)
        k = max(1, int(np.count_nonzero(weights[live]) // live.sum())) if live.any() else 0
        for hop in (h for h in st.hops[layer] if h.inner):
            inner = np.max([agg.I[name][slot] for name in hop.inner], axis=0)
            w = _maxmin_reference(agg.I[hop.link][slot], inner)
            w[:, vin < 0] = 0
            block = weights[hop.offset:hop.offset + hop.cout]
            np.maximum(block, _top_k_reference(w, k), out=block)
        weights[vout < 0] = 0
        for j, i in zip(*np.nonzero(weights), strict=True):
            edges.add((int(vout[j]), int(vin[i]), int(weights[j, i])))
    return edges


def _overlapping_aggregates(shapes=None):
    """Two direct links and a two-hop link (two inner links) that share output channels of ``b``,
    exclusions; class 1 has no count at all into ``b``."""
    rng = np.random.default_rng(9)
    shapes = {"b/a": (7, 11), "b/wide": (9, 11), "b/in1": (5, 11), "b/in2": (5, 11), "b/3x3": (5, 5),
              "c/1x1": (6, 15), **(shapes or {})}

    def counts(name):
        out = rng.integers(1, 30, (2, *shapes[name])) * (rng.random((2, *shapes[name])) < 0.4)
        if name.startswith("b/"):
            out[1] = 0
        return out

    links = {
        "b/a": ("a", "b", 0, counts("b/a")),
        "b/wide": ("a", "b", 3, counts("b/wide")),  # rows 3..11, overlapping b/a's 3..6
        "b/in1": ("a", "b/inner", 0, counts("b/in1")),
        "b/in2": ("a", "b/inner", 0, counts("b/in2")),
        "b/3x3": ("b/inner", "b", 10, counts("b/3x3")),  # rows 10..14, overlapping b/wide's 10..11
        "c/1x1": ("b", "c", 0, counts("c/1x1")),
    }
    A = {"a": rng.integers(0, 9, (2, 11)), "b": rng.integers(0, 9, (2, 15)), "c": rng.integers(0, 9, (2, 6))}
    return synthetic.from_counts({"a": 11, "b": 15, "c": 6}, A, links, count=[200, 200],
                                 config={"exclude_channels": "a:2,7;b:4,12"})


def test_full_graph_with_overlapping_links_and_exclusions():
    agg = _overlapping_aggregates()
    st = build.structure(agg)
    assert [h.link for h in st.hops["b"]] == ["b/a", "b/wide", "b/3x3"]
    for slot in range(2):
        full = build.full_graph(agg, slot, st)
        got = set(zip(full.hi.tolist(), full.lo.tolist(), full.weight.tolist(), strict=True))
        assert len(got) == full.num_edges
        assert got == _dense_full_graph(agg, slot, st)
        assert np.all(np.diff(full.hi.astype(np.int64) * st.num_vertices + full.lo) > 0)
        assert full.pair_start[-1] == full.num_edges
    assert full.pair_start[2] == 0  # class 1: no edge between a and b


def test_attr_channels_of_a_channel_two_links_reach():
    """b:5 is reached by b/a (row 5) and b/wide (row 2): the first link in offset order reports."""
    agg = _overlapping_aggregates()
    ag = attribution_graph(agg, 0, GraphConfig(attr_k=3))
    row = agg.I["b/a"][0][5].copy()
    row[[2, 7]] = 0  # excluded inputs
    order = sorted(np.flatnonzero(row), key=lambda i: (-row[i], i))[:3]
    assert ag.attr_channels("b", 5) == [(int(i), int(row[i])) for i in order]


@pytest.mark.parametrize("link, shape, message", [
    ("b/a", (7, 12), "do not read the 11 channels of a"),
    ("b/in2", (5, 10), "do not read the 11 channels of a"),
    ("b/3x3", (5, 6), "do not read the 5 channels of b/inner"),
])
def test_links_that_do_not_fit_their_input_are_refused(link, shape, message):
    with pytest.raises(ValueError, match=f"link {link}: .*{message}"):
        build.structure(_overlapping_aggregates({link: shape}))


def test_full_graph_in_a_forked_process():
    """The layer threads are not inherited by a fork: a forked child builds graphs too."""
    import multiprocessing

    agg = _overlapping_aggregates()
    st = build.structure(agg)
    want = build.full_graph(agg, 0, st).num_edges  # starts the parent's threads
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(build.full_graph, (agg, 0, st)).get(timeout=60).num_edges == want


@pytest.mark.parametrize("directed", [False, True])
def test_pagerank_matches_networkx(directed):
    blocks = tuple((n, a // 8, b // 8, c // 8, d // 8, max(e // 8, 2), max(f // 8, 2))
                   for n, a, b, c, d, e, f in synthetic.INCEPTION_V1[:4])
    agg = synthetic.inception_like(2, seed=4, blocks=blocks, degree=6)
    agg.config["exclude_channels"] = {"mixed3a": [1, 2]}
    ag = attribution_graph(agg, 1, GraphConfig(directed=directed))
    assert ag.full.num_edges > 100 and ag.graph.is_directed() == directed
    np.testing.assert_allclose(ag.pagerank, _nx_pagerank(ag, directed), atol=1e-6, rtol=0)


@pytest.mark.parametrize("directed", [False, True])
def test_pagerank_methods_give_the_same_graph(directed):
    agg = synthetic.inception_like(2, seed=5, blocks=synthetic.INCEPTION_V1[:3], degree=9)
    a = attribution_graph(agg, 1, GraphConfig(directed=directed))
    b = attribution_graph(agg, 1, GraphConfig(directed=directed, pagerank_method="igraph"))
    np.testing.assert_allclose(a.pagerank, b.pagerank, rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(a.selection.kept, b.selection.kept)
    np.testing.assert_array_equal(a.selection.edges, b.selection.edges)
    with pytest.raises(ValueError, match="pagerank_method"):
        GraphConfig(pagerank_method="power")


def _reference_selection(ag, node_mass, step):
    """SUMMIT's pruning written from its definition with a NetworkX graph, node and edge names as sets
    (independent of prune.py): per layer the nodes above the mass threshold; a layer (above the first)
    is valid when one of its kept nodes has a graph edge to a kept node of the layer below; each invalid
    layer and the one below it grow by a step (our one extension: the next non-full layer further down
    when both are full); ``prev_channels`` keep the edges whose lower end is in the first layer or has a
    valid edge itself."""
    st, g = ag.structure, _nx_graph(ag)
    pr = dict(zip(range(st.num_vertices), ag.pagerank.tolist(), strict=True))
    layer = {v: int(st.layer_of[v]) for v in g.nodes}
    depth = len(st.layers)
    linked = {max(layer[a], layer[b]) for a, b in g.edges}
    masses = [node_mass] * depth
    rounds = 0
    while True:
        kept = set()
        for index in range(depth):
            nodes = sorted((v for v in g.nodes if layer[v] == index), key=lambda v: (-pr[v], v))
            total, acc = sum(pr[v] for v in nodes), 0.0
            for v in nodes:  # SUMMIT's get_prob_mass: add nodes while the share is below the threshold
                if masses[index] < 1 and acc >= masses[index] * total - 1e-15:
                    break
                kept.add(v)
                acc += pr[v]
        valid_edges = {(a, b) if layer[a] > layer[b] else (b, a)
                       for a, b in g.edges if a in kept and b in kept}
        valid = {layer[hi] for hi, _ in valid_edges}
        bad = [i for i in range(1, depth) if i in linked and i not in valid]
        if not bad:
            break
        grew = False
        for i in bad:
            targets = [t for t in (i, i - 1) if masses[t] < 1] or \
                [t for t in range(i - 2, -1, -1) if masses[t] < 1][:1]
            for t in targets:
                masses[t] = min(1.0, round(masses[t] + step, 12))
                grew = True
        if not grew:
            break
        rounds += 1
    has_down = {hi for hi, _ in valid_edges}
    written = {(hi, lo) for hi, lo in valid_edges if layer[lo] == 0 or lo in has_down}
    return kept, written, rounds


def _selected(ag):
    edges = np.flatnonzero(ag.selection.edges)
    return (set(np.flatnonzero(ag.selection.kept).tolist()),
            set(zip(ag.full.hi[edges].tolist(), ag.full.lo[edges].tolist(), strict=True)))


@pytest.mark.parametrize("seed,node_mass,step", [(0, 0.075, 0.005), (1, 0.2, 0.05), (2, 0.02, 0.01)])
def test_selection_matches_reference_rules(seed, node_mass, step):
    blocks = tuple((n, a // 8, b // 8, c // 8, d // 8, max(e // 8, 2), max(f // 8, 2))
                   for n, a, b, c, d, e, f in synthetic.INCEPTION_V1[:5])
    agg = synthetic.inception_like(1, seed=seed, blocks=blocks, degree=3)
    ag = attribution_graph(agg, 0, GraphConfig(node_mass=node_mass, relax_step=step))
    kept, written, rounds = _reference_selection(ag, node_mass, step)
    assert _selected(ag) == (kept, written)
    assert ag.selection.relax_rounds == rounds
    assert len(kept) > len(ag.structure.layers)  # not a vacuous comparison


def test_json_invariants_on_inception_sized_class():
    agg = synthetic.inception_like(1, seed=7)
    agg.I = {name: np.stack([counts[0]]) for name, counts in agg.I.items()}
    ag = attribution_graph(agg, 0)
    assert 200_000 < ag.full.num_edges < 300_000 and ag.structure.num_vertices == 5484
    doc = ag.to_json()
    assert list(doc) == agg.layers[::-1]
    images = int(agg.class_count[0])
    for upper, lower in zip(agg.layers[:0:-1], agg.layers[-2::-1], strict=True):
        below = {n["channel"] for n in doc[lower]}
        for node in doc[upper]:
            assert node["count"] <= images
            for p in node["prev_channels"]:
                assert p["prev_channel"] in below and 0 < p["inf"] <= images
            assert all(0 < a["inf"] <= images for a in node["attr_channels"])
    assert sum(len(v) for v in doc.values()) == ag.selection.kept.sum()
    sub = ag.subgraph()
    assert sub.vcount() == ag.selection.kept.sum() and sub.ecount() == ag.selection.edges.sum()


def test_config_validation():
    for bad in ({"node_mass": 0}, {"node_mass": 1.5}, {"relax_step": -1}, {"damping": 1.0}, {"attr_k": -1}):
        with pytest.raises(ValueError):
            GraphConfig(**bad)
