"""Objectives and the default optimizer of feature_vis against float64 NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from feature_vis import lucid_adam
from feature_vis import objectives as obj


@pytest.fixture
def acts():
    rng = np.random.default_rng(11)
    layer = rng.normal(size=(6, 5, 7, 9))
    images = rng.random((6, 13, 11, 3))
    return {"layer": layer, "input": images}


def evaluate(objective, acts):
    return objective({k: tf.constant(v, tf.float32) for k, v in acts.items()}).numpy().astype(np.float64)


def test_channel_per_image_and_shared(acts):
    chans = [0, 3, 8, 1, 1, 5]
    expected = np.array([acts["layer"][b, :, :, c].mean() for b, c in enumerate(chans)])
    np.testing.assert_allclose(evaluate(obj.channel("layer", chans), acts), expected, rtol=1e-5)
    np.testing.assert_allclose(evaluate(obj.channel("layer", 4), acts), acts["layer"][..., 4].mean((1, 2)),
                               rtol=1e-5)


def test_neuron_is_centre(acts):
    chans = [2, 2, 0, 8, 4, 7]
    expected = np.array([acts["layer"][b, 2, 3, c] for b, c in enumerate(chans)])  # 5 // 2, 7 // 2
    np.testing.assert_allclose(evaluate(obj.neuron("layer", chans), acts), expected, rtol=1e-6)
    np.testing.assert_allclose(evaluate(obj.neuron("layer", 1, row=4, col=0), acts),
                               acts["layer"][:, 4, 0, 1], rtol=1e-6)


def test_direction_shared_and_per_image(acts):
    rng = np.random.default_rng(2)
    vec, vecs = rng.normal(size=9), rng.normal(size=(6, 9))
    np.testing.assert_allclose(evaluate(obj.direction("layer", vec), acts),
                               (acts["layer"] @ vec).mean((1, 2)), rtol=1e-4)
    expected = np.einsum("bhwc,bc->bhw", acts["layer"], vecs).mean((1, 2))
    np.testing.assert_allclose(evaluate(obj.direction("layer", vecs), acts), expected, rtol=1e-4, atol=1e-6)


def lucid_diversity(layer: np.ndarray) -> float:
    """Lucid's diversity of one batch, written out: normalized Gram matrices, sum of pairwise dots / n."""
    n = layer.shape[0]
    grams = []
    for b in range(n):
        flat = layer[b].reshape(-1, layer.shape[-1])
        g = flat.T @ flat
        grams.append(g / np.sqrt(max((g * g).sum(), 1e-10)))
    return sum((grams[i] * grams[j]).sum() for i in range(n) for j in range(n) if i != j) / n


def test_diversity_groups_sum_to_lucid(acts):
    values = evaluate(obj.diversity("layer", 3), acts)
    assert values.shape == (6,)
    for g in range(2):
        group = acts["layer"][3 * g:3 * g + 3]
        assert values[3 * g:3 * g + 3].sum() == pytest.approx(lucid_diversity(group), rel=1e-5)
    # Identical images are maximally similar: every pair has cosine 1.
    same = {"layer": np.repeat(acts["layer"][:1], 4, 0)}
    np.testing.assert_allclose(evaluate(obj.diversity("layer", 4), same), 3 / 4, rtol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        evaluate(obj.diversity("layer", 4), acts)
    # Restricted to some images (one group of 2 at rows 4, 1): 0 elsewhere, the group's own value there.
    part = evaluate(obj.diversity("layer", 2, images=[4, 1]), acts)
    pair = acts["layer"][[4, 1]]
    assert part[[0, 2, 3, 5]].tolist() == [0.0] * 4
    assert part[4] == pytest.approx(lucid_diversity(pair) / 2, rel=1e-5) and part[1] == pytest.approx(part[4])


def test_diverse_layer_channels_is_lucid_group_objective(acts):
    acts = {**acts, "other": acts["layer"][..., :4] ** 2}
    pairs = [("layer", 2)] * 3 + [("other", 1)] * 3
    values = evaluate(obj.diverse_layer_channels(pairs, 3), acts)
    for g, (layer, c) in enumerate(pairs[::3]):
        group = acts[layer][3 * g:3 * g + 3]
        lucid = group[..., c].mean() - 1e2 * lucid_diversity(group)
        assert values[3 * g:3 * g + 3].sum() == pytest.approx(lucid, rel=1e-5)


def test_diverse_channels_read_the_channel_from_the_pre_activation(acts):
    """Lucid's ``channel("mixed4a_pre_relu", n) - 1e2 * diversity("mixed4a")``: the channel term from the
    tensor named in ``tensors`` (here a different array), the diversity from the layer itself."""
    rng = np.random.default_rng(5)
    acts = {**acts, "other": acts["layer"][..., :4] ** 2, "pre": rng.normal(0.5, 2.0, acts["layer"].shape)}
    pairs = [("layer", 2)] * 3 + [("other", 1)] * 3
    objective = obj.diverse_layer_channels(pairs, 3, tensors={"layer": "pre"})
    assert objective.keys == {"layer", "other", "pre"}
    values = evaluate(objective, acts)
    for g, (layer, c, read) in enumerate([("layer", 2, "pre"), ("other", 1, "other")]):
        rows = slice(3 * g, 3 * g + 3)
        lucid = acts[read][rows][..., c].mean() - 1e2 * lucid_diversity(acts[layer][rows])
        assert values[rows].sum() == pytest.approx(lucid, rel=1e-5)
    one = obj.diverse_channels("layer", 4, 3, channel_tensor="pre")
    assert one.keys == {"layer", "pre"}
    got = evaluate(one, acts)
    for rows in (slice(0, 3), slice(3, 6)):
        lucid = acts["pre"][rows][..., 4].mean() - 1e2 * lucid_diversity(acts["layer"][rows])
        assert got[rows].sum() == pytest.approx(lucid, rel=1e-5)


def test_layer_channels_mixes_layers(acts):
    acts = {**acts, "other": acts["layer"][..., :4] ** 2}
    pairs = [("layer", 0), ("other", 3), ("layer", 8), ("other", 0), ("other", 2), ("layer", 5)]
    expected = [acts[layer][b, :, :, c].mean() for b, (layer, c) in enumerate(pairs)]
    np.testing.assert_allclose(evaluate(obj.layer_channels(pairs), acts), expected, rtol=1e-5)
    np.testing.assert_allclose(evaluate(obj.layer_channels([("layer", 1)] * 6), acts),
                               acts["layer"][..., 1].mean((1, 2)), rtol=1e-5)


def test_channel_table_follows_its_variables(acts):
    acts = {**acts, "other": acts["layer"][..., :4] ** 2}
    layer_of = tf.Variable(np.zeros(6, np.int32))
    channels = tf.Variable(np.zeros(6, np.int32))
    objective = tf.function(obj.channel_table(["layer", "other"], layer_of, channels))
    tensors = {k: tf.constant(v, tf.float32) for k, v in acts.items()}
    for pairs in ([("layer", 0), ("other", 3), ("layer", 8), ("other", 0), ("other", 2), ("layer", 5)],
                  [("other", 1), ("other", 1), ("layer", 7), ("layer", 2), ("other", 3), ("other", 0)]):
        layer_of.assign([["layer", "other"].index(layer) for layer, _ in pairs])
        channels.assign([c for _, c in pairs])
        expected = [acts[layer][b, :, :, c].mean() for b, (layer, c) in enumerate(pairs)]
        np.testing.assert_allclose(objective(tensors).numpy(), expected, rtol=1e-5)
    assert objective.experimental_get_tracing_count() == 1
    # Images of other layers get no gradient from a layer's term.
    with tf.GradientTape() as tape:
        tape.watch(tensors["layer"])
        value = tf.reduce_sum(objective(tensors))
    grad = tape.gradient(value, tensors["layer"]).numpy()
    assert np.all(grad[[0, 1, 4, 5]] == 0) and np.all(grad[2, ..., 7] == 1 / 35)


def test_penalties(acts):
    x = acts["input"]
    np.testing.assert_allclose(evaluate(obj.l1(constant=0.5), acts), np.abs(x - 0.5).sum((1, 2, 3)),
                               rtol=1e-5)
    np.testing.assert_allclose(evaluate(obj.l2(), acts), np.sqrt(1e-6 + (x ** 2).sum((1, 2, 3))), rtol=1e-5)
    tv = np.abs(np.diff(x, axis=1)).sum((1, 2, 3)) + np.abs(np.diff(x, axis=2)).sum((1, 2, 3))
    np.testing.assert_allclose(evaluate(obj.total_variation(), acts), tv, rtol=1e-5)


def test_arithmetic_composes_per_image(acts):
    a, b = obj.channel("layer", 1), obj.channel("layer", 2)
    va, vb = evaluate(a, acts), evaluate(b, acts)
    weights = np.arange(6, dtype=np.float32)
    cases = [
        (a + b, va + vb), (a - b, va - vb), (2 * a - 0.5 * b + 3, 2 * va - 0.5 * vb + 3),
        (1 - a, 1 - va), (-a, -va), (a * b, va * vb), (weights * a, weights * va), (3 + a, 3 + va),
    ]
    for objective, expected in cases:
        np.testing.assert_allclose(evaluate(objective, acts), expected, rtol=1e-5, atol=1e-6)
    assert repr(2 * a - b) == "(2 * channel(layer, 1) - channel(layer, 2))"
    assert "weights[6]" in repr(weights * obj.channel("layer", list(range(6))))


def test_default_optimizer_steps_as_tf1_adam():
    """Lucid's optimizer was TF1's AdamOptimizer; the default reproduces its first steps (float64 NumPy
    reference of TF1's update: epsilon outside the bias correction, 1e-8)."""
    rng = np.random.default_rng(0)
    target = rng.normal(size=(4, 3))
    var = tf.Variable(np.zeros((4, 3), np.float32))
    adam = lucid_adam(0.05)
    x, m, v = np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((4, 3))
    for t in range(1, 8):
        grad = 2 * (x - target) * (1 + t)  # changing scale exercises the moment estimates
        adam.apply_gradients([(tf.constant(grad, tf.float32), var)])
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad ** 2
        x = x - 0.05 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-8)
        np.testing.assert_allclose(var.numpy(), x, rtol=1e-4, atol=1e-6)
