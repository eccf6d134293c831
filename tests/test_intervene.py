"""Interventions against references that edit the network themselves: MobileNetV1 recomputed in float64
NumPy/TF from its parsed operators (channels overwritten, kernel entries zeroed), and the InceptionV1
structural fixture as an edited GraphDef run by TF's own importer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from summit_tf import intervene
from summit_tf.intervene import Ablation, Intervener
from summit_tf.models import inception_v1, mobilenet, tflite
from summit_tf.models.graphdef import import_reference
from synthetic import inception_v1 as fx

SIZE = 67  # odd, small: MobileNetV1's global average pool takes any size


@pytest.fixture(scope="module")
def v1_program(shared):
    return tflite.build_program(mobilenet.paths("mobilenet_v1"))


@pytest.fixture(scope="module")
def v1(v1_program):
    return tflite.summit_model(v1_program, "mobilenet_v1", None, mobilenet.V1_DEFAULT_LAYERS)


@pytest.fixture(scope="module")
def v1_images():
    return np.random.default_rng(3).uniform(0, 1, (2, SIZE, SIZE, 3)).astype(np.float32)


def _v1_reference(program, images, replace: dict, cuts: dict) -> np.ndarray:
    """float64 forward pass over the parsed operators; ``replace[layer] = (channels, values)`` overwrites
    channels of a layer output, ``cuts[layer] = pairs`` zeroes ``K[:, :, i, j]`` of its pointwise conv."""
    lo, hi = program.value_range
    values = {program.input_key: images.astype(np.float64) * (hi - lo) + lo}
    for step, node in zip(program.steps, program.nodes, strict=True):
        x = values[step.inputs[0]]
        if node.op in ("conv", "depthwise"):
            kernel = node.kernel.astype(np.float64).copy()
            for i, j in cuts.get(step.out, ()):
                kernel[:, :, i, j] = 0.0
            s = node.stride
            if node.op == "conv":
                y = tf.nn.conv2d(x, kernel, s, node.padding).numpy()
            else:
                y = tf.nn.depthwise_conv2d(x, kernel, [1, s, s, 1], node.padding).numpy()
            y = y + node.bias
        elif "AvgPool" in step.out:
            y = x.mean(axis=(1, 2), keepdims=True)
        else:
            y = x.reshape(x.shape[0], -1)
        if step.activation == "relu6":
            y = np.clip(y, 0.0, 6.0)
        if step.out in replace:
            channels, fill = replace[step.out]
            y = y.copy()
            y[..., channels] = fill
        values[step.out] = y
        if step.out == program.logits_key:
            return y.reshape(y.shape[0], -1)
    raise AssertionError("no logits")


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def test_mobilenet_zero_mean_and_cut_equal_float64_reference(v1, v1_program, v1_images):
    rng = np.random.default_rng(0)
    means = {layer: rng.uniform(0.1, 2.0, v1.channels[layer]) for layer in v1.layers}
    chans = {"Conv2d_3_pointwise": [0, 5, 77], "Conv2d_11_pointwise": list(range(3, 400, 7))}
    pairs = {"Conv2d_6_pointwise": [(1, 2), (100, 511), (255, 0)],
             "Conv2d_13_pointwise": [(int(i), int(j)) for i, j in rng.integers(0, 1024, (60, 2))]}
    ablations = [Ablation(), Ablation(channels=chans), Ablation(edges=pairs),
                 Ablation(channels={"Conv2d_6_pointwise": [1, 9]},
                          edges={"Conv2d_7_pointwise": [(1, 3), (9, 4)]})]
    for mode in ("zero", "mean"):
        got = Intervener(v1, mode, means).run(v1_images, ablations)["logits"].numpy()
        fill = {layer: (c, 0.0 if mode == "zero" else means[layer][c]) for layer, c in chans.items()}
        six = 0.0 if mode == "zero" else means["Conv2d_6_pointwise"][[1, 9]]
        expect = [
            _v1_reference(v1_program, v1_images, {}, {}),
            _v1_reference(v1_program, v1_images, fill, {}),
            _v1_reference(v1_program, v1_images, {}, pairs),
            _v1_reference(v1_program, v1_images, {"Conv2d_6_pointwise": ([1, 9], six)},
                          {"Conv2d_7_pointwise": [(1, 3), (9, 4)]}),
        ]
        for k, ref in enumerate(expect):
            assert _rel(got[k], ref) < 2e-5, (mode, k)
        # each ablation really changed the output (the reference is not the plain pass)
        for k in (1, 2, 3):
            assert _rel(expect[k], expect[0]) > 1e-4


def test_batched_masks_equal_one_at_a_time(v1, v1_images):
    rng = np.random.default_rng(1)
    means = {layer: rng.uniform(0, 1, v1.channels[layer]) for layer in v1.layers}
    ablations = [Ablation(channels={layer: rng.choice(v1.channels[layer], 9, replace=False).tolist()
                                    for layer in v1.layers[::2]},
                          edges={"Conv2d_9_pointwise": [tuple(p) for p in rng.integers(0, 512, (20, 2))]})
                 for _ in range(2)]
    iv = Intervener(v1, "mean", means)
    batched = iv.run(v1_images, ablations, ["logits", "Conv2d_12_pointwise"])
    for k, a in enumerate(ablations):
        alone = iv.run(v1_images, [a], ["logits", "Conv2d_12_pointwise"])
        for key in alone:
            np.testing.assert_allclose(batched[key][k].numpy(), alone[key][0].numpy(), rtol=1e-5, atol=1e-5)


def test_channel_means_and_file(v1, v1_images, tmp_path):
    batches = [tf.constant(v1_images[:1]), tf.constant(v1_images[1:])]
    means = intervene.channel_means(v1, batches, ["Conv2d_1_pointwise", "Conv2d_2_pointwise"], total=2)
    feats = v1.tensors(tf.constant(v1_images), ["Conv2d_1_pointwise", "Conv2d_2_pointwise"])
    for layer, value in feats.items():
        np.testing.assert_allclose(means[layer], value.numpy().astype(np.float64).mean(axis=(0, 1, 2)),
                                   rtol=1e-5, atol=1e-6)
    path = intervene.save_means(tmp_path / "run" / intervene.MEANS_FILE, means, v1.spec, "folder:x")
    loaded, spec, data = intervene.load_means(path)
    assert (spec, data) == (v1.spec, "folder:x") and list(loaded) == list(means)
    for layer in means:
        np.testing.assert_array_equal(loaded[layer], means[layer])


def test_bad_ablations_are_clear_errors(v1):
    means = {layer: np.zeros(v1.channels[layer]) for layer in v1.layers}
    bad = [
        ([Ablation(channels={"nope": [1]})], "zero", "unknown layer"),
        ([Ablation(channels={"Conv2d_2_pointwise": [128]})], "zero", "outside"),
        ([Ablation(channels={"Conv2d_2_pointwise": [1]})], "mean", "needs the channel means"),
        ([Ablation(edges={"Conv2d_2_pointwise": [(64, 0)]})], "zero", "outside"),
        ([Ablation(edges={"nope": [(0, 0)]})], "zero", "unknown link"),
        ([], "zero", "at least one"),
        ([Ablation()], "half", "mode"),
    ]
    for ablations, mode, message in bad:
        with pytest.raises(ValueError, match=message):
            Intervener(v1, mode, None if "means" in message else means).masks(ablations)


# --- InceptionV1 structural fixture: TF's importer on an edited GraphDef -------------------------------

def _edited_graph_def(graph_def, replace: dict, cuts: dict):
    """Copy of ``graph_def`` with layer outputs replaced (``mixed`` -> keep * mixed + fill, every reader
    rewired) and branch kernels' entries zeroed (``cuts[branch node] = pairs``)."""
    edited = tf.compat.v1.GraphDef()
    edited.CopyFrom(graph_def)
    nodes = {n.name: n for n in edited.node}
    for branch, pairs in cuts.items():
        const = nodes[f"{branch}_w"]
        kernel = tf.make_ndarray(const.attr["value"].tensor).copy()
        for i, j in pairs:
            kernel[:, :, i, j] = 0.0
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(kernel))
    for layer, (keep, fill) in replace.items():
        for node in edited.node:
            node.input[:] = [f"{layer}_edited" if ref == layer else ref for ref in node.input]
        for name, value in (("keep", keep), ("fill", fill)):
            c = edited.node.add(name=f"{layer}_{name}", op="Const")
            c.attr["dtype"].type = tf.float32.as_datatype_enum
            c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.astype(np.float32)))
        mul = edited.node.add(name=f"{layer}_masked", op="Mul", input=[layer, f"{layer}_keep"])
        add = edited.node.add(name=f"{layer}_edited", op="AddV2", input=[f"{layer}_masked", f"{layer}_fill"])
        for n in (mul, add):
            n.attr["T"].type = tf.float32.as_datatype_enum
    return edited


@pytest.fixture(scope="module")
def inception_fixture(tmp_path_factory):
    """(GraphDef, its file) of the InceptionV1 structural fixture, without the auxiliary heads."""
    graph_def = fx.build_graph_def(aux_heads=False)
    return graph_def, str(fx.write_fixture(tmp_path_factory.mktemp("inception"), graph_def)[0])


def test_inception_fixture_interventions_equal_edited_graphdef(inception_fixture):
    graph_def, path = inception_fixture
    model = inception_v1.load(path)
    assert model.link_outputs["mixed4b/3x3"] == "mixed4b_3x3_pre_relu"
    images = tf.constant(np.random.default_rng(2).uniform(0, 1, (1, 224, 224, 3)), tf.float32)
    rng = np.random.default_rng(5)
    means = {layer: rng.uniform(0, 1, model.channels[layer]) for layer in model.layers}
    chans = {"mixed3b": [3, 100, 479], "mixed4d": list(range(0, 528, 11))}
    cuts = {"mixed4b/1x1": [(0, 1), (507, 159)], "mixed4c/3x3": [(2, 5), (127, 255)],
            "mixed5a/5x5_bottleneck": [(10, 3)]}
    ablations = [Ablation(channels=chans, edges=cuts), Ablation()]
    got = Intervener(model, "mean", means).run(images, ablations)["logits"].numpy()
    fills = {}
    for layer, c in chans.items():
        keep = np.ones(model.channels[layer])
        keep[c] = 0.0
        fills[layer] = (keep, (1 - keep) * means[layer])
    branch_cuts = {name.replace("/", "_"): pairs for name, pairs in cuts.items()}
    edited = _edited_graph_def(graph_def, fills, branch_cuts)
    run = import_reference(edited, ["softmax2_pre_activation"])
    ref = run(model.scale(images))["softmax2_pre_activation"].numpy().astype(np.float64)
    assert _rel(got[0], ref) < 1e-4
    assert _rel(got[1], ref) > 1e-3  # the edits mattered; the second mask is the plain network


def test_inception_compat_cuts_only_links_reading_what_the_network_convolves(inception_fixture):
    # summit_compat's unpooled inputs: mixed4a's 1x1 and bottlenecks read mixed3b (28x28) where the network
    # convolves maxpool4 (14x14); every pool_reduce reads the block input where the network convolves L/pool.
    graph_def, path = inception_fixture
    model = inception_v1.load(path, layers=["mixed3b", "mixed4a", "mixed4b"], summit_compat=True)
    assert set(model.link_outputs) == {"mixed4a/3x3", "mixed4a/5x5", "mixed4b/1x1", "mixed4b/3x3_bottleneck",
                                       "mixed4b/5x5_bottleneck", "mixed4b/3x3", "mixed4b/5x5"}
    images = tf.constant(np.random.default_rng(3).uniform(0, 1, (1, 224, 224, 3)), tf.float32)
    chans = {"mixed4a": [1, 200]}
    cuts = {"mixed4a/3x3": [(4, 7)], "mixed4b/1x1": [(0, 2), (300, 100)]}
    iv = Intervener(model, "zero")
    got = iv.run(images, [Ablation(channels=chans, edges=cuts), Ablation()])["logits"].numpy()
    keep = np.ones(model.channels["mixed4a"])
    keep[chans["mixed4a"]] = 0.0
    edited = _edited_graph_def(graph_def, {"mixed4a": (keep, np.zeros_like(keep))},
                               {name.replace("/", "_"): pairs for name, pairs in cuts.items()})
    fed = (2.0 * images - 1.0) * 255.0 - 117.0  # compat scaling, written out
    ref = import_reference(edited, ["softmax2_pre_activation"])(fed)["softmax2_pre_activation"].numpy()
    assert _rel(got[0], ref) < 1e-4
    with pytest.raises(ValueError, match="mixed4b/pool_reduce"):
        iv.masks([Ablation(edges={"mixed4b/pool_reduce": [(0, 0)]})])
