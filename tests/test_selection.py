"""Channel scores and selections against NumPy references (stable sorts: ties by the lower index)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from summit_tf.aggregation.channel_selection import reduce_channels, select, top_inputs
from summit_tf.vocabulary import ACTIVATION_REDUCERS, parse_select


def ref_mass(scores: np.ndarray, tau: float, excluded: np.ndarray) -> np.ndarray:
    """SUMMIT's loop in float64: take channels by decreasing share while the share taken is < tau."""
    out = np.zeros(scores.shape, bool)
    for n, row in enumerate(scores.astype(np.float64)):
        mass = np.where(excluded, 0.0, np.maximum(row, 0.0))
        order = [c for c in np.argsort(-mass, kind="stable") if not excluded[c]]
        total = mass.sum()
        taken = 0.0
        for rank, c in enumerate(order):
            if rank > 0 and (taken >= tau * total or mass[c] <= 0):
                break
            out[n, c] = True
            taken += mass[c]
    return out


def ref_topk(scores: np.ndarray, k: int, excluded: np.ndarray) -> np.ndarray:
    out = np.zeros(scores.shape, bool)
    for n, row in enumerate(scores):
        order = [c for c in np.argsort(-row, kind="stable") if not excluded[c]]
        out[n, order[:k]] = True
    return out


def run_select(scores: np.ndarray, spec: str, excluded: np.ndarray | None = None) -> np.ndarray:
    mask = None if excluded is None else tf.constant(excluded)
    return select(tf.constant(scores, tf.float32), spec, mask).numpy()


@pytest.mark.parametrize("how", ACTIVATION_REDUCERS)
def test_reduce_channels(how):
    act = np.random.default_rng(0).normal(0.2, 1.0, (3, 11, 13, 7)).astype(np.float32)
    want = {"max": act.max(axis=(1, 2)), "mean": act.mean(axis=(1, 2), dtype=np.float64),
            "sum": act.sum(axis=(1, 2), dtype=np.float64),
            "l2": np.sqrt((act.astype(np.float64) ** 2).sum(axis=(1, 2)))}[how]
    got = reduce_channels(tf.constant(act), how).numpy()
    assert got.dtype == np.float32 and got.shape == (3, 7)
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5


def test_parse_select():
    assert parse_select("mass:0.03") == ("mass", 0.03)
    assert parse_select("topk:5") == ("topk", 5)
    assert parse_select("mass:1") == ("mass", 1.0)
    for bad in ["mass", "mass:0", "mass:1.5", "mass:x", "topk:0", "topk:2.5", "top:3", "", "topk:-1"]:
        with pytest.raises(ValueError, match="selection"):
            parse_select(bad)


def test_bad_reducer():
    with pytest.raises(ValueError, match="reducer"):
        reduce_channels(tf.zeros([1, 2, 2, 3]), "median")


@pytest.mark.parametrize("tau", [0.03, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("with_excluded", [False, True])
def test_mass_matches_reference(tau, with_excluded):
    rng = np.random.default_rng(1)
    scores = rng.gamma(0.5, 1.0, (16, 37)).astype(np.float32)
    excluded = np.zeros(37, bool)
    if with_excluded:
        excluded[[0, 5, 36]] = True
        scores[:, [0, 5, 36]] *= 50  # the largest scores: they must neither be taken nor hold mass
    got = run_select(scores, f"mass:{tau}", excluded if with_excluded else None)
    want = ref_mass(scores, tau, excluded)
    np.testing.assert_array_equal(got, want)
    assert got.sum(axis=1).min() >= 1
    assert not got[:, excluded].any()


@pytest.mark.parametrize("tau", [0.05, 0.3, 0.7, 1.0])
def test_mass_with_negative_scores_matches_reference(tau):
    """Normal scores (about half negative, holding no mass) with exclusions; some rows entirely negative,
    where only the compulsory first channel is taken (the lowest-index allowed one)."""
    rng = np.random.default_rng(int(tau * 100))
    scores = rng.normal(0.0, 1.0, (19, 23)).astype(np.float32)
    scores[[3, 11]] = -np.abs(scores[[3, 11]]) - 0.01
    excluded = np.zeros(23, bool)
    excluded[[0, 7, 8, 22]] = True
    scores[:, 7] = np.abs(scores[:, 7]) * 20  # the largest score: neither taken nor holding mass
    got = run_select(scores, f"mass:{tau}", excluded)
    np.testing.assert_array_equal(got, ref_mass(scores, tau, excluded))
    assert not got[:, excluded].any() and got.sum(axis=1).min() >= 1
    assert got[[3, 11]].sum() == 2 and got[[3, 11], 1].all()
    mixed = np.ones(19, bool)
    mixed[[3, 11]] = False
    assert not got[mixed][scores[mixed] < 0].any()  # a negative score is never taken beside positive ones


def test_mass_includes_crossing_channel():
    # exactly representable shares, so "reaches TAU" is decided without rounding
    scores = np.array([[0.5, 0.25, 0.25, 0.0], [0.125, 0.25, 0.25, 0.375]], np.float32)
    np.testing.assert_array_equal(run_select(scores, "mass:0.5"), [[1, 0, 0, 0], [0, 1, 0, 1]])
    np.testing.assert_array_equal(run_select(scores, "mass:0.625"), [[1, 1, 0, 0], [0, 1, 0, 1]])
    np.testing.assert_array_equal(run_select(scores, "mass:0.6251"), [[1, 1, 0, 0], [0, 1, 1, 1]])
    np.testing.assert_array_equal(run_select(scores, "mass:0.01"), [[1, 0, 0, 0], [0, 0, 0, 1]])


def test_mass_edge_cases():
    zeros = np.zeros((2, 5), np.float32)
    # all zero: exactly one channel, the lowest-index one that is not excluded
    np.testing.assert_array_equal(run_select(zeros, "mass:0.5"), np.eye(5, dtype=bool)[[0, 0]])
    excl = np.array([True, True, False, False, False])
    np.testing.assert_array_equal(run_select(zeros, "mass:1", excl), np.eye(5, dtype=bool)[[2, 2]])
    # zero-score channels are never taken to fill up the mass, even with tau = 1
    scores = np.array([[0.0, 2.0, 0.0, 1.0, 0.0]], np.float32)
    np.testing.assert_array_equal(run_select(scores, "mass:1"), [[0, 1, 0, 1, 0]])
    # negative scores hold no mass
    scores = np.array([[-5.0, 1.0, -1.0, 3.0]], np.float32)
    np.testing.assert_array_equal(run_select(scores, "mass:0.9"), [[0, 1, 0, 1]])
    # every channel excluded: nothing
    assert not run_select(np.ones((1, 3), np.float32), "mass:0.5", np.ones(3, bool)).any()


def test_ties_break_by_lower_index():
    scores = np.array([[1.0, 3.0, 3.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0]], np.float32)
    np.testing.assert_array_equal(run_select(scores, "topk:2"), [[0, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(run_select(scores, "mass:0.4"), [[0, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    excl = np.array([False, True, False, False, False])
    np.testing.assert_array_equal(run_select(scores, "topk:2", excl), [[0, 0, 1, 0, 1], [1, 0, 1, 0, 0]])
    values = np.array([[[1.0, 2.0, 2.0, 2.0, 0.5]]], np.float32)
    np.testing.assert_array_equal(top_inputs(tf.constant(values), 3).numpy(), [[[1, 2, 3]]])
    np.testing.assert_array_equal(top_inputs(tf.constant(values), 3, tf.constant(excl)).numpy(),
                                  [[[2, 3, 0]]])


@pytest.mark.parametrize("k", [1, 3, 12])
def test_topk_matches_reference_with_ties(k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, (20, 12)).astype(np.float32)  # many ties
    excluded = np.zeros(12, bool)
    excluded[[3, 7]] = True
    np.testing.assert_array_equal(run_select(scores, f"topk:{k}"), ref_topk(scores, k, np.zeros(12, bool)))
    got = run_select(scores, f"topk:{k}", excluded)
    np.testing.assert_array_equal(got, ref_topk(scores, k, excluded))
    assert (got.sum(axis=1) == min(k, 10)).all()


def test_top_inputs_matches_reference():
    rng = np.random.default_rng(3)
    values = rng.integers(-3, 3, (4, 9, 11)).astype(np.float32)
    excluded = np.zeros(11, bool)
    excluded[[0, 4]] = True
    got = top_inputs(tf.constant(values), 5, tf.constant(excluded)).numpy()
    assert got.dtype == np.int32 and got.shape == (4, 9, 5)
    order = np.argsort(-values, axis=-1, kind="stable")
    want = np.array([[[c for c in row if not excluded[c]][:5] for row in img] for img in order])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(top_inputs(tf.constant(values), 5).numpy(), order[..., :5])
    with pytest.raises(ValueError, match="exceeds"):
        top_inputs(tf.constant(values), 10, tf.constant(excluded))
    with pytest.raises(ValueError, match="exceeds"):
        top_inputs(tf.constant(values), 12)


def test_graph_mode():
    rng = np.random.default_rng(5)
    act = rng.gamma(1.0, 1.0, (6, 7, 7, 10)).astype(np.float32)
    excluded = np.zeros(10, bool)
    excluded[2] = True
    mask = tf.constant(excluded)

    @tf.function(input_signature=[tf.TensorSpec([None, 7, 7, 10], tf.float32)])
    def step(a):
        scores = reduce_channels(a, "max")
        return select(scores, "mass:0.3", mask), select(scores, "topk:4", mask), \
            top_inputs(tf.stack([scores, -scores], axis=1), 2, mask)

    mass, topk, top = (t.numpy() for t in step(tf.constant(act)))
    scores = act.max(axis=(1, 2))
    np.testing.assert_array_equal(mass, ref_mass(scores, 0.3, excluded))
    np.testing.assert_array_equal(topk, ref_topk(scores, 4, excluded))
    assert top.shape == (6, 2, 2) and not np.isin(top, [2]).any()


def test_bad_spec_in_select():
    with pytest.raises(ValueError, match="selection"):
        select(tf.ones([1, 4]), "mass:2")
