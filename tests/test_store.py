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
        assert f.attrs["version"] == 2 and isinstance(f["I/b__3x3"], h5py.Group)
    assert not list(tmp_path.glob(".*tmp"))


def _sparse_counts(rng, shape, density):
    counts = rng.integers(1, 1300, shape).astype(np.int32)
    counts[rng.random(shape) >= density] = 0
    return counts


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_influence_round_trip_sparse_data(tmp_path, layout):
    """Odd sizes, empty classes and rows, full rows: every class reads back exactly, in either layout."""
    rng = np.random.default_rng(7)
    agg = _random_aggregates(rng)
    counts = _sparse_counts(rng, (3, 13, 37), 0.06)
    counts[1] = 0  # a class without entries
    counts[2, 4] = rng.integers(1, 9, 37)  # a full row
    counts[0, :, 0] = 2**31 - 1  # the largest int32 count survives
    agg.I["b/3x3"] = counts
    agg.links["b/3x3"] = store.LinkInfo("b/3x3", "a", "b", "conv", 0, 1)
    path = tmp_path / "run.h5"
    store.save(path, agg, layout=layout)
    with store.load(path) as back:
        assert back.I["b/3x3"].shape == (3, 13, 37)
        for row, class_id in enumerate(agg.classes):
            got = back.influence("b/3x3", int(class_id))
            assert got.dtype == np.int32
            np.testing.assert_array_equal(got, counts[row])
        np.testing.assert_array_equal(np.asarray(back.I["b/3x3"]), counts)
        np.testing.assert_array_equal(back.I["b/3x3"][-1], counts[-1])
    with h5py.File(path) as f:
        assert f.attrs["version"] == store.VERSIONS[layout]


def test_sparse_layout_on_disk(tmp_path):
    """The stored triples are the non-zero entries in row-major order (checked with np.argwhere)."""
    rng = np.random.default_rng(3)
    agg = _random_aggregates(rng)
    counts = _sparse_counts(rng, (3, 4, 5), 0.3)
    agg.I["b/3x3"] = counts
    path = tmp_path / "run.h5"
    store.save(path, agg)
    with h5py.File(path) as f:
        g = f["I/b__3x3"]
        where = np.argwhere(counts)  # (class, j, i), row-major
        np.testing.assert_array_equal(g["inputs"][()], where[:, 2])
        np.testing.assert_array_equal(g["counts"][()], counts[counts != 0])
        np.testing.assert_array_equal(g["row_nnz"][()], (counts != 0).sum(axis=2))
        np.testing.assert_array_equal(g["class_start"][()],
                                      np.concatenate([[0], np.cumsum((counts != 0).sum(axis=(1, 2)))]))
        assert g["inputs"].dtype == np.uint16 and g["counts"].dtype == np.int32


def test_wide_link_index_types(tmp_path):
    """65,536 inputs: input ids still fit uint16, a full row's count does not (int32)."""
    agg = _random_aggregates(np.random.default_rng(4))
    counts = np.zeros((3, 2, 65536), np.int32)
    counts[0, 1] = 1
    counts[2, 0, [0, 65535]] = [5, 6]
    agg.I["b/3x3"] = counts
    path = tmp_path / "run.h5"
    store.save(path, agg)
    with h5py.File(path) as f:
        assert f["I/b__3x3/inputs"].dtype == np.uint16 and f["I/b__3x3/row_nnz"].dtype == np.int32
    with store.load(path) as back:
        for row in range(3):
            np.testing.assert_array_equal(back.I["b/3x3"][row], counts[row])


def test_sparse_rejects_negative_counts(tmp_path):
    agg = _random_aggregates(np.random.default_rng(5))
    agg.I["b/3x3"][1, 2, 3] = -1
    with pytest.raises(ValueError, match="negative counts in class row 1"):
        store.save(tmp_path / "run.h5", agg)
    assert not list(tmp_path.iterdir())


def test_unknown_layout_and_version(tmp_path):
    agg = _random_aggregates(np.random.default_rng(6))
    with pytest.raises(ValueError, match="layout must be one of"):
        store.save(tmp_path / "run.h5", agg, layout="csr")
    store.save(tmp_path / "run.h5", agg)
    with h5py.File(tmp_path / "run.h5", "a") as f:
        f.attrs["version"] = 3
    with pytest.raises(ValueError, match="unsupported version 3"):
        store.load(tmp_path / "run.h5")


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
