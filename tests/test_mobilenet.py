"""The shared MobileNets: TF-slim layers, exact links, and agreement with the TFLite interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from test_tflite import Reference, accuracy_and_agreement, reference_constants, val_batches

from summit_tf.models import mobilenet, registry, tflite

V1_PREFIX = "MobilenetV1/MobilenetV1/"


@pytest.fixture(scope="module")
def v1(shared):
    return registry.load("mobilenet_v1")


@pytest.fixture(scope="module")
def v1_paths(shared):
    return mobilenet.paths("mobilenet_v1")


@pytest.fixture(scope="module")
def images(shared):
    return next(iter(val_batches(shared, 4, 4)))[0]


def test_v1_layers_and_links(v1):
    assert v1.layers == [f"Conv2d_{k}_pointwise" for k in range(1, 14)]
    channels = [v1.channels[f"Conv2d_{k}_pointwise"] for k in (1, 2, 3, 6, 12, 13)]
    assert channels == [64, 128, 128, 512, 1024, 1024]
    assert v1.input_size == 224 and v1.value_range == (-1.0, 127 / 128)
    assert v1.class_to_output[0] == 1 and v1.class_to_output[999] == 1000 and v1.supports_relu_redirect
    assert [link.name for link in v1.links] == [f"Conv2d_{k}_pointwise" for k in range(2, 14)]
    for link in v1.links:
        k = int(link.name.split("_")[1])
        assert (link.src, link.dst) == (f"Conv2d_{k - 1}_pointwise", link.name)
        assert link.input == f"Conv2d_{k}_depthwise"
        assert link.kind == "separable" and link.kernel.shape[:2] == (1, 1) and link.stride == 1
        assert link.cin == v1.channels[link.src] and link.cout == v1.channels[link.dst]


def test_v1_layer_choice(shared):
    model = registry.load("mobilenet_v1", layers=["Conv2d_2_pointwise", "Conv2d_0", "Conv2d_1_pointwise"])
    assert model.layers == ["Conv2d_0", "Conv2d_1_pointwise", "Conv2d_2_pointwise"]
    assert [(link.src, link.input) for link in model.links] == [
        ("Conv2d_0", "Conv2d_1_depthwise"), ("Conv2d_1_pointwise", "Conv2d_2_depthwise")]
    apart = registry.load("mobilenet_v1", layers=["Conv2d_3_pointwise", "Conv2d_5_pointwise"])
    assert apart.links == []  # a depthwise + pointwise + ReLU6 stage lies between them: no linear piece
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['Conv2d_4_depthwise'\].*Conv2d_13_pointwise"):
        registry.load("mobilenet_v1", layers=["Conv2d_4_depthwise"])
    with pytest.raises(ValueError, match="unknown model spec"):
        registry.load("mobilenet_v1:extra")


def test_v1_link_kernels_are_the_interpreters_weights(v1, v1_paths):
    constants = reference_constants(v1_paths[0])
    reference = Reference(v1_paths[0], 1)
    weights = {d["name"].split(";")[0]: d["index"] for d in reference.interpreter.get_tensor_details()}
    for link in v1.links:
        name = next(n for n in weights if n.startswith(f"{V1_PREFIX}{link.dst}/Conv2D_Fold"))
        expected = np.transpose(constants[weights[name]], (1, 2, 3, 0))  # OHWI -> HWIO
        np.testing.assert_allclose(link.kernel, expected, rtol=1e-6, atol=1e-9)


def test_v1_links_reproduce_pointwise_pre_activation(v1, v1_paths, images):
    """relu6(link kernel (*) link input + bias) is the pointwise layer: the link is its whole linear part."""
    program = tflite.build_program(v1_paths)
    nodes = {n.key: n for n in program.nodes}
    feats = v1.features(images)
    for link in v1.links:
        x = feats[link.input].numpy().astype(np.float64)
        pre = tf.nn.conv2d(x, link.kernel.astype(np.float64), 1, "SAME").numpy() + nodes[link.dst].bias
        actual = feats[link.dst].numpy()
        live = (actual > 1e-3) & (actual < 6 - 1e-3)
        assert live.mean() > 0.05
        assert np.abs(pre[live] - actual[live]).max() <= 1e-4 * np.abs(actual).max(), link.name
        assert np.abs(np.clip(pre, 0, 6) - actual).max() <= 1e-4 * np.abs(actual).max(), link.name


def test_v1_activations_correlate_with_interpreter(v1, v1_paths, images):
    chosen = registry.load("mobilenet_v1", layers=["Conv2d_0", *v1.layers])
    feats = chosen.features(images)
    reference = Reference(v1_paths[0], 4, preserve=True)
    reference.run(images.numpy())
    worst = 1.0
    for layer in chosen.layers:
        theirs = reference.tensor(f"{V1_PREFIX}{layer}/Relu6")
        r = np.corrcoef(feats[layer].numpy().ravel(), theirs.ravel())[0, 1]
        worst = min(worst, r)
        assert r >= 0.99, (layer, r)
    print(f"MobileNetV1: lowest per-layer correlation with the interpreter {worst:.4f}")


def test_v1_relu_redirect_wakes_dead_channels(v1):
    """A channel that is zero everywhere on a grey image gets no plain gradient, but a redirected one."""
    layer = "Conv2d_5_pointwise"
    x = tf.Variable(tf.fill([1, 224, 224, 3], 0.5))
    dead = np.flatnonzero(v1.features(x)[layer].numpy().max(axis=(0, 1, 2)) == 0.0)
    assert len(dead) > 0
    grads = {}
    for redirect in (False, True):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(v1.features(x, relu_redirect=redirect)[layer][..., int(dead[0])])
        grads[redirect] = tape.gradient(loss, x).numpy()
    assert np.abs(grads[False]).max() == 0.0
    assert np.isfinite(grads[True]).all() and np.abs(grads[True]).max() > 0.0


@pytest.mark.slow
def test_v1_accuracy_and_agreement_on_1300_val_images(v1_paths, shared):
    """Dequantized float MobileNetV1 >= 75 % top-1 (centre crop) and >= 95 % top-1 agreement with TFLite."""
    v1 = registry.load("mobilenet_v1", layers=["Conv2d_13_pointwise"])  # fewer outputs to copy: faster
    extractor = Reference(v1_paths[0], 50)
    head = Reference(v1_paths[1], 1, input_name="MobilenetV1/Logits/AvgPool_1a/AvgPool")
    correct = agree = reference_correct = total = 0
    for images, labels in val_batches(shared, 1300, 50):
        ours = np.argmax(v1.features(images)["logits"].numpy(), axis=1)
        theirs = np.argmax(head.run_raw(extractor.run(images.numpy())), axis=1)
        truth = v1.class_to_output[labels.numpy()]
        correct += int((ours == truth).sum())
        reference_correct += int((theirs == truth).sum())
        agree += int((ours == theirs).sum())
        total += len(ours)
    assert total == 1300
    print(f"MobileNetV1 on {total} val images: float top-1 {correct / total:.4f}, TFLite top-1 "
          f"{reference_correct / total:.4f}, top-1 agreement {agree / total:.4f}")
    assert correct / total >= 0.75
    assert agree / total >= 0.95


RESIDUAL_V2 = (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)  # blocks that add their input


def test_v2_layers_composed_and_skip_links(shared):
    model = registry.load("mobilenet_v2")
    expected = ["Conv"]
    for k in range(1, 17):
        expected += [f"expanded_conv_{k}_expand"] + ([f"expanded_conv_{k}_add"] if k in RESIDUAL_V2 else [])
    assert model.layers == [*expected, "Conv_1"]
    assert model.channels["Conv"] == 32 and model.channels["Conv_1"] == 1280
    kinds = {}
    for link in model.links:
        kinds.setdefault(link.kind, []).append(link.name)
    assert {k: len(v) for k, v in kinds.items()} == {"separable": 22, "1x1": 10, "identity": 5}
    skips = {link.name: link for link in model.links if "/skip/" in link.name}
    assert len(skips) == 10 and all(link.dst.endswith("_add") for link in skips.values())
    assert skips["expanded_conv_5_add/skip/expanded_conv_4_add"].kind == "identity"
    assert skips["expanded_conv_4_add/skip/expanded_conv_3_expand"].input == "expanded_conv_3_depthwise"
    images = next(iter(val_batches(shared, 2, 2)))[0]
    # the difference of a layer's pre-activation between two images is the sum of its links applied to the
    # difference of their inputs (biases cancel), in float64: the links are the whole linear piece
    for dst in ("expanded_conv_3_expand", "expanded_conv_4_add", "expanded_conv_5_add", "Conv_1"):
        into = [link for link in model.links if link.dst == dst]
        pre = model.pre_activations.get(dst, dst)
        values = model.tensors(images, [pre, *(link.input for link in into)])
        target = np.diff(values[pre].numpy().astype(np.float64), axis=0)
        rebuilt = sum(tf.nn.conv2d(np.diff(values[link.input].numpy().astype(np.float64), axis=0),
                                   link.kernel.astype(np.float64), link.stride, link.padding).numpy()
                      for link in into)
        assert len(into) == (2 if dst.endswith("_add") else 1), dst
        assert np.abs(rebuilt - target).max() <= 1e-4 * np.abs(target).max(), dst


def test_v2_classifies_like_the_interpreter(shared):
    model = registry.load("mobilenet_v2", layers=["Conv_1"])
    reference = Reference(mobilenet.paths("mobilenet_v2")[0], 1)
    top1, agree = accuracy_and_agreement(shared, model, reference, 100, 50)
    print(f"MobileNetV2 (uint8), first 100 val images: float top-1 {top1:.3f}, agreement with the "
          f"interpreter {agree:.3f}")
    assert top1 >= 0.6 and agree >= 0.85
