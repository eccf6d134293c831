"""Feature visualization on every adapter at Lucid's sizes (64-224 px): only the tensors an objective reads
are computed (never the classifier head), channel objectives read the pre-activation by default, and the
ReLU-redirected gradient through a model equals a float64 NumPy reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import feature_vis as fv
from feature_vis import objectives
from summit_tf.models import inception_v1, load, registry
from synthetic import inception_v1 as fx

FEW = {"steps": 0, "seed": 0}  # one update (step 0, ReLU-redirected): the trace is most of the cost


def assert_rendered(images: np.ndarray, count: int, size: int) -> None:
    assert images.shape == (count, size, size, 3)
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0


def op_types(fn, *args) -> list[str]:
    """Operation types of the graph ``fn`` traces for ``args``."""
    return [op.type for op in fn.get_concrete_function(*args).graph.get_operations()]


# ----------------------------------------------------------------------------------------------- GraphDef
@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    files = fx.write_fixture(tmp_path_factory.mktemp("inception"), fx.build_graph_def())
    return inception_v1.load(str(files[0]))


@pytest.mark.parametrize("size", [128, 64])
def test_inception_renders_every_mixed_layer(inception, size):
    renderer = fv.ChannelRenderer(inception, list(fx.MIXED), 9, fv.RenderSettings(size=size, **FEW))
    assert renderer.optimization.keys == tuple(sorted(f"{layer}/pre_activation" for layer in fx.MIXED))
    assert_rendered(renderer.render([(layer, 7) for layer in fx.MIXED]), 9, size)
    # The classifier cannot run on these images (+12 px of transforms): its 7x7 VALID avgpool0 meets a
    # smaller mixed5b map. Feature vis never evaluates it.
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="egative"):
        inception.features(tf.zeros([1, size + 12, size + 12, 3]))


def test_inception_early_objective_evaluates_no_later_layer(inception):
    """A mixed3b channel needs the stem and two blocks: 3 + 2 x 6 convolutions, four max pools (maxpool0,
    maxpool1 and the two pool branches), mixed3a's concat and mixed3b's pre-activation concat; no
    maxpool4, no later block, no head."""
    read = fv.objective_tensors(inception, ["mixed3b"])
    objective = objectives.layer_channels([("mixed3b", 5)], read)
    assert read == {"mixed3b": "mixed3b/pre_activation"} and objective.keys == {"mixed3b/pre_activation"}
    ops = op_types(inception.tensors_fn, tf.TensorSpec([1, 76, 76, 3]), tuple(objective.keys), True)
    assert ops.count("Conv2D") == 15 and ops.count("MaxPool") == 4 and ops.count("ConcatV2") == 2
    assert {"AvgPool", "MatMul", "Softmax"}.isdisjoint(ops)
    post = fv.objective_tensors(inception, ["mixed3b"], pre_activation=False)
    ops = op_types(inception.tensors_fn, tf.TensorSpec([1, 76, 76, 3]), tuple(post.values()), True)
    assert ops.count("Conv2D") == 15 and ops.count("ConcatV2") == 2  # mixed3b's own concat this time


def test_inception_pre_activation_is_the_concat_of_branch_pre_relus(inception):
    """Lucid's ``mixed4a_pre_relu``: against TF's own import of the fixture, branch by branch."""
    from summit_tf.models.graphdef import import_reference, read_graph_def

    path = inception.spec.partition(":")[2]
    branches = [f"mixed4a_{b}_pre_relu" for b in ("1x1", "3x3", "5x5", "pool_reduce")]
    reference = import_reference(read_graph_def(path), branches)
    images = tf.random.stateless_uniform([2, 75, 75, 3], seed=[1, 2])
    got = inception.tensors(images, ["mixed4a/pre_activation", "mixed4a"])
    want = np.concatenate([v.numpy() for v in reference(inception.scale(images)).values()], axis=-1)
    pre = got["mixed4a/pre_activation"].numpy()
    assert pre.shape == (2, 5, 5, 508) and (pre < 0).mean() > 0.2
    np.testing.assert_allclose(pre, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_array_equal(got["mixed4a"].numpy(), np.maximum(pre, 0.0))


# ----------------------------------------------------------------------------------------------- TFLite
def test_tflite_mobilenet_renders_at_64_and_128_px(shared):
    model = load("mobilenet_v1", layers=["Conv2d_3_pointwise", "Conv2d_13_pointwise"])
    pairs = [("Conv2d_3_pointwise", 5), ("Conv2d_13_pointwise", 9)]
    for size in (64, 128):
        renderer = fv.ChannelRenderer(model, model.layers, 2, fv.RenderSettings(size=size, **FEW))
        assert renderer.optimization.keys == ("Conv2d_13_pointwise/pre_activation",
                                              "Conv2d_3_pointwise/pre_activation")
        assert_rendered(renderer.render(pairs), 2, size)
    # Conv2d_3_pointwise's pre-activation: Conv2d_0, depthwise/pointwise 1-2, depthwise 3, pointwise 3
    # without its ReLU6; none of the later blocks nor the head.
    ops = op_types(model.tensors_fn, tf.TensorSpec([1, 76, 76, 3]), ("Conv2d_3_pointwise/pre_activation",),
                   False)
    assert ops.count("Conv2D") == 4 and ops.count("DepthwiseConv2dNative") == 3 and ops.count("Relu6") == 6
    assert {"Mean", "MatMul", "Softmax"}.isdisjoint(ops)


# ----------------------------------------------------------------------------------------------- Keras
def tiny_keras_model() -> keras.Model:
    """A conv with a fused ReLU (``a``), a stride-2 conv followed by a ReLU layer (``b_relu``), and a
    Flatten head fixed to 15 px inputs. ``a``'s bias is negative, so a dim image leaves it all dead."""
    keras.utils.set_random_seed(7)
    inp = keras.Input((15, 15, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="a")(inp)
    b = keras.layers.ReLU(name="b_relu")(keras.layers.Conv2D(5, 3, strides=2, padding="same", name="b")(a))
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(keras.layers.Flatten()(b)))
    rng = np.random.default_rng(3)
    model.get_layer("a").set_weights([rng.normal(0, 0.8, (3, 3, 3, 6)), rng.uniform(-0.6, -0.2, 6)])
    model.get_layer("b").set_weights([rng.normal(0, 0.5, (3, 3, 6, 5)), rng.normal(0, 0.3, 5)])
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    net = tiny_keras_model()
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    net.save(path)
    return net, registry.load(f"keras:{path}?range=0,1", layers=["a", "b_relu"])


def test_keras_renders_at_64_and_128_px(tiny):
    _, model = tiny
    for size in (64, 128):
        renderer = fv.ChannelRenderer(model, model.layers, 2, fv.RenderSettings(size=size, **FEW))
        assert renderer.optimization.keys == ("a/pre_activation", "b_relu/pre_activation")
        assert_rendered(renderer.render([("a", 1), ("b_relu", 4)]), 2, size)
    with pytest.raises(ValueError, match="incompatible"):  # the fixed-size head: never evaluated above
        model.features(tf.zeros([1, 76, 76, 3]))


def conv_same(x: np.ndarray, k: np.ndarray, stride: int) -> np.ndarray:
    """Float64 TF-style SAME cross-correlation of square ``[B, n, n, C]`` maps."""
    n, size = x.shape[1], k.shape[0]
    out = -(-n // stride)
    total = max((out - 1) * stride + size - n, 0)
    xp = np.pad(x, ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))
    y = np.zeros((x.shape[0], out, out, k.shape[3]))
    for dy in range(size):
        for dx in range(size):
            patch = xp[:, dy:dy + stride * out:stride, dx:dx + stride * out:stride]
            y += np.einsum("bhwc,co->bhwo", patch, k[dy, dx])
    return y


def conv_same_adjoint(g: np.ndarray, k: np.ndarray, stride: int, n: int) -> np.ndarray:
    """Gradient of :func:`conv_same` with respect to its ``n`` x ``n`` input, given ``g`` for its output."""
    out, size = g.shape[1], k.shape[0]
    total = max((out - 1) * stride + size - n, 0)
    lo = total // 2
    gp = np.zeros((g.shape[0], n + total, n + total, k.shape[2]))
    for dy in range(size):
        for dx in range(size):
            gp[:, dy:dy + stride * out:stride, dx:dx + stride * out:stride] += np.einsum(
                "bhwo,co->bhwc", g, k[dy, dx])
    return gp[:, lo:lo + n, lo:lo + n]


def redirected_relu_gradient(pre: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Lucid's rule per image: the ReLU gradient, unless it is zero everywhere; then the incoming gradient
    except where it would push a negative input further down (descent: positive gradient)."""
    out = np.empty_like(g)
    for b in range(len(g)):
        plain = np.where(pre[b] < 0, 0.0, g[b])
        out[b] = plain if np.any(plain != 0) else np.where((pre[b] < 0) & (g[b] > 0), 0.0, g[b])
    return out


def reference_forward(net: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    ka, ba = (np.asarray(w, np.float64) for w in net.get_layer("a").get_weights())
    kb, bb = (np.asarray(w, np.float64) for w in net.get_layer("b").get_weights())
    pre_a = conv_same(x, ka, 1) + ba
    pre_b = conv_same(np.maximum(pre_a, 0.0), kb, 2) + bb
    return {"a/pre_activation": pre_a, "a": np.maximum(pre_a, 0.0), "b_relu/pre_activation": pre_b,
            "b_relu": np.maximum(pre_b, 0.0), "ka": ka, "kb": kb}


def test_default_objective_reads_the_pre_activation(tiny):
    net, model = tiny
    x = np.random.default_rng(5).uniform(0.05, 1.0, (3, 13, 13, 3))
    ref = reference_forward(net, x)
    pairs = [("b_relu", 1), ("a", 4), ("b_relu", 3)]
    for pre_activation, suffix in ((True, "/pre_activation"), (False, "")):
        settings = fv.RenderSettings(pre_activation=pre_activation)
        read = fv.objective_tensors(model, ["a", "b_relu"], settings.pre_activation)
        assert read == {"a": "a" + suffix, "b_relu": "b_relu" + suffix}
        renderer = fv.ChannelRenderer(model, ["a", "b_relu"], 3, settings)
        assert set(renderer.optimization.keys) == set(read.values())
        objective = objectives.layer_channels(pairs, read)
        got = objective(model.tensors(tf.constant(x, tf.float32), objective.keys)).numpy()
        want = [ref[read[layer]][b, ..., ch].mean() for b, (layer, ch) in enumerate(pairs)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    pre = ref["b_relu/pre_activation"]
    assert (pre[0, ..., 1] < 0).any()
    assert pre[0, ..., 1].mean() != pytest.approx(ref["b_relu"][0, ..., 1].mean())
    default = fv.ChannelRenderer(model, ["b_relu"], 1, fv.RenderSettings())
    assert default.optimization.keys == ("b_relu/pre_activation",)


@pytest.mark.parametrize("key", ["b_relu/pre_activation", "b_relu"])
def test_redirected_gradient_through_the_model_matches_reference(tiny, key):
    """Descent gradient of ``-mean channel`` of ``key`` with respect to the pixels, ReLUs redirected:
    image 0 is so dim that ``a`` is dead everywhere (only the redirect lets gradient through), image 1
    bright (``a``'s ordinary gradient). With the post-activation key ``b_relu``'s own ReLU is redirected
    too."""
    net, model = tiny
    rng = np.random.default_rng(11)
    x = np.stack([rng.uniform(0.0, 0.02, (13, 13, 3)), rng.uniform(0.2, 1.0, (13, 13, 3))])
    ref = reference_forward(net, x)
    assert (ref["a/pre_activation"][0] < 0).all() and (ref["a/pre_activation"][1] > 0).mean() > 0.2
    channels = [2, 4]
    images = tf.constant(x, tf.float32)
    grads = {}
    for redirect in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = -tf.reduce_sum(objectives.channel(key, channels)(model.tensors(images, [key], redirect)))
        grads[redirect] = tape.gradient(loss, images).numpy()
    out = ref["b_relu/pre_activation"]
    g = np.zeros_like(out)
    for b, ch in enumerate(channels):
        g[b, ..., ch] = -1.0 / (out.shape[1] * out.shape[2])
    if key == "b_relu":
        g = redirected_relu_gradient(out, g)
    g = redirected_relu_gradient(ref["a/pre_activation"], conv_same_adjoint(g, ref["kb"], 2, 13))
    expected = conv_same_adjoint(g, ref["ka"], 1, 13)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(grads[True], expected, atol=1e-5 * scale)
    assert np.abs(grads[True][0]).max() > 0.1 * scale and np.abs(grads[False][0]).max() == 0.0
    np.testing.assert_allclose(grads[False][1], grads[True][1], atol=1e-6 * scale)
