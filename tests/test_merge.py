"""Merging aggregates files: sums over the union of classes, refusals, atomic output, the CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from cli_errors import run_main

from summit_tf import merge, store
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.merge import merge as merge_files

LAYERS = {"a": 5, "b": 7}


def shard(path, present, seed, **config_changes):
    """A random aggregates file as one shard of a run would write it, with counts of classes ``present``."""
    rng = np.random.default_rng(seed)
    k = len(present)
    config_changes = {"data": "folder:x", "num_shards": 4, "shard_index": seed, **config_changes}
    cfg = AggregateConfig(model="toy", out=str(path), **config_changes)
    agg = store.Aggregates(
        model="toy", config={**cfg.record(), "layers": list(LAYERS)}, classes=np.array(present, np.int32),
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


FOLDER, RECORDS = "folder:x", "tfrecord:x/train-*"


@pytest.mark.parametrize("a, b, refused", [
    # the same images, classes overlapping in class 1
    (dict(num_shards=1, shard_index=0, classes=(0, 1)), dict(num_shards=1, shard_index=0, classes=(1, 2)),
     True),
    # class filters that do not overlap, or files whose classes do not
    (dict(num_shards=1, shard_index=0, classes=(0, 1)), dict(num_shards=1, shard_index=0, classes=(2, 3)),
     False),
    (dict(num_shards=1, shard_index=0, present=[0, 1]), dict(num_shards=1, shard_index=0, present=[2]),
     False),
    # shards of one stream: i of n and j of m share records iff i = j (mod gcd(n, m))
    (dict(num_shards=2, shard_index=0), dict(num_shards=4, shard_index=1), False),
    (dict(num_shards=2, shard_index=0), dict(num_shards=4, shard_index=2), True),
    (dict(num_shards=2, shard_index=1), dict(num_shards=3, shard_index=0), True),
    (dict(num_shards=1, shard_index=0), dict(num_shards=4, shard_index=3), True),
    # TFRecords may be split by files under one shard count and by records under another
    (dict(data=RECORDS, num_shards=2, shard_index=0), dict(data=RECORDS, num_shards=4, shard_index=1), True),
    (dict(data=RECORDS, num_shards=2, shard_index=0), dict(data=RECORDS, num_shards=2, shard_index=1), False),
    (dict(data=RECORDS, num_shards=2, shard_index=0, max_images_per_class=5),
     dict(data=RECORDS, num_shards=4, shard_index=1, max_images_per_class=5), False),
    # differently filtered streams number their records differently: their shards do not line up
    (dict(num_shards=2, shard_index=0, classes=(0, 1)), dict(num_shards=2, shard_index=1, classes=(1, 2)),
     True),
    (dict(num_shards=2, shard_index=0, max_images=50), dict(num_shards=2, shard_index=1), True),
    # other data
    (dict(num_shards=1, shard_index=0), dict(data="folder:y", num_shards=1, shard_index=0), False),
])
def test_refuses_inputs_that_may_count_an_image_twice(tmp_path, capsys, a, b, refused):
    for name, seed, (changes, present) in zip("ab", (0, 1), ((a, [0, 1]), (b, [1, 2])), strict=True):
        changes = dict(changes)
        present = changes.pop("present", [c for c in present if c in changes.get("classes", present)])
        shard(tmp_path / f"{name}.h5", present, seed, **changes)
    code = merge.main(["merge", f"--out={tmp_path / 'm.h5'}", str(tmp_path / "a.h5"), str(tmp_path / "b.h5")])
    err = capsys.readouterr().err
    assert code == (2 if refused else 0), err
    if refused:
        assert f"{tmp_path / 'a.h5'} and {tmp_path / 'b.h5'} may both count images of class(es) [1]" in err
        assert "twice" in err and err.count("\n") == 1


def test_files_from_before_a_setting_merge_at_its_default(tmp_path, capsys):
    """A file written before ``jpeg_max_ratio`` existed counted at ratio 1: it merges with newer files of
    ratio 1 and is refused with ratio 2."""
    shard(tmp_path / "old.h5", [0], 0)
    with h5py.File(tmp_path / "old.h5", "r+") as f:
        config = json.loads(f.attrs["config"])
        del config["jpeg_max_ratio"]
        f.attrs["config"] = json.dumps(config)
    shard(tmp_path / "new.h5", [0], 1)
    shard(tmp_path / "ratio2.h5", [0], 2, jpeg_max_ratio=2)
    inputs = [str(tmp_path / "old.h5"), str(tmp_path / "new.h5")]
    assert merge.main(["merge", f"--out={tmp_path / 'm.h5'}", *inputs]) == 0
    with store.load(tmp_path / "m.h5") as merged:
        assert merged.config["jpeg_max_ratio"] == 1
    assert merge.main(["merge", f"--out={tmp_path / 'm2.h5'}", inputs[0], str(tmp_path / "ratio2.h5")]) == 2
    assert "jpeg_max_ratio: 1 vs 2" in capsys.readouterr().err


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
