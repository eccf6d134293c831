"""Grouped top-k influence: identical indices to a float64 NumPy reference and to the unfused path."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from summit_tf.aggregation import influence_topk
from summit_tf.aggregation.channel_selection import top_inputs
from summit_tf.aggregation.influence import link_influence
from summit_tf.aggregation.influence_topk import top_influence
from summit_tf.models.base import Link

B, COUT = 3, 11


def make_link(cin: int, rng: np.random.Generator, quantized: bool, kind: str = "separable") -> Link:
    """Random non-zero kernel; quantized to a few levels (zeros included) so many products tie."""
    if quantized:
        kernel = rng.integers(-3, 4, (1, 1, cin, COUT)).astype(np.float32) * 0.5
    else:
        kernel = rng.normal(0, 0.5, (1, 1, cin, COUT)).astype(np.float32)
    return Link("l", src="a", dst="b", input="a", kernel=kernel, kind=kind)


def make_input(cin: int, rng: np.random.Generator, quantized: bool, h: int = 5, w: int = 7) -> np.ndarray:
    if quantized:
        return rng.integers(-2, 5, (B, h, w, cin)).astype(np.float32) * 0.25
    return rng.normal(0.3, 1.0, (B, h, w, cin)).astype(np.float32)


def reference(x: np.ndarray, kernel: np.ndarray, reduce: str, step: int, k: int,
              excluded: np.ndarray | None) -> np.ndarray:
    """float64 closed-form values, ranked by (value desc, index asc) with np.lexsort; ``[B, Cout, k]``."""
    xs = x[:, ::step, ::step, :].astype(np.float64)
    kt = kernel[0, 0].astype(np.float64).T[None]  # [1, Cout, Cin]
    if reduce == "max":
        values = np.where(kt >= 0, kt * xs.max(axis=(1, 2))[:, None], kt * xs.min(axis=(1, 2))[:, None])
    elif reduce == "sum":
        values = kt * xs.sum(axis=(1, 2))[:, None]
    else:
        values = np.abs(kt) * np.sqrt((xs * xs).sum(axis=(1, 2)))[:, None]
    if excluded is not None:
        values = np.where(excluded, -np.inf, values)
    index = np.broadcast_to(np.arange(values.shape[-1]), values.shape)
    order = np.lexsort((index, -values), axis=-1)  # last key first: value desc, then index asc
    return order[..., :k]


def unfused(x: np.ndarray, link: Link, reduce: str, stride: int, k: int,
            excluded: np.ndarray | None) -> np.ndarray:
    mask = None if excluded is None else tf.constant(excluded)
    return top_inputs(link_influence(tf.constant(x), link, reduce, stride), k, mask).numpy()


def fused(x: np.ndarray, link: Link, reduce: str, stride: int, k: int,
          excluded: np.ndarray | None) -> np.ndarray:
    mask = None if excluded is None else tf.constant(excluded)
    return top_influence(tf.constant(x), link, reduce, stride, k, mask).numpy()


@pytest.mark.parametrize("cin", [37, 129])
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("reduce", ["max", "sum", "l2"])
def test_matches_reference_random(cin: int, k: int, reduce: str) -> None:
    """Cin 37 with k 5 is the fallback (k * GROUP > Cin); the others take the grouped path."""
    rng = np.random.default_rng(cin * 10 + k)
    link, x = make_link(cin, rng, quantized=False), make_input(cin, rng, quantized=False)
    got = fused(x, link, reduce, 1, k, None)
    assert got.dtype == np.int32 and got.shape == (B, COUT, k)
    np.testing.assert_array_equal(got, reference(x, link.kernel, reduce, 1, k, None))
    np.testing.assert_array_equal(got, unfused(x, link, reduce, 1, k, None))


@pytest.mark.parametrize("cin", [37, 129])
@pytest.mark.parametrize("reduce", ["max", "sum", "l2"])
@pytest.mark.parametrize("stride", [1, 2])
def test_ties_and_exclusions(cin: int, reduce: str, stride: int) -> None:
    """Quantized data: many equal values, so the index order decides."""
    rng = np.random.default_rng(cin + stride)
    link, x = make_link(cin, rng, quantized=True), make_input(cin, rng, quantized=True)
    excluded = rng.random(cin) < 0.3
    excluded[:3] = True  # the lowest indices, which would win most ties
    values = link_influence(tf.constant(x), link, reduce, stride).numpy()
    assert (np.diff(np.sort(values, axis=-1), axis=-1) == 0).mean() > 0.1  # many ties
    for mask in (None, excluded):
        got = fused(x, link, reduce, stride, 4, mask)
        if reduce != "l2":  # exact arithmetic in float32 too; l2's square roots are not
            np.testing.assert_array_equal(got, reference(x, link.kernel, reduce, stride, 4, mask))
        np.testing.assert_array_equal(got, unfused(x, link, reduce, stride, 4, mask))
        if mask is not None:
            assert not mask[got].any()


def test_tied_groups_choose_lower_index() -> None:
    """Equal group maxima in every group: only the lower-index rule can pick the right groups."""
    cin = 67  # 9 groups of 8, the last padded
    kernel = np.ones((1, 1, cin, COUT), np.float32)
    x = np.zeros((B, 3, 3, cin), np.float32)
    x[:, 0, 0, ::2] = 1.0  # every even input has value 1, every odd one 0
    link = Link("l", src="a", dst="b", input="a", kernel=kernel, kind="1x1")
    got = fused(x, link, "max", 1, 5, None)
    np.testing.assert_array_equal(got, np.broadcast_to([0, 2, 4, 6, 8], (B, COUT, 5)))
    excluded = np.zeros(cin, bool)
    excluded[:40] = True
    np.testing.assert_array_equal(fused(x, link, "max", 1, 5, excluded),
                                  np.broadcast_to([40, 42, 44, 46, 48], (B, COUT, 5)))


def test_fallbacks_match_unfused() -> None:
    """k * GROUP >= Cin, k above MAX_K, and k x k links use the plain path: same indices."""
    rng = np.random.default_rng(7)
    cin = 37
    link, x = make_link(cin, rng, quantized=True), make_input(cin, rng, quantized=True)
    for k in (5, influence_topk.MAX_K + 1):
        assert k * influence_topk.GROUP >= cin or k > influence_topk.MAX_K
        np.testing.assert_array_equal(fused(x, link, "max", 1, k, None),
                                      reference(x, link.kernel, "max", 1, k, None))
    conv = Link("c", src="a", dst="b", input="a", kernel=rng.normal(0, 1, (3, 3, 17, 5)).astype(np.float32))
    xc = rng.normal(0, 1, (2, 7, 7, 17)).astype(np.float32)
    np.testing.assert_array_equal(fused(xc, conv, "max", 1, 3, None), unfused(xc, conv, "max", 1, 3, None))


@pytest.mark.parametrize("k,grouped", [(influence_topk.MAX_K, True), (influence_topk.MAX_K + 1, False)])
def test_max_k_bounds_the_grouped_path(monkeypatch, k: int, grouped: bool) -> None:
    """Cin 257 has more than k * GROUP inputs for both k: only MAX_K decides the path (a spy counts the
    grouped calls), and both give the float64 reference, with exclusions."""
    cin = 257
    assert k * influence_topk.GROUP < cin
    calls = []
    real = influence_topk._grouped_top
    monkeypatch.setattr(influence_topk, "_grouped_top", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(k)
    link, x = make_link(cin, rng, quantized=False), make_input(cin, rng, quantized=False)
    excluded = rng.random(cin) < 0.2
    got = fused(x, link, "max", 1, k, excluded)
    assert len(calls) == int(grouped)
    assert got.shape == (B, COUT, k)
    np.testing.assert_array_equal(got, reference(x, link.kernel, "max", 1, k, excluded))


def test_inside_tf_function_with_unknown_batch() -> None:
    """The engine traces with ``[None, H, W, C]``; one trace serves several batch sizes."""
    rng = np.random.default_rng(3)
    link = make_link(129, rng, quantized=True)
    excluded = tf.constant(rng.random(129) < 0.2)
    step = tf.function(lambda x: top_influence(x, link, "max", 1, 5, excluded),
                       input_signature=[tf.TensorSpec([None, 5, 7, 129], tf.float32)])
    for batch in (1, 4):
        x = rng.integers(-2, 5, (batch, 5, 7, 129)).astype(np.float32)
        np.testing.assert_array_equal(step(tf.constant(x)).numpy(),
                                      reference(x, link.kernel, "max", 1, 5, excluded.numpy()))


def test_errors_match_top_inputs() -> None:
    rng = np.random.default_rng(5)
    link, x = make_link(129, rng, quantized=False), tf.constant(make_input(129, rng, quantized=False))
    with pytest.raises(ValueError, match="top-k"):
        top_influence(x, link, "max", 1, 0)
    excluded = np.ones(129, bool)
    excluded[:3] = False
    with pytest.raises(ValueError, match="non-excluded"):
        top_influence(x, link, "max", 1, 4, tf.constant(excluded))
    with pytest.raises(ValueError, match="reducer"):
        top_influence(x, link, "mean", 1, 5)
    with pytest.raises(ValueError, match="stride"):
        top_influence(x, link, "max", 0, 5)
