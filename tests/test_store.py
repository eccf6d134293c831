"""Round trip of the aggregates file: every dataset and attribute comes back as written."""

import h5py
import numpy as np
import pytest

from summit_tf import store


def _random_aggregates(rng):
    classes = np.array([0, 217, 999], dtype=np.int32)
    layers = ["a", "b"]
    A = {"a": rng.integers(0, 9, (3, 5)).astype(np.int32), "b": rng.integers(0, 9, (3, 7)).astype(np.int32)}
    links = {"b/3x3": store.LinkInfo("b/3x3", "a", "b", "conv", 2, 1)}
    I = {"b/3x3": rng.integers(0, 9, (3, 4, 5)).astype(np.int32)}
    return store.Aggregates(
        model="toy", config={"activation_select": "mass:0.03"}, classes=classes,
        class_count=np.array([3, 4, 5]), layers=layers, A=A, links=links, I=I,
        correct=np.array([1, 2, 3]), prob_hist=rng.integers(0, 3, (3, 20)), num_images=12, num_skipped=1,
    )


def test_round_trip(tmp_path):
    agg = _random_aggregates(np.random.default_rng(0))
    path = tmp_path / "run.h5"
    store.save(path, agg)
    with store.load(path) as back:
        assert back.layers == ["a", "b"] and back.model == "toy" and back.num_skipped == 1
        assert back.config == {"activation_select": "mass:0.03"}
        for layer in agg.layers:
            np.testing.assert_array_equal(back.A[layer], agg.A[layer])
        np.testing.assert_array_equal(back.influence("b/3x3", 217), agg.I["b/3x3"][1])
        assert back.links["b/3x3"] == agg.links["b/3x3"]
        np.testing.assert_array_equal(back.prob_hist, agg.prob_hist)
        with pytest.raises(KeyError):
            back.slot(5)
    with h5py.File(path) as f:
        assert "b__3x3" in f["I"] and f["classes/name"][0].decode().startswith("tench")
        assert f["I/b__3x3"].chunks == (1, 4, 5)
    assert not list(tmp_path.glob(".*tmp"))


def test_failed_write_leaves_old_file(tmp_path):
    path = tmp_path / "run.h5"
    agg = _random_aggregates(np.random.default_rng(1))
    store.save(path, agg)
    before = path.read_bytes()
    agg.I["b/3x3"] = np.zeros((2, 4, 5), np.int32)  # wrong number of classes: the write fails midway
    with pytest.raises(IndexError):
        store.save(path, agg)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp"))


def test_rejects_foreign_file(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "other"
    with pytest.raises(ValueError, match="not a summit-tf"):
        store.load(path)
