"""Ablations on a small real run: the identity variant agrees perfectly, every value lies in [0, 1]."""

import csv
import json

import numpy as np
import pytest

from experiments import ablations
from summit_tf import store


def test_identity_variant_is_perfect(small_run):
    with store.load(small_run / "aggregates.h5") as a, store.load(small_run / "aggregates.h5") as b:
        rows = ablations.compare(a, b, "identity")
    assert len(rows) == len(a.layers)
    for r in rows:
        assert (r.node_jaccard, r.edge_jaccard) == (1.0, 1.0)
        assert r.kendall_tau == pytest.approx(1.0, abs=1e-12)


def test_cli_runs_variants_and_writes_sane_tables(small_run, tmp_path, capsys):
    data = json.loads((small_run / "pipeline.json").read_text())["data"]
    argv = ["ablations", f"--data={data}", f"--out_dir={tmp_path}",
            "--variants=inf-topk1,node-mass-15",
            "--stability=2", "--max_images_per_class=4", "--batch_size=12", f"--held_out={data}",
            "--held_out_images_per_class=1", "--random_sets=2"]
    assert ablations.main(argv) == 0
    with open(tmp_path / "ablations.csv") as f:
        rows = list(csv.DictReader(f))
    variants = {r["variant"] for r in rows}
    assert variants == {"summit-default", "inf-topk1", "images-2", "node-mass-15"}
    for r in rows:
        for key in ("node_jaccard", "edge_jaccard"):
            assert 0.0 <= float(r[key]) <= 1.0
        assert -1.0 <= float(r["kendall_tau"]) <= 1.0
    reference = [r for r in rows if r["variant"] == "summit-default"]
    assert all(float(r["node_jaccard"]) == 1.0 and float(r["edge_jaccard"]) == 1.0 for r in reference)
    # top-1 influence keeps fewer edges than top-5: the graphs must differ somewhere
    assert any(float(r["edge_jaccard"]) < 1.0 for r in rows if r["variant"] == "inf-topk1")
    # a larger node mass keeps more nodes per class, the same aggregates
    nodes = {v: sum(float(r["nodes"]) for r in rows if r["variant"] == v) for v in variants}
    assert nodes["node-mass-15"] > nodes["summit-default"]
    # every variant is scored by intervention: finite where the random drop was clearly positive
    scored = {r["variant"]: float(r["faithfulness"]) for r in rows}
    assert set(scored) == variants and any(np.isfinite(v) for v in scored.values())
    assert (tmp_path / "ablations-heatmap.png").stat().st_size > 1000
    assert "| inf-topk1 |" in (tmp_path / "ablations.md").read_text()
    assert "ablations.md" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["ablations"], ["ablations", "--data=folder:/nowhere", "--variants=nope"]])
def test_bad_input_exits_2(argv, capsys):
    assert ablations.main(argv) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_identical_variants_are_merged_only_when_equal(small_run, tmp_path):
    import shutil

    path = small_run / "aggregates.h5"
    twin = tmp_path / "act-sum.h5"
    shutil.copy(path, twin)
    runs = [("summit-default", path, None), ("act-mean", path, None), ("act-sum", twin, None)]
    assert [r[0] for r in ablations.merge_identical(runs)] == ["summit-default", "act-mean = act-sum"]
    with store.load(path) as agg:
        agg.A[agg.layers[0]][0, 0] += 1
        store.save(twin, agg)
    assert [r[0] for r in ablations.merge_identical(runs)] == ["summit-default", "act-mean", "act-sum"]
