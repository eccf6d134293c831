"""Merging aggregates files: sums over the union of classes, refusals, atomic output, the CLI."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from cli_errors import run_main

from summit_tf import merge, store
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.merge import merge as merge_files

LAYERS = {"a": 5, "b": 7}


def shard(path, classes, seed, **config_changes):
    """A random aggregates file as one shard of a run would write it."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    shard_index = config_changes.pop("shard_index", seed)
    cfg = AggregateConfig(model="toy", data="folder:x", out=str(path), num_shards=4, shard_index=shard_index,
                          **config_changes)
    agg = store.Aggregates(
        model="toy", config={**cfg.record(), "layers": list(LAYERS)}, classes=np.array(classes, np.int32),
        class_count=rng.integers(1, 9, k), layers=list(LAYERS),
        A={name: rng.integers(0, 9, (k, c)).astype(np.int32) for name, c in LAYERS.items()},
        links={"b/3x3": store.LinkInfo("b/3x3", "a", "b", "conv", 2, 1)},
        I={"b/3x3": rng.integers(0, 9, (k, 4, 5)).astype(np.int32)},
        correct=rng.integers(0, 3, k), prob_hist=rng.integers(0, 3, (k, 20)),
        num_images=int(rng.integers(10, 20)), num_skipped=int(rng.integers(0, 3)),
    )
    store.save(path, agg)
    return agg


def test_library_merge_returns_readable_aggregates(tmp_path):
    parts = [shard(tmp_path / "s0.h5", [0, 217], 0), shard(tmp_path / "s1.h5", [217], 1)]
    with merge_files([str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5")], tmp_path / "m.h5") as merged:
        assert merged.filename == str(tmp_path / "m.h5")
        np.testing.assert_array_equal(merged.I["b/3x3"][1], parts[0].I["b/3x3"][1] + parts[1].I["b/3x3"][0])
        np.testing.assert_array_equal(merged.I["b/3x3"][0], parts[0].I["b/3x3"][0])


def test_sums_over_the_union_of_classes(tmp_path):
    parts = [shard(tmp_path / "s0.h5", [0, 217], 0), shard(tmp_path / "s1.h5", [5, 217, 999], 1),
             shard(tmp_path / "s2.h5", [999], 2)]
    out = tmp_path / "all.h5"
    assert merge.main(["merge", f"--out={out}", *(str(tmp_path / f"s{i}.h5") for i in range(3))]) == 0
    with store.load(out) as m:
        np.testing.assert_array_equal(m.classes, [0, 5, 217, 999])
        expected_count = np.zeros(4, np.int64)
        expected_i = np.zeros((4, 4, 5), np.int64)
        expected_a = np.zeros((4, 7), np.int64)
        expected_hist = np.zeros((4, 20), np.int64)
        for part in parts:
            rows = np.searchsorted(m.classes, part.classes)
            expected_count[rows] += part.class_count
            expected_i[rows] += part.I["b/3x3"]
            expected_a[rows] += part.A["b"]
            expected_hist[rows] += part.prob_hist
        np.testing.assert_array_equal(m.class_count, expected_count)
        np.testing.assert_array_equal(np.asarray(m.I["b/3x3"]), expected_i)
        np.testing.assert_array_equal(m.A["b"], expected_a)
        np.testing.assert_array_equal(m.prob_hist, expected_hist)
        assert m.num_images == sum(p.num_images for p in parts)
        assert m.num_skipped == sum(p.num_skipped for p in parts)
        assert m.links == parts[0].links and m.layers == ["a", "b"]
        assert m.config["activation_select"] == "mass:0.03"
        assert [s["shard_index"] for s in m.config["merged_from"]] == [0, 1, 2]
    # a merged file merges again; its recorded selections still catch double counting
    shard(tmp_path / "s3.h5", [0], 3)
    assert merge.main(["merge", f"--out={tmp_path / 'more.h5'}", str(out), str(tmp_path / "s3.h5")]) == 0
    with store.load(tmp_path / "more.h5") as more:
        assert more.num_images == sum(p.num_images for p in parts) + store.load(tmp_path / "s3.h5").num_images
    assert merge.main(["merge", f"--out={tmp_path / 'twice.h5'}", str(out), str(tmp_path / "s1.h5")]) == 2


@pytest.mark.parametrize("change, message", [
    (dict(activation_select="mass:0.01"), "activation_select"),
    (dict(influence_stride=3), "influence_stride"),
    (dict(exclude_channels={"a": (1,)}), "exclude_channels"),
    (dict(resize="center_crop"), "resize"),
    (dict(shard_index=0), "twice"),
])
def test_refuses_incompatible_inputs(tmp_path, capsys, change, message):
    shard(tmp_path / "s0.h5", [0, 1], 0)
    shard(tmp_path / "s1.h5", [1, 2], 1, **change)
    out = tmp_path / "all.h5"
    assert merge.main(["merge", f"--out={out}", str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))


def test_refuses_other_model_or_links(tmp_path, capsys):
    shard(tmp_path / "s0.h5", [0], 0)
    shard(tmp_path / "s1.h5", [0], 1)
    with h5py.File(tmp_path / "s1.h5", "r+") as f:
        f.attrs["model"] = "other"
    assert merge.main(["merge", f"--out={tmp_path / 'o.h5'}", str(tmp_path / "s0.h5"),
                       str(tmp_path / "s1.h5")]) == 2
    assert "model" in capsys.readouterr().err
    shard(tmp_path / "s2.h5", [0], 2)
    with h5py.File(tmp_path / "s2.h5", "r+") as f:
        f["I/b__3x3"].attrs["dst_offset"] = 0
    assert merge.main(["merge", f"--out={tmp_path / 'o.h5'}", str(tmp_path / "s0.h5"),
                       str(tmp_path / "s2.h5")]) == 2
    assert "links" in capsys.readouterr().err


def test_cli_errors(tmp_path):
    shard(tmp_path / "s0.h5", [0], 0)
    (tmp_path / "exists.h5").write_bytes(b"x")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    cases = [
        [f"--out={tmp_path / 'o.h5'}"],  # no inputs
        [str(tmp_path / "s0.h5")],  # no --out
        [f"--out={tmp_path / 'exists.h5'}", str(tmp_path / "s0.h5")],
        [f"--out={tmp_path / 'o.h5'}", str(tmp_path / "missing.h5")],
        [f"--out={tmp_path / 'o.h5'}", str(tmp_path / "junk.h5")],
        [f"--out={tmp_path / 'o.h5'}", "--bogus", str(tmp_path / "s0.h5")],
    ]
    for args in cases:
        proc = run_main("summit_tf.merge", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o.h5").exists()
    proc = run_main("summit_tf.merge", f"--out={tmp_path / 'exists.h5'}", "--overwrite",
                    str(tmp_path / "s0.h5"))
    assert proc.returncode == 0, proc.stderr
    with store.load(tmp_path / "exists.h5") as m:
        assert m.classes.tolist() == [0]
