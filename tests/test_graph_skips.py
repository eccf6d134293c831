"""Attribution graphs with skip links (residual shortcuts): edges spanning layers, PageRank on the whole DAG,
kept skip edges, the additive ``skip_channels`` JSON field and the dashed curves of the figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from summit_tf.graph import algebra, attribution, build, drawing, viewer_json  # noqa: E402
from synthetic import aggregates as synthetic  # noqa: E402

CHANNELS = {"a": 5, "b": 7, "c": 6, "d": 9}
CHANNELS_ORDER = list(CHANNELS)


def skip_aggregates(seed: int = 0, skips: bool = True):
    """Four layers, a chain of links, and skip links a -> c (sparse counts) and b -> d (an identity-like
    diagonal on d's channels 2..8, offset 2)."""
    rng = np.random.default_rng(seed)
    A = {layer: rng.integers(0, 40, (1, c)) for layer, c in CHANNELS.items()}
    layers = list(CHANNELS)
    links = {}
    for lo, hi in zip(layers, layers[1:], strict=False):
        counts = rng.integers(0, 30, (1, CHANNELS[hi], CHANNELS[lo])) * (rng.random((1, CHANNELS[hi],
                                                                                  CHANNELS[lo])) < 0.6)
        links[hi] = (lo, hi, 0, counts)
    if skips:
        links["c/skip/a"] = ("a", "c", 0, rng.integers(0, 30, (1, 6, 5)) * (rng.random((1, 6, 5)) < 0.5))
        diagonal = np.zeros((1, 7, 7), np.int64)
        diagonal[0, np.arange(7), np.arange(7)] = 40
        links["d/skip/b"] = ("b", "d", 2, diagonal)
    return synthetic.from_counts(CHANNELS, A, links, classes=[3], count=[40]), links


def reference_pagerank(agg, links, directed: bool) -> dict[tuple[str, int], float]:
    """NetworkX PageRank of the graph written from the raw counts: every positive count an edge from the
    output channel to the input channel, reset A / max A per layer on vertices with an edge."""
    g = nx.DiGraph() if directed else nx.Graph()
    for src, dst, offset, counts in links.values():
        for j, i in zip(*np.nonzero(counts[0]), strict=True):
            g.add_edge((dst, int(j) + offset), (src, int(i)), weight=float(counts[0, j, i]))
    reset = {v: agg.A[v[0]][0, v[1]] / agg.A[v[0]][0].max() for v in g.nodes}
    return nx.pagerank(g, alpha=0.85, personalization=reset, weight="weight", tol=1e-14, max_iter=10_000)


@pytest.mark.parametrize("directed", [False, True])
def test_skip_edges_and_pagerank_on_the_whole_dag(directed):
    agg, links = skip_aggregates()
    ag = attribution.attribution_graph(agg, 3, attribution.GraphConfig(directed=directed))
    st, full = ag.structure, ag.full
    assert [(s.link, s.src, s.dst, s.offset) for s in st.skips] == [("c/skip/a", "a", "c", 0),
                                                                   ("d/skip/b", "b", "d", 2)]
    assert full.skip_weight.size == np.count_nonzero(links["c/skip/a"][3]) + 7
    assert st.ignored_links == []
    expected = reference_pagerank(agg, links, directed)
    for (layer, channel), value in expected.items():
        assert ag.pagerank[st.vertex[layer][channel]] == pytest.approx(value, rel=1e-8, abs=1e-12)
    g = ag.graph
    assert sum(g.es["skip"]) == full.skip_weight.size and g.ecount() == full.num_edges + full.skip_weight.size


def test_kept_skip_edges_and_json():
    agg, _ = skip_aggregates()
    ag = attribution.attribution_graph(agg, 3, attribution.GraphConfig(node_mass=0.5))
    st, full, kept = ag.structure, ag.full, ag.selection.kept
    mask = kept[full.skip_hi] & kept[full.skip_lo]
    assert mask.any() and np.array_equal(ag.kept_skips, mask)
    written = {}
    for layer, nodes in ag.to_json().items():
        for node in nodes:
            assert set(node) == {"channel", "count", "layer", "pagerank", "prev_channels", "attr_channels",
                                 "skip_channels"}
            infs = [s["inf"] for s in node["skip_channels"]]
            assert infs == sorted(infs, reverse=True)
            for s in node["skip_channels"]:
                written[(layer, node["channel"], s["layer"], s["prev_channel"])] = s["inf"]
    ends = zip(full.skip_hi[mask], full.skip_lo[mask], full.skip_weight[mask], strict=True)
    expected = {(st.layers[st.layer_of[h]], int(st.channel_of[h]), st.layers[st.layer_of[lo]],
                 int(st.channel_of[lo])): int(w) for h, lo, w in ends}
    assert written == expected
    assert sum(1 for e in ag.kept_edge_list() if (e[0], e[2]) in {("c", "a"), ("d", "b")}) == len(expected)
    fig = drawing.draw_graph(ag)
    curves = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(curves) == len(expected)


def _kept_skips(ag) -> dict[tuple, int]:
    st, full, mask = ag.structure, ag.full, ag.kept_skips
    ends = zip(full.skip_hi[mask], full.skip_lo[mask], full.skip_weight[mask], strict=True)
    return {(st.layers[st.layer_of[h]], int(st.channel_of[h]), st.layers[st.layer_of[lo]],
             int(st.channel_of[lo])): int(w) for h, lo, w in ends}


def test_comparison_and_stats_count_skip_edges():
    config = attribution.GraphConfig(node_mass=0.5)
    a = attribution.attribution_graph(skip_aggregates(0)[0], 3, config)
    b = attribution.attribution_graph(skip_aggregates(1)[0], 3, config)
    skips_a, skips_b = _kept_skips(a), _kept_skips(b)
    assert skips_a and skips_b and set(skips_a) != set(skips_b)
    doc = algebra.compare(a, b)
    written = {(e["layer"], e["channel"], e["prev_layer"], e["prev_channel"]): e for e in doc["edges"]
               if e["skip"]}
    assert set(written) == set(skips_a) | set(skips_b)
    for key, e in written.items():
        assert e["a"] == {"inf": skips_a[key], "kept": True} if key in skips_a else not e["a"]["kept"]
        assert e["b"] == {"inf": skips_b[key], "kept": True} if key in skips_b else not e["b"]["kept"]
        assert e["in"] == ("both" if key in skips_a and key in skips_b else "a" if key in skips_a else "b")
    plain = [e for e in doc["edges"] if not e["skip"]]
    assert all(abs(CHANNELS_ORDER.index(e["layer"]) - CHANNELS_ORDER.index(e["prev_layer"])) == 1
               for e in plain)
    assert len(doc["sets"]["union"]["edges"]) == len(doc["edges"])
    stats = viewer_json.graph_stats(a)
    assert stats["edges"] == int(a.selection.edges.sum()) + len(skips_a)
    assert stats["full_edges"] == a.full.num_edges + a.full.skip_weight.size


def test_runs_without_skip_links_keep_summits_keys():
    agg, _ = skip_aggregates(skips=False)
    ag = attribution.attribution_graph(agg, 3)
    assert ag.structure.skips == [] and ag.full.skip_weight.size == 0
    assert all("skip_channels" not in node for nodes in ag.to_json().values() for node in nodes)
    assert all("skip" not in e for e in algebra.compare(ag, ag)["edges"])


def test_skip_link_reading_the_wrong_channels_is_refused():
    agg, links = skip_aggregates()
    agg.I["c/skip/a"] = np.zeros((1, 6, 4), np.int32)  # a has 5 channels
    with pytest.raises(ValueError, match="c/skip/a"):
        build.structure(agg)


def test_figure_of_a_layer_subset_joins_only_real_neighbours():
    """``prev_channels`` read the graph's own layer below: drawing layers a and c of a-b-c draws c's skip
    edge from a, not c's inputs from b as if they were a's channels."""
    def node(layer, channel, prev=(), skips=()):
        return {"channel": channel, "count": 1, "layer": layer, "pagerank": 0.1,
                "prev_channels": [{"prev_channel": c, "inf": w} for c, w in prev], "attr_channels": [],
                "skip_channels": [{"layer": "a", "prev_channel": c, "inf": w} for c, w in skips]}

    graph = {"c": [node("c", 0, prev=[(1, 4)], skips=[(0, 2)])], "b": [node("b", 1, prev=[(0, 3)])],
             "a": [node("a", 0)]}
    _, edges, _ = drawing.graph_parts(graph, ["a", "c"])
    assert edges == [("a", 0, "c", 0, 2.0)]
    _, edges, _ = drawing.graph_parts(graph, ["a", "b", "c"])
    assert edges == [("a", 0, "b", 1, 3.0), ("b", 1, "c", 0, 4.0), ("a", 0, "c", 0, 2.0)]
    fig = drawing.draw_graph(graph, layers=["a", "c"])  # was a KeyError: no channel 1 in a
    assert len(fig.axes[0].lines) == 1  # the skip edge, between adjacent rows of this figure
