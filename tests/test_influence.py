"""Influence kernels against a float64 SciPy reference (one correlate2d per pair), every kind and reducer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import tensorflow as tf

from summit_tf.aggregation import influence
from summit_tf.aggregation.channel_selection import top_inputs
from summit_tf.aggregation.influence import link_influence
from summit_tf.models.base import Link
from summit_tf.vocabulary import INFLUENCE_REDUCERS

CIN, COUT = 5, 7


def tf_out_and_pads(size: int, k: int, step: int, padding: str) -> tuple[int, int, int]:
    """TF's output size and (before, after) padding, written out from the TF documentation."""
    if padding == "VALID":
        return (size - k) // step + 1, 0, 0
    out = -(-size // step)
    total = max((out - 1) * step + k - size, 0)
    return out, total // 2, total - total // 2


def reference(x: np.ndarray, kernel: np.ndarray, step: int, padding: str, reduce: str) -> np.ndarray:
    """float64 ``[B, Cout, Cin]``: correlate2d of each (i, j) pair, strided, reduced over space."""
    x, kernel = x.astype(np.float64), kernel.astype(np.float64)
    b, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape
    ho, top, bottom = tf_out_and_pads(h, kh, step, padding)
    wo, left, right = tf_out_and_pads(w, kw, step, padding)
    xp = np.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)])
    out = np.zeros((b, cout, cin))
    for n in range(b):
        for i in range(cin):
            for j in range(cout):
                full = scipy.signal.correlate2d(xp[n, :, :, i], kernel[:, :, i, j], mode="valid")
                m = full[::step, ::step][:ho, :wo]
                assert m.shape == (ho, wo)
                if reduce == "max":
                    out[n, j, i] = m.max()
                elif reduce == "sum":
                    out[n, j, i] = m.sum()
                else:
                    out[n, j, i] = np.sqrt((m * m).sum())
    return out


def make_link(kh: int, kw: int, stride: int, padding: str, kind: str, seed: int) -> Link:
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 0.5, (kh, kw, CIN, COUT)).astype(np.float32)
    return Link("l", src="a", dst="b", input="a", kernel=kernel, stride=stride, padding=padding, kind=kind)


def random_input(h: int, w: int, seed: int, batch: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    return (rng.normal(0.3, 1.0, (batch, h, w, CIN))).astype(np.float32)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    scale = np.abs(want).max()
    assert scale > 0
    err = np.abs(got.astype(np.float64) - want).max() / scale
    assert err < 1e-5, f"relative error {err:.2e}"


def assert_same_top(got: np.ndarray, want: np.ndarray, k: int) -> None:
    """top_inputs on the kernel values equals a stable NumPy argsort on the float64 reference."""
    idx = top_inputs(tf.constant(got, tf.float32), k).numpy()
    ref = np.argsort(-want, axis=-1, kind="stable")[..., :k]
    np.testing.assert_array_equal(idx, ref)


CONV_CASES = [  # (h, w, kh, kw, link stride, padding, influence stride)
    (13, 13, 3, 3, 1, "SAME", 1),
    (11, 13, 3, 3, 2, "SAME", 1),
    (13, 11, 5, 5, 1, "SAME", 1),
    (13, 13, 2, 2, 1, "SAME", 1),
    (11, 11, 2, 2, 2, "SAME", 1),
    (13, 13, 4, 4, 1, "SAME", 3),
    (13, 13, 3, 3, 1, "VALID", 1),
    (11, 13, 3, 3, 2, "VALID", 1),
    (13, 13, 5, 5, 1, "VALID", 3),
    (13, 13, 3, 3, 1, "SAME", 3),  # SUMMIT: stride-1 convs evaluated at stride 3, SAME
    (11, 11, 3, 5, 3, "SAME", 1),
    (12, 13, 1, 1, 2, "SAME", 1),  # 1x1 stride-2 convs of kind "conv" (ResNet projection shortcuts)
    (13, 11, 1, 1, 2, "VALID", 1),
]


@pytest.mark.parametrize("reduce", INFLUENCE_REDUCERS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_link_matches_reference(case, reduce):
    h, w, kh, kw, link_stride, padding, stride = case
    seed = CONV_CASES.index(case)
    link = make_link(kh, kw, link_stride, padding, "conv", seed)
    x = random_input(h, w, seed)
    got = link_influence(tf.constant(x), link, reduce, stride).numpy()
    want = reference(x, link.kernel, link_stride * stride, padding, reduce)
    assert_close(got, want)
    assert_same_top(got, want, 3)


@pytest.mark.parametrize("reduce", INFLUENCE_REDUCERS)
@pytest.mark.parametrize("kind", ["1x1", "separable"])
@pytest.mark.parametrize("link_stride,stride,padding", [(1, 1, "SAME"), (2, 1, "SAME"), (1, 3, "SAME"),
                                                        (1, 2, "VALID")])
def test_pointwise_link_matches_reference(kind, reduce, link_stride, stride, padding):
    link = make_link(1, 1, link_stride, padding, kind, seed=7)
    x = random_input(13, 11, seed=3)
    got = link_influence(tf.constant(x), link, reduce, stride).numpy()
    want = reference(x, link.kernel, link_stride * stride, padding, reduce)
    assert_close(got, want)
    assert_same_top(got, want, 4)


def test_pointwise_max_is_exact_per_pair_max():
    """The closed form equals the float32 max of the float32 products bit for bit."""
    link = make_link(1, 1, 1, "SAME", "1x1", seed=11)
    x = random_input(11, 11, seed=11)
    got = link_influence(tf.constant(x), link, "max").numpy()
    products = x[:, :, :, :, None] * link.kernel[0, 0][None, None, None]  # [B, H, W, Cin, Cout]
    np.testing.assert_array_equal(got, products.max(axis=(1, 2)).transpose(0, 2, 1))


@pytest.mark.parametrize("budget,hint", [(1, 32), (6, 2), (1000, 32)], ids=[
    "1 image x 1 output",
    "unknown batch: chunks of 2+2+1 images x blocks of 3+3+1 outputs; known batch: 5 images x 1 output",
    "5 images x 7 outputs"])
@pytest.mark.parametrize("static_batch", [True, False])
def test_conv_max_in_blocks(monkeypatch, budget, hint, static_batch):
    """Blocks of images x output channels (``CHUNK_BYTES`` in units of one image's maps of one output,
    ``BATCH_HINT`` images at most where the batch is unknown) all give the float64 reference, bit-identical
    to one another; odd sizes, a short last chunk and a short last block."""
    link = make_link(3, 3, 1, "SAME", "conv", seed=5)
    x = random_input(11, 13, seed=5, batch=5)
    per_image = 11 * 13 * CIN * 4
    monkeypatch.setattr(influence, "CHUNK_BYTES", budget * per_image)
    monkeypatch.setattr(influence, "BATCH_HINT", hint)
    if static_batch:
        got = link_influence(tf.constant(x), link, "max").numpy()
    else:
        spec = tf.TensorSpec([None, 11, 13, CIN], tf.float32)
        got = tf.function(lambda v: link_influence(v, link, "max"), input_signature=[spec])(x).numpy()
    want = reference(x, link.kernel, 1, "SAME", "max")
    assert_close(got, want)
    monkeypatch.setattr(influence, "CHUNK_BYTES", 1)
    np.testing.assert_array_equal(got, link_influence(tf.constant(x), link, "max").numpy())


@pytest.mark.parametrize("kind,k", [("conv", 3), ("1x1", 1)])
def test_graph_mode_with_unknown_batch(kind, k):
    link = make_link(k, k, 1, "SAME", kind, seed=2)
    x = random_input(13, 13, seed=2, batch=3)

    @tf.function(input_signature=[tf.TensorSpec([None, 13, 13, CIN], tf.float32)])
    def step(images):
        return {r: top_inputs(link_influence(images, link, r), 2) for r in INFLUENCE_REDUCERS}

    out = step(tf.constant(x))
    for r in INFLUENCE_REDUCERS:
        want = np.argsort(-reference(x, link.kernel, 1, "SAME", r), axis=-1, kind="stable")[..., :2]
        np.testing.assert_array_equal(out[r].numpy(), want)


def test_bad_arguments():
    link = make_link(3, 3, 1, "SAME", "conv", seed=1)
    x = tf.zeros([1, 5, 5, CIN])
    with pytest.raises(ValueError, match="reducer"):
        link_influence(x, link, "mean")
    with pytest.raises(ValueError, match="stride"):
        link_influence(x, link, "max", stride=0)
    with pytest.raises(ValueError, match="input"):
        link_influence(tf.zeros([1, 5, 5, CIN + 1]), link)
    with pytest.raises(ValueError, match="1x1"):
        link_influence(x, make_link(3, 3, 1, "SAME", "separable", seed=1))


@pytest.mark.parametrize("reduce", INFLUENCE_REDUCERS)
def test_identity_link_has_only_diagonal_pairs(reduce: str) -> None:
    """A residual shortcut (or a per-channel scale): output j reads input j only. The pairs (j, j) match the
    float64 reference of their map ``K_jj X_j``; the others do not exist (-inf); top-k has one candidate."""
    from summit_tf.aggregation.influence_topk import top_influence

    rng = np.random.default_rng(11)
    c = 9
    kernel = np.zeros((1, 1, c, c), np.float32)
    kernel[0, 0, np.arange(c), np.arange(c)] = rng.normal(0, 1, c)
    link = Link("add/skip/x", src="x", dst="add", input="x", kernel=kernel, kind="identity")
    x = rng.normal(0, 1, (3, 7, 5, c)).astype(np.float32)
    got = link_influence(x, link, reduce, stride=2).numpy()
    expected = reference(x, kernel, 2, "SAME", reduce)
    diagonal = np.eye(c, dtype=bool)
    np.testing.assert_allclose(got[:, diagonal], expected[:, diagonal], rtol=1e-5, atol=1e-6)
    assert np.all(got[:, ~diagonal] == -np.inf)
    for k in (1, 5, 12):  # any k: the one candidate
        top = top_influence(x, link, reduce, 2, k).numpy()
        assert top.shape == (3, c, 1) and np.array_equal(top[:, :, 0], np.broadcast_to(np.arange(c), (3, c)))
    with pytest.raises(ValueError, match="diagonal"):
        Link("bad", src="x", dst="add", input="x", kernel=np.ones((1, 1, c, c), np.float32), kind="identity")
