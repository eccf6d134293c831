"""Keras adapter: layers and exact links (BatchNorm folded) from .keras files, SavedModels, applications."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from summit_tf.models import keras_model, registry, relu_gradients


def small_model() -> keras.Model:
    """Conv+BN+ReLU, depthwise+BN+ReLU6 then 1x1+BN+ReLU6, SeparableConv2D, ZeroPadding2D + VALID stride-2
    conv, a 3x3 branch and a 1x1 branch concatenated, global pooling, dense logits."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((31, 31, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(inp)
    x = keras.layers.ReLU(name="c1_relu")(keras.layers.BatchNormalization(name="c1_bn")(x))
    d = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    d = keras.layers.ReLU(6.0, name="dw_relu")(keras.layers.BatchNormalization(name="dw_bn")(d))
    p = keras.layers.Conv2D(12, 1, name="pw")(d)
    p = keras.layers.ReLU(6.0, name="pw_relu")(keras.layers.BatchNormalization(name="pw_bn")(p))
    s = keras.layers.SeparableConv2D(10, 3, padding="same", activation="relu", name="sep")(p)
    z = keras.layers.Conv2D(14, 3, strides=2, padding="valid", activation="relu", name="down")(
        keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(s))
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="mix_3x3")(z)
    b = keras.layers.Conv2D(4, 1, activation="relu", name="mix_1x1")(z)
    m = keras.layers.Concatenate(name="mix")([a, b])
    out = keras.layers.Dense(5, name="logits")(keras.layers.GlobalAveragePooling2D()(m))
    model = keras.Model(inp, out)
    for layer in model.layers:  # non-trivial BatchNorm statistics, so folding is tested
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.3, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.5, 2, c)])
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = small_model()
    path = tmp_path_factory.mktemp("keras") / "small.keras"
    model.save(path)
    return model, path


ALL = ["c1_relu", "pw_relu", "sep", "down", "mix_3x3", "mix_1x1", "mix"]


def assert_links_exact(model, images, rel: float = 1e-5) -> int:
    """Where the destination unit is not clamped, ``link kernel (*) link input`` differs from it by a
    per-channel constant (bias and BatchNorm shift): the link is the whole linear piece. Returns how many
    links had enough live units to check."""
    feats = model.features(images)
    checked = 0
    for link in model.links:
        x = feats[link.input].numpy().astype(np.float64)
        conv = tf.nn.conv2d(x, link.kernel.astype(np.float64), link.stride, link.padding).numpy()
        actual = feats[link.dst].numpy()[..., link.dst_offset:link.dst_offset + link.cout].astype(np.float64)
        clamped_at_6 = np.isclose(actual.max(), 6.0)
        live = (actual > 1e-3) & ((actual < 6.0 - 1e-3) if clamped_at_6 else True)
        if live.mean() < 0.05:
            continue
        offset = np.where(live, actual - conv, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # channels that are never live
            spread = np.nanmax(np.abs(offset - np.nanmean(offset, axis=(0, 1, 2))))
        assert spread <= rel * np.abs(actual).max(), (link.name, spread)
        checked += 1
    return checked


def test_keras_file_layers_and_links(saved):
    model, path = saved
    adapter = registry.load(f"keras:{path}?range=-1,1", layers=ALL)
    assert adapter.value_range == (-1.0, 1.0) and adapter.input_size == 31
    assert adapter.layers == ALL and adapter.channels["mix"] == 10 and adapter.supports_relu_redirect
    by_name = {link.name: link for link in adapter.links}
    assert by_name["pw_relu"].kind == "separable" and by_name["pw_relu"].input == "dw_relu"
    assert by_name["sep"].kind == "conv" and by_name["sep"].kernel.shape == (3, 3, 12, 10)
    down = by_name["down"]
    assert (down.input, down.padding, down.stride) == ("pad", "VALID", 2)
    assert by_name["mix_3x3"].src == "down"
    # mix_1x1 follows mix_3x3 in the order, but its linear piece reaches down, an earlier chosen layer
    assert (by_name["mix_1x1"].src, by_name["mix_1x1"].kind) == ("down", "1x1")
    # mix's branches are chosen layers themselves: identity links into its channel slices
    assert [(by_name[f"mix/{b}"].kind, by_name[f"mix/{b}"].dst_offset) for b in ("mix_3x3", "mix_1x1")] == [
        ("identity", 0), ("identity", 6)]
    default = registry.load(f"keras:{path}")
    assert default.layers == ["mix"] and default.value_range == (0.0, 255.0)
    images = tf.random.stateless_uniform([2, 31, 31, 3], seed=[1, 2])
    assert assert_links_exact(adapter, images) == 7
    expected = model(images.numpy() * 2.0 - 1.0).numpy()
    np.testing.assert_allclose(adapter.features(images)["logits"].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_concat_branch_links(saved):
    _, path = saved
    adapter = registry.load(f"keras:{path}", layers=["down", "mix"])
    assert [(link.name, link.dst_offset, link.kind) for link in adapter.links] == [
        ("mix/mix_3x3", 0, "conv"), ("mix/mix_1x1", 6, "1x1")]
    assert assert_links_exact(adapter, tf.random.stateless_uniform([2, 31, 31, 3], seed=[3, 4])) == 2


def test_relu_redirect_keeps_the_forward_pass(saved):
    _, path = saved
    adapter = registry.load(f"keras:{path}", layers=["pw_relu", "down"])
    images = tf.Variable(tf.random.stateless_uniform([2, 31, 31, 3], seed=[5, 6]))
    plain = adapter.features(images)
    with tf.GradientTape() as tape:
        redirected = adapter.features(images, relu_redirect=True)
        loss = -tf.reduce_mean(redirected["down"])
    for key in plain:
        np.testing.assert_allclose(redirected[key].numpy(), plain[key].numpy(), rtol=1e-5, atol=1e-5)
    grad = tape.gradient(loss, images)
    assert grad is not None and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).max() > 0


def test_pre_activations_are_the_tensors_before_each_activation(saved):
    """A ReLU layer's input, a fused-activation layer's linear twin (same weights), and for the concat the
    concat of its branches' pre-activations; the redirected clone gives the same values."""
    model, path = saved
    adapter = registry.load(f"keras:{path}", layers=ALL)
    assert adapter.pre_activations == {c: f"{c}/pre_activation" for c in ALL}
    images = tf.random.stateless_uniform([2, 31, 31, 3], seed=[9, 1])
    values = adapter.tensors(images, adapter.tensor_keys())
    kinds = {"c1_relu": "relu", "pw_relu": "relu6", "sep": "relu", "down": "relu", "mix_3x3": "relu",
             "mix_1x1": "relu"}
    for layer, kind in kinds.items():
        pre = values[f"{layer}/pre_activation"].numpy()
        expected = relu_gradients.apply(tf.constant(pre), kind).numpy()
        np.testing.assert_array_equal(values[layer].numpy(), expected)
        assert (pre < 0).any(), layer
    branches = [values[f"{k}/pre_activation"].numpy() for k in ("mix_3x3", "mix_1x1")]
    np.testing.assert_array_equal(values["mix/pre_activation"].numpy(), np.concatenate(branches, axis=-1))
    # The twin of `down` (ReLU fused) is its convolution plus bias, from the layer's real input.
    x = keras.Model(model.inputs, model.get_layer("down").input)(images * 255.0).numpy().astype(np.float64)
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("down").get_weights())
    want = tf.nn.conv2d(x, kernel, 2, "VALID").numpy() + bias
    np.testing.assert_allclose(values["down/pre_activation"].numpy(), want, rtol=1e-5, atol=1e-4)
    redirected = adapter.tensors(images, adapter.tensor_keys(), relu_redirect=True)
    for key, value in values.items():
        np.testing.assert_allclose(redirected[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-5)


def test_saved_model_folder_goes_through_tflite(saved, tmp_path):
    model, _ = saved
    folder = tmp_path / "exported"
    model.export(str(folder), verbose=False)
    adapter = registry.load(f"keras:{folder}")
    images = tf.random.stateless_uniform([2, 31, 31, 3], seed=[7, 8])
    expected = model(images.numpy() * 2.0 - 1.0).numpy()
    np.testing.assert_allclose(adapter.features(images)["logits"].numpy(), expected, rtol=1e-4, atol=1e-4)
    assert len(adapter.layers) == 1 and adapter.layers[0].startswith("mix")  # TF op names: mix_1


def test_application_mobilenet_without_weights():
    adapter = registry.load("keras_app:MobileNet?weights=none&size=96")
    assert adapter.layers == ["conv1_relu", *(f"conv_pw_{k}_relu" for k in range(1, 14))]
    assert adapter.value_range == (-1.0, 1.0) and adapter.input_size == 96
    assert [link.input for link in adapter.links] == [f"conv_dw_{k}_relu" for k in range(1, 14)]
    assert all(link.kind == "separable" for link in adapter.links)
    assert adapter.class_to_output.tolist() == list(range(1000))
    images = tf.random.stateless_uniform([1, 96, 96, 3], seed=[9, 10])
    assert adapter.features(images)["logits"].shape == (1, 1000)
    assert assert_links_exact(adapter, images, rel=1e-4) >= 2  # random weights saturate deeper layers


def test_bad_specs(saved, tmp_path):
    _, path = saved
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        registry.load(f"keras:{tmp_path / 'nothing.keras'}")
    with pytest.raises(ValueError, match=r"bad option 'colour=red'.*weights=\.\.\., size=\.\.\."):
        registry.load(f"keras:{path}?colour=red")
    with pytest.raises(ValueError, match="unknown application 'MobileNetV9'.*MobileNetV2"):
        registry.load("keras_app:MobileNetV9?weights=none")
    with pytest.raises(FileNotFoundError, match="weights file"):
        registry.load(f"keras_app:MobileNet?weights={tmp_path / 'w.h5'}")
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['conv9'\].*c1_relu"):
        registry.load(f"keras:{path}", layers=["conv9"])
    with pytest.raises(ValueError, match="range must be LO,HI"):
        keras_model.load_file(f"{path}?range=1")
    not_model = tmp_path / "x.txt"
    not_model.write_text("x")
    with pytest.raises(ValueError, match=r"\.keras or \.h5"):
        registry.load(f"keras:{not_model}")


class _Split(keras.layers.Layer):
    """A layer with two outputs: opaque to link finding, never an internal error."""

    def call(self, x):
        return x[..., :4], x[..., 4:]

    def compute_output_shape(self, shape):
        return shape[:-1] + (4,), shape[:-1] + (shape[-1] - 4,)


def test_any_activation_sums_and_stops_named(caplog):
    inp = keras.Input((17, 17, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    a, _ = _Split(name="split")(x)
    y = keras.layers.Conv2D(6, 1, activation="gelu", name="c2")(a)
    normed = keras.layers.LayerNormalization(name="ln")(y)
    w = keras.layers.Conv2D(6, 1, activation="swish", name="c3")(normed)
    s = keras.layers.Add(name="sum")([w, y])
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(s))
    with caplog.at_level("WARNING", logger="summit_tf.models.graph_links"):
        adapter = keras_model._summit_model(keras.Model(inp, out), "t", None, lambda t: t, (0.0, 1.0), "t")
    assert adapter.layers == ["c1", "c2", "c3", "sum"]
    assert adapter.layer_activations == {"c1": "relu", "c2": "gelu", "c3": "silu", "sum": "linear"}
    assert [(link.name, link.src, link.kind) for link in adapter.links] == [
        ("sum", "c3", "identity"), ("sum/skip/c2", "c2", "identity")]
    messages = [r.getMessage() for r in caplog.records if r.name == "summit_tf.models.graph_links"]
    assert messages == ["2 of 4 layers have no incoming link: c2: stops at split (_Split); "
                        "c3: stops at ln (LayerNormalization)"]


def test_keras_ops_sum_is_a_layer_with_its_link():
    """A sum written ``keras.ops.add`` (ConvNeXt's residuals) is an operation node, not a layer object;
    it used to stop the loader ("No such layer: add"). Identity + 1x1 from the same source: one 1x1 link."""
    inp = keras.Input((17, 17, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    s = keras.ops.add(x, keras.layers.Conv2D(8, 1, name="c2")(x))
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(s))
    model = keras.Model(inp, out)
    adapter = keras_model._summit_model(model, "t", None, lambda t: t, (0.0, 1.0), "t")
    # Keras numbers its automatic names per process ("add", "add_1", ...): take the one it gave
    (add,) = [op.name for op in model.operations if op.name.startswith("add")]
    assert adapter.layers == ["c1", add]
    assert [(link.name, link.src, link.kind) for link in adapter.links] == [(add, "c1", "1x1")]
    images = np.random.default_rng(0).uniform(0, 1, (2, 17, 17, 3)).astype(np.float32)
    want = keras.Model(inp, s)(images).numpy()
    got = adapter.features(tf.constant(images))[add].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_sequential_file_loads_as_its_functional_equivalent(tmp_path):
    """A saved Sequential (no ``operations`` of its own) gives the layers, links and outputs of the same
    layers built functionally; one without an input shape is a clear error."""
    keras.utils.set_random_seed(3)

    def stack() -> list[keras.layers.Layer]:
        return [keras.layers.Conv2D(6, 3, use_bias=False, name="c1"),
                keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(name="c1_relu"),
                keras.layers.Conv2D(5, 1, activation="relu", name="c2"),
                keras.layers.GlobalAveragePooling2D(name="pool"), keras.layers.Dense(3, name="logits")]

    seq = keras.Sequential([keras.Input((11, 11, 3)), *stack()])
    inp = x = keras.Input((11, 11, 3))
    for layer in stack():
        x = layer(x)
    functional = keras.Model(inp, x)
    functional.set_weights(seq.get_weights())
    paths = {"seq": tmp_path / "seq.keras", "functional": tmp_path / "functional.keras"}
    seq.save(paths["seq"])
    functional.save(paths["functional"])
    got, want = (registry.load(f"keras:{paths[k]}", layers=["c1_relu", "c2"]) for k in ("seq", "functional"))
    assert got.layers == want.layers == ["c1_relu", "c2"]
    assert [(lk.name, lk.src, lk.dst, lk.input) for lk in got.links] == [
        (lk.name, lk.src, lk.dst, lk.input) for lk in want.links] == [("c2", "c1_relu", "c2", "c1_relu")]
    np.testing.assert_array_equal(got.links[0].kernel, want.links[0].kernel)
    images = tf.random.stateless_uniform([2, 11, 11, 3], seed=[4, 5])
    np.testing.assert_allclose(got.features(images)["logits"].numpy(), seq(images.numpy() * 255.0).numpy(),
                               rtol=1e-5, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # saving a model that was never built
        keras.Sequential(stack()).save(tmp_path / "open.keras")
    with pytest.raises(ValueError, match="open.keras.*input shape"):
        registry.load(f"keras:{tmp_path / 'open.keras'}")
