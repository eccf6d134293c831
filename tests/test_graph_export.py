"""Exports: SUMMIT's ag format (checked against the published files), classes.json, comparisons, the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from cli_errors import run_main
from json_shape import leaf_paths

from summit_tf import store
from summit_tf.graph import algebra
from summit_tf.graph.attribution import GraphConfig, attribution_graph
from synthetic import aggregates as synthetic

QUARTER = tuple((n, *(x // 4 for x in sizes)) for n, *sizes in synthetic.INCEPTION_V1)


def _run_aggregates(num_classes=3):
    agg = synthetic.inception_like(num_classes, seed=11, blocks=QUARTER, degree=12)
    agg.config["exclude_channels"] = "mixed3a:3,5;mixed3b:7"
    agg.I = {name: np.stack([counts[k] for k in range(num_classes)]) for name, counts in agg.I.items()}
    return agg


def test_ag_json_has_the_published_shape(shared):
    mine = attribution_graph(_run_aggregates(1), 0).to_json()
    my_nodes = [n for nodes in mine.values() for n in nodes]
    for name in ("ag-0.json", "ag-270.json", "ag-294.json", "ag-295.json"):
        ref = json.loads((shared / "reference" / "summit-data-ag" / name).read_text())
        assert list(mine) == list(ref)  # every layer, last to first
        ref_nodes = [n for nodes in ref.values() for n in nodes]
        assert {tuple(n) for n in my_nodes} == {tuple(n) for n in ref_nodes}  # keys in the same order
        assert set().union(*map(leaf_paths, my_nodes)) == set().union(*map(leaf_paths, ref_nodes))
        for layer in ref:
            assert {n["layer"] for n in mine[layer]} <= {layer}
        # The first layer has no inputs in either.
        first = mine["mixed3a"] + ref["mixed3a"]
        assert all(not n["prev_channels"] and not n["attr_channels"] for n in first)


def test_algebra_sets_and_weights():
    agg = _run_aggregates(2)
    a, b = attribution_graph(agg, 0), attribution_graph(agg, 1)
    doc = algebra.compare(a, b)
    kept_a = {f"{layer}:{c}" for layer, c in a.kept_nodes()}
    kept_b = {f"{layer}:{c}" for layer, c in b.kept_nodes()}
    sets = doc["sets"]
    assert set(sets["intersection"]["nodes"]) == kept_a & kept_b
    assert set(sets["a_minus_b"]["nodes"]) == kept_a - kept_b
    assert set(sets["b_minus_a"]["nodes"]) == kept_b - kept_a
    assert set(sets["union"]["nodes"]) == kept_a | kept_b
    edges_a = {(f"{l}:{c}", f"{pl}:{pc}") for l, c, pl, pc, _ in a.kept_edge_list()}
    edges_b = {(f"{l}:{c}", f"{pl}:{pc}") for l, c, pl, pc, _ in b.kept_edge_list()}
    assert {tuple(e) for e in sets["union"]["edges"]} == edges_a | edges_b
    assert {tuple(e) for e in sets["intersection"]["edges"]} == edges_a & edges_b
    st = a.structure
    full_b = {(int(h), int(lo)): int(w) for h, lo, w in zip(b.full.hi, b.full.lo, b.full.weight, strict=True)}
    for rec in doc["edges"]:
        hi = int(st.vertex[rec["layer"]][rec["channel"]])
        lo = int(st.vertex[rec["prev_layer"]][rec["prev_channel"]])
        assert rec["b"]["inf"] == full_b.get((hi, lo), 0)
    for rec in doc["nodes"]:
        v = int(st.vertex[rec["layer"]][rec["channel"]])
        assert rec["a"]["pagerank"] == a.pagerank[v] and rec["b"]["count"] == b.count[v]
    json.dumps(doc)
    assert doc["summary"]["union"]["nodes"] == len(kept_a | kept_b)


def _cli(*args):
    return run_main("summit_tf.graph.__main__", *args)


def test_cli_writes_every_file(tmp_path):
    agg = _run_aggregates(3)
    store.save(tmp_path / "run.h5", agg)
    out = tmp_path / "out"
    # a subprocess smoke test of ``python -m summit_tf.graph``, its log records included
    r = subprocess.run([sys.executable, "-m", "summit_tf.graph", f"--aggregates={tmp_path / 'run.h5'}",
                        f"--out_dir={out}", "--classes=0,2", "--compare=0,1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "attribution graphs: 2/2 classes" in r.stderr and "using PCA" in r.stderr
    assert sorted(p.name for p in (out / "ag").iterdir()) == ["ag-0.json", "ag-2.json"]
    assert not list(out.rglob(".*tmp"))
    doc = json.loads((out / "classes.json").read_text())
    meta = doc["meta"]
    assert meta["layers"] == agg.layers and meta["num_classes"] == 3 and meta["dataset"] == "synthetic"
    assert meta["channels"]["mixed5b"] == 256 and meta["prob_bins"] == 20
    assert meta["graph_config"] == GraphConfig().to_dict() and meta["config"] == agg.config
    assert meta["format"] == 2 and meta["similarity_scale"] == 10_000
    excluded = {"mixed3a": [3, 5], "mixed3b": [7]}
    for slot, rec in enumerate(doc["classes"]):
        assert list(rec)[:8] == ["target_class", "synset", "name", "numOfInstances", "topOneAcc",
                                 "topOneAccCount", "probHist", "embed"]
        assert rec["target_class"] == slot and rec["numOfInstances"] == agg.class_count[slot]
        assert rec["topOneAcc"] == pytest.approx(agg.correct[slot] / agg.class_count[slot])
        assert len(rec["probHist"]) == 20 and ("graph" in rec) == (slot != 1)
        details = json.loads((out / "details" / f"class-{slot}.json").read_text())
        assert details["target_class"] == slot
        for layer in agg.layers:
            counts = [c for _, c in details["topChannels"][layer]]
            assert counts == sorted(counts, reverse=True) and min(counts) > 0
            want = {c for c in np.flatnonzero(agg.A[layer][slot])} - set(excluded.get(layer, []))
            assert {c for c, _ in details["topChannels"][layer]} == want
            x, y = rec["embed"][layer]
            assert 0 <= x <= 1 and 0 <= y <= 1
            # similarity rows: the cosine of A rows without the excluded channels, in float64, to 1e-4
            a = np.asarray(agg.A[layer], dtype=np.float64).copy()
            a[:, excluded.get(layer, [])] = 0
            ref = [float(a[slot] @ a[k] / (np.linalg.norm(a[slot]) * np.linalg.norm(a[k]))) for k in range(3)]
            assert np.asarray(details["similarity"][layer]) / 1e4 == pytest.approx(ref, abs=0.5e-4)
    assert b" " not in (out / "classes.json").read_bytes()[:200]  # compact JSON
    cmp = json.loads((out / "compare" / "0-1.json").read_text())
    assert cmp["a"]["target_class"] == 0 and cmp["b"]["target_class"] == 1
    ag0 = json.loads((out / "ag" / "ag-0.json").read_text())
    assert sum(len(v) for v in ag0.values()) == cmp["summary"]["intersection"]["nodes"] + \
        cmp["summary"]["a_minus_b"]["nodes"]
    assert all(n["channel"] not in (3, 5) for n in ag0["mixed3a"])


def test_dataset_name_of_a_merged_file():
    from summit_tf.graph.viewer_json import dataset_name

    shard = {"data": "folder:val", "num_shards": 2}
    assert dataset_name(shard) == "folder:val"
    assert dataset_name({"merged_from": [{**shard, "shard_index": 0}, {**shard, "shard_index": 1}]}) == \
        "folder:val"
    assert dataset_name({"merged_from": [shard, {"data": "folder:train"}]}) == ""


def test_regenerating_leaves_no_stale_files(tmp_path):
    """A second run into the same folder, over fewer classes and graphs, removes the first run's other ag
    and details files: the manifest the viewer reads lists what classes.json has."""
    from summit_tf.graph.generate import generate
    from summit_tf.viewer import manifest

    generate(_run_aggregates(3), str(tmp_path), [0, 1, 2], [], GraphConfig(), seed=0, umap_min_classes=16)
    assert manifest.scan(tmp_path)["graphs"] == [0, 1, 2]
    generate(_run_aggregates(2), str(tmp_path), [1], [], GraphConfig(), seed=0, umap_min_classes=16)
    doc = json.loads((tmp_path / "classes.json").read_text())
    found = manifest.scan(tmp_path)
    assert found["graphs"] == [rec["target_class"] for rec in doc["classes"] if "graph" in rec] == [1]
    assert found["details"] == [rec["target_class"] for rec in doc["classes"]] == [0, 1]


def test_workers_write_the_same_files(tmp_path):
    """Graphs built in two spawned processes equal one process's, byte for byte."""
    store.save(tmp_path / "run.h5", _run_aggregates(4))
    for workers in (1, 2):
        r = _cli(f"--aggregates={tmp_path / 'run.h5'}", f"--out_dir={tmp_path / str(workers)}",
                 f"--workers={workers}", "--compare=1,3")
        assert r.returncode == 0, r.stderr
    files = sorted(p.relative_to(tmp_path / "1") for p in (tmp_path / "1").rglob("*.json"))
    assert len(files) == 10  # 4 ag files, 4 details files, classes.json, one comparison
    for rel in files:
        assert (tmp_path / "2" / rel).read_bytes() == (tmp_path / "1" / rel).read_bytes(), rel


@pytest.mark.parametrize("args,message", [
    (["--aggregates=missing.h5"], "not found"),
    (["--classes=7"], "class 7 is not in the aggregates"),
    (["--node_mass=1.5"], "node_mass"),
    (["--compare=0"], "two class ids"),
    (["--pagerank_method=power"], "pagerank_method"),
    (["--directed=maybe"], "directed"),
    (["--no_such_flag=1"], "no_such_flag"),
    (["--workers=-1"], "--workers"),
])
def test_cli_bad_input_exits_2(tmp_path, args, message):
    store.save(tmp_path / "run.h5", synthetic.from_counts({"a": 2, "b": 2}, {"a": [[1, 2]], "b": [[2, 1]]},
                                                          {"b/x": ("a", "b", 0, [[[1, 0], [0, 1]]])}))
    r = _cli(f"--aggregates={tmp_path / 'run.h5'}", f"--out_dir={tmp_path / 'out'}", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
