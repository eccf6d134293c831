"""Interventions on the Keras adapter against Keras itself: the same functional model rebuilt in float64
with the ablated channels overwritten by ``x * keep + fill`` (a 1x1 depthwise conv) and with kernel
entries zeroed in a copy of its weights (an identity skip cut: the shortcut multiplied by a channel
mask)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments import faithfulness
from summit_tf.intervene import Ablation, Intervener
from summit_tf.models import keras_model, tflite

SIZE = 13  # odd: the stride-2 SAME convs pad unevenly
LAYERS = ["c1_relu", "e_relu", "add1", "r_relu", "out2", "f", "mix"]  # the concat's branches are not layers


def build(ablated=(), skip_mask: bool = False) -> keras.Model:
    """Conv+BN+ReLU; a MobileNetV2 block (1x1+BN+ReLU6, depthwise+BN+ReLU6, 1x1+BN) summed with an identity
    skip (a layer of its own); a ResNet block (3x3/2+BN+ReLU, 3x3+BN) added to a projection shortcut
    (1x1/2+BN), then ReLU; a conv with a fused ReLU; a fused-ReLU 1x1 branch and a conv+BN+ReLU branch
    concatenated; a dense head. Layers in ``ablated`` are followed by a per-channel ``x * keep + fill``
    (a 1x1 depthwise conv ``{layer}_ablated``, set by the caller); ``skip_mask`` multiplies the identity
    shortcut by a per-channel mask (layer ``skip_mask``). Every layer is named: an automatic name would
    advance Keras's global counters and rename other tests' operations."""
    layers = keras.layers

    def after(name, x):
        return layers.DepthwiseConv2D(1, name=f"{name}_ablated")(x) if name in ablated else x

    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Conv2D(6, 3, padding="same", use_bias=False, name="c1")(inp)
    x = after("c1_relu", layers.ReLU(name="c1_relu")(layers.BatchNormalization(name="c1_bn")(x)))
    e = layers.Conv2D(9, 1, name="e")(x)
    e = after("e_relu", layers.ReLU(6.0, name="e_relu")(layers.BatchNormalization(name="e_bn")(e)))
    d = layers.DepthwiseConv2D(3, padding="same", name="dw")(e)
    d = layers.ReLU(6.0, name="dw_relu")(layers.BatchNormalization(name="dw_bn")(d))
    p = layers.BatchNormalization(name="p_bn")(layers.Conv2D(6, 1, name="p")(d))
    shortcut = layers.DepthwiseConv2D(1, use_bias=False, name="skip_mask")(x) if skip_mask else x
    s = after("add1", layers.Add(name="add1")([shortcut, p]))
    r = layers.Conv2D(7, 3, strides=2, padding="same", name="r")(s)
    r = after("r_relu", layers.ReLU(name="r_relu")(layers.BatchNormalization(name="r_bn")(r)))
    r2 = layers.BatchNormalization(name="r2_bn")(layers.Conv2D(7, 3, padding="same", name="r2")(r))
    proj = layers.BatchNormalization(name="proj_bn")(layers.Conv2D(7, 1, strides=2, name="proj")(s))
    o = after("out2", layers.ReLU(name="out2")(layers.Add(name="add2")([r2, proj])))
    f = after("f", layers.Conv2D(5, 3, padding="same", activation="relu", name="f")(o))
    g1 = layers.Conv2D(3, 1, activation="relu", name="g1")(f)
    g2 = layers.ReLU(name="g2_relu")(layers.BatchNormalization(name="g2_bn")(
        layers.Conv2D(4, 3, padding="same", name="g2")(f)))
    mix = after("mix", layers.Concatenate(name="mix")([g1, g2]))
    logits = layers.Dense(1000, name="logits")(layers.GlobalAveragePooling2D(name="gap")(mix))
    return keras.Model(inp, logits)


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(11)
    model = build()
    rng = np.random.default_rng(4)
    for layer in model.layers:  # non-trivial BatchNorm statistics: the folding is tested
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.3, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.5, 2, c)])
    adapter = keras_model._summit_model(model, "t", LAYERS, lambda t: t * 2.0 - 1.0, (-1.0, 1.0), "t")
    images = rng.uniform(0, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
    return model, adapter, images


def reference(model, images, fills=None, zero=None, skip_mask=None, rebuild=None) -> np.ndarray:
    """Logits of a rebuilt copy: ``fills[layer] = (keep, fill)``, ``zero[layer] = pairs`` of its kernel;
    ``rebuild`` builds another model than :func:`build` (no fills, no skip mask)."""
    fills = fills or {}
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")  # the reference computes in float64
    try:
        copy = rebuild() if rebuild else build(tuple(fills), skip_mask is not None)
    finally:
        keras.config.set_dtype_policy(policy)
    for layer in model.layers:
        if layer.weights:
            weights = [w.copy() for w in layer.get_weights()]
            for i, j in (zero or {}).get(layer.name, ()):
                weights[0][:, :, i, j] = 0.0
            copy.get_layer(layer.name).set_weights(weights)
    for name, (keep, fill) in fills.items():
        copy.get_layer(f"{name}_ablated").set_weights([keep[None, None, :, None], fill])
    if skip_mask is not None:
        copy.get_layer("skip_mask").set_weights([skip_mask[None, None, :, None]])
    out = copy(tf.constant(images.astype(np.float64) * 2.0 - 1.0)).numpy()
    assert out.dtype == np.float64
    return out


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def test_link_outputs_are_the_sums_each_link_reaches(net):
    _, adapter, _ = net
    assert adapter.layers == LAYERS
    kinds = {link.name: link.kind for link in adapter.links}
    assert kinds == {"e_relu": "1x1", "add1": "separable", "add1/skip/c1_relu": "identity",
                     "r_relu": "conv", "out2": "conv", "out2/skip/add1": "conv", "f": "conv",
                     "mix/g1": "1x1", "mix/g2_relu": "conv"}
    assert adapter.link_outputs == {"e_relu": "e_relu/pre_activation", "add1": "add1",
                                    "add1/skip/c1_relu": "add1", "r_relu": "r_relu/pre_activation",
                                    "out2": "out2/pre_activation", "out2/skip/add1": "out2/pre_activation",
                                    "f": "f/pre_activation", "mix/g1": "g1/pre_activation",
                                    "mix/g2_relu": "g2_relu/pre_activation"}


def test_zero_mean_and_cuts_equal_the_edited_keras_model(net):
    model, adapter, images = net
    rng = np.random.default_rng(0)
    means = {layer: rng.uniform(0.2, 2.0, adapter.channels[layer]) for layer in adapter.layers}
    chans = {"c1_relu": [1, 4], "add1": [0, 5], "r_relu": [2], "out2": [6], "f": [3], "mix": [1, 5]}
    cuts = {"e_relu": [(0, 2), (5, 8)], "add1": [(3, 1), (8, 0)], "add1/skip/c1_relu": [(2, 2), (4, 4)],
            "r_relu": [(1, 6), (5, 0)], "out2": [(0, 3), (6, 6)], "out2/skip/add1": [(2, 1), (3, 5)],
            "f": [(4, 0), (1, 4)], "mix/g1": [(0, 2), (3, 0)], "mix/g2_relu": [(2, 3), (4, 1)]}
    zero = {"e": cuts["e_relu"], "p": cuts["add1"], "r": cuts["r_relu"], "r2": cuts["out2"],
            "proj": cuts["out2/skip/add1"], "f": cuts["f"], "g1": cuts["mix/g1"], "g2": cuts["mix/g2_relu"]}
    skip = np.ones(6)
    skip[[2, 4]] = 0.0
    ablations = [Ablation(), Ablation(channels=chans), Ablation(edges=cuts),
                 Ablation(channels={"e_relu": [7]}, edges={"add1/skip/c1_relu": [(0, 0)], "f": [(2, 2)]})]
    skip0 = np.ones(6)
    skip0[0] = 0.0
    plain = reference(model, images)
    for mode in ("zero", "mean"):
        got = Intervener(adapter, mode, means).run(images, ablations)["logits"].numpy()

        def fills(spec, mode=mode):
            out = {}
            for layer, c in spec.items():
                keep = np.ones(adapter.channels[layer])
                keep[c] = 0.0
                out[layer] = (keep, (1 - keep) * (means[layer] if mode == "mean" else 0.0))
            return out

        expect = [plain, reference(model, images, fills(chans)),
                  reference(model, images, zero=zero, skip_mask=skip),
                  reference(model, images, fills({"e_relu": [7]}), {"f": [(2, 2)]}, skip0)]
        for k, ref in enumerate(expect):
            assert _rel(got[k], ref) < 1e-5, (mode, k, _rel(got[k], ref))
        for k in (1, 2, 3):  # each ablation changed the output: the reference is not the plain pass
            assert _rel(expect[k], plain) > 1e-3, (mode, k)


def test_tflite_sums_are_cut_like_keras(net, tmp_path):
    """The same model through TFLite: its residual sums (a linear ADD, an ADD with a fused ReLU shared by
    a block link and its skip link) are link outputs too, and cuts there equal the edited Keras model."""
    model, adapter, images = net
    path = tmp_path / "net.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    program = tflite.build_program([str(path)])
    program.value_range = (-1.0, 1.0)
    candidates = program.candidates  # network order (names vary with the converter): LAYERS plus g1, g2_relu
    assert len(candidates) == len(LAYERS) + 2
    lite = tflite.summit_model(program, "t", candidates[:6] + candidates[8:], program.default_layers)
    assert len(lite.layers) == len(LAYERS) and len(lite.links) == len(adapter.links)
    names = {}  # Keras link -> TFLite link: same order, kinds and (BatchNorm-folded) kernels
    for k, t in zip(adapter.links, lite.links, strict=True):
        assert k.kind == t.kind and np.allclose(k.kernel, t.kernel, atol=1e-5 * np.abs(k.kernel).max())
        names[k.name] = t.name
    outputs = {k: lite.link_outputs[names[k]] for k in ("add1", "add1/skip/c1_relu", "out2",
                                                         "out2/skip/add1")}
    assert outputs["add1"] == outputs["add1/skip/c1_relu"] == lite.layers[2]  # the linear sum itself
    assert outputs["out2"] == outputs["out2/skip/add1"] == lite.pre_activations[lite.layers[4]]
    sums = {"add1": [(3, 1), (8, 0)], "add1/skip/c1_relu": [(2, 2)], "out2": [(0, 3)],
            "out2/skip/add1": [(2, 1), (3, 5)]}
    zero = {"p": sums["add1"], "r2": sums["out2"], "proj": sums["out2/skip/add1"]}
    got = Intervener(lite, "zero").run(images, [Ablation(edges={names[k]: v for k, v in sums.items()})])
    skip = np.ones(6)
    skip[2] = 0.0
    ref = reference(model, images, zero=zero, skip_mask=skip)
    assert _rel(got["logits"][0].numpy(), ref) < 1e-5
    assert _rel(ref, reference(model, images)) > 1e-3


def test_batched_masks_equal_one_at_a_time(net):
    _, adapter, images = net
    rng = np.random.default_rng(1)
    means = {layer: rng.uniform(0, 1, adapter.channels[layer]) for layer in adapter.layers}
    links = {link.name: link for link in adapter.links}

    def pairs(name):
        return [(int(i), int(j)) for i, j in zip(rng.integers(links[name].cin, size=3),
                                                 rng.integers(links[name].cout, size=3), strict=True)]

    ablations = [Ablation(channels={layer: rng.choice(adapter.channels[layer], 2, replace=False).tolist()
                                    for layer in adapter.layers[::2]},
                          edges={name: pairs(name) for name in ("out2", "out2/skip/add1", "mix/g2_relu")})
                 for _ in range(2)]
    iv = Intervener(adapter, "mean", means)
    keys = ["logits", "out2", "f/pre_activation", "mix/pre_activation"]
    batched = iv.run(images, ablations, keys)
    traces = iv.traces()  # the first trace builds the fused layers' twins: TF traces it again, once
    for k, a in enumerate(ablations):
        alone = iv.run(images, [a], keys)
        for key in keys:
            np.testing.assert_allclose(batched[key][k].numpy(), alone[key][0].numpy(), rtol=1e-5, atol=1e-5)
    plain = iv.run(images[:2], [Ablation()], keys)
    # no new trace for another mask count, cut size or batch (a trace per class graph held 0.2-0.5 GB)
    assert iv.traces() == traces <= 2
    want = adapter.tensors(images[:2], keys)
    for key in keys:  # the call-by-call run is the Keras model's own forward pass
        np.testing.assert_allclose(plain[key][0].numpy(), want[key].numpy(), rtol=1e-5, atol=1e-5)


def build_valid() -> keras.Model:
    """Conv with a fused ReLU, then a 3x3 stride-2 VALID conv+BN+ReLU (13 -> 6), a dense head."""
    layers = keras.layers
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Conv2D(5, 3, padding="same", activation="relu", name="v1")(inp)
    v = layers.Conv2D(6, 3, strides=2, padding="valid", name="v2")(x)
    v = layers.ReLU(name="v2_relu")(layers.BatchNormalization(name="v2_bn")(v))
    pooled = layers.GlobalAveragePooling2D(name="v_gap")(v)
    return keras.Model(inp, layers.Dense(1000, name="v_logits")(pooled))


def test_edge_cuts_on_a_valid_conv_equal_the_edited_keras_model(net):
    """Cuts of a 3x3 stride-2 VALID link (the per-mask conv of the cut inputs): three masks at once equal
    the float64 Keras copy with those kernel entries zeroed."""
    _, _, images = net
    keras.utils.set_random_seed(12)
    model = build_valid()
    rng = np.random.default_rng(6)
    model.get_layer("v2_bn").set_weights([rng.uniform(0.5, 2, 6), rng.normal(0, 0.3, 6),
                                          rng.normal(0, 0.2, 6), rng.uniform(0.5, 2, 6)])
    adapter = keras_model._summit_model(model, "v", ["v1", "v2_relu"], lambda t: t * 2.0 - 1.0, (-1.0, 1.0),
                                        "v")
    (link,) = adapter.links
    assert (link.name, link.kind, link.padding, link.stride, link.kernel.shape) == \
        ("v2_relu", "conv", "VALID", 2, (3, 3, 5, 6))
    cuts = [[(0, 2), (4, 5)], [(1, 0), (1, 3), (3, 3)], []]
    got = Intervener(adapter, "zero").run(images, [Ablation(edges={"v2_relu": c}) for c in cuts])
    plain = reference(model, images, rebuild=build_valid)
    for k, pairs in enumerate(cuts):
        ref = reference(model, images, zero={"v2": pairs}, rebuild=build_valid)
        assert _rel(got["logits"][k].numpy(), ref) < 1e-5, (k, _rel(got["logits"][k].numpy(), ref))
        assert (_rel(ref, plain) > 1e-3) == bool(pairs)


def test_faithfulness_scoring_runs_on_a_keras_model(net):
    _, adapter, images = net
    doc = {"out2": [{"channel": 1, "prev_channels": [{"prev_channel": 0, "inf": 1}]}],
           "f": [{"channel": 2, "prev_channels": [{"prev_channel": 1, "inf": 1},
                                                  {"prev_channel": 6, "inf": 1}]}],
           "mix": [{"channel": 4, "prev_channels": [{"prev_channel": 0, "inf": 1}]}]}
    graph = faithfulness.graph_targets(doc, adapter, "t")
    assert graph.edges == {"out2": [(0, 1)], "f": [(1, 2), (6, 2)], "mix/g2_relu": [(0, 1)]}
    assert not graph.uncut_edges
    labels = np.array([0, 0, 3])
    held = faithfulness.HeldOut(adapter, images, labels, adapter.class_to_output[labels].astype(np.int32),
                                "zero", None, 2, 4)
    rows, summaries, raw = faithfulness.score(held, {0: graph}, 2, np.random.default_rng(0))
    assert [r.condition for r in rows] == list(faithfulness.CONDITIONS)
    assert raw["p-0"].shape == (6, 3) and np.isfinite(raw["p-0"]).all()
    assert summaries[0]["edges"]["size"] == 4
