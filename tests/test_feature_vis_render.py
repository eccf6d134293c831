"""The render loop, batched channel rendering, outputs, sprites and the CLI, on the toy model."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from toy import toy_model

import feature_vis as fv
from feature_vis import objectives, outputs, sprite
from feature_vis import render as cli
from summit_tf.models import relu_gradients


@pytest.fixture(scope="module")
def toy():
    return toy_model()


def channel_means(model, images, layer):
    return model.features(tf.constant(images))[layer].numpy().mean((1, 2))


def test_batched_render_gives_each_image_its_own_channel(toy):
    channels = [0, 1, 2, 3, 4]  # alive at the grey start (the toy model has no ReLU redirect)
    settings = fv.RenderSettings(size=24, steps=60, seed=0)
    images = fv.render_channels(toy, [("sep3", c) for c in channels], settings)
    assert images.shape == (5, 24, 24, 3) and images.min() >= 0.0 and images.max() <= 1.0
    means = channel_means(toy, images, "sep3")[:, channels]
    grey = channel_means(toy, np.full((1, 24, 24, 3), 0.5, np.float32), "sep3")[0, channels]
    # Image b is the batch's best image for channel b, and beats a grey image by a wide margin.
    np.testing.assert_array_equal(means.argmax(axis=0), np.arange(5))
    assert np.all(np.diag(means) > 2 * grey + 0.1)


def test_seed_makes_renders_reproducible(toy):
    settings = fv.RenderSettings(size=16, steps=4, seed=3)
    pairs = [("conv2", 1), ("sep3", 2)]
    a = fv.render_channels(toy, pairs, settings)
    b = fv.render_channels(toy, pairs, settings)
    c = fv.render_channels(toy, pairs, fv.RenderSettings(size=16, steps=4, seed=4))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def gram_cosine_mean(model, images, layer):
    cos = objectives.gram_cosines(model.features(tf.constant(images))[layer], len(images)).numpy()[0]
    return cos[~np.eye(len(images), dtype=bool)].mean()


def test_diversity_images_differ_more_than_plain_ones(toy):
    settings = fv.RenderSettings(size=24, steps=40, seed=1)
    plain = fv.render_vis(toy, objectives.channel("sep3", 3), 4, settings)
    diverse = fv.render_channels(toy, [("sep3", 3)], settings, diversity=4)
    assert diverse.shape == (1, 4, 24, 24, 3)
    assert gram_cosine_mean(toy, diverse[0], "sep3") < gram_cosine_mean(toy, plain, "sep3") - 0.05


def test_parameterization_and_optimizer_can_be_passed_in(toy):
    """As Lucid's render_vis: any image module and any Keras optimizer drive the same loop."""
    import keras

    from feature_vis import param

    made = []

    def param_f(batch, rng):
        made.append(batch)
        return param.PixelImage(batch, 20, decorrelate=False, rng=rng)

    settings = fv.RenderSettings(size=20, steps=5, seed=2)
    sgd = keras.optimizers.SGD(learning_rate=0.5)
    images = fv.render_vis(toy, objectives.channel("sep3", 1), 2, settings, param_f=param_f, optimizer=sgd)
    assert images.shape == (2, 20, 20, 3) and made == [2, 2]  # the optimized module and a fresh start
    assert int(sgd.iterations.numpy()) == 6
    default = fv.render_vis(toy, objectives.channel("sep3", 1), 2, settings)
    assert np.abs(images - default).max() > 1e-3


@pytest.fixture(scope="module")
def redirect_toy(toy):
    """The toy model behind a ReLU at 0.25 on the input, with Lucid's redirect: exercises both steps."""

    def features(images, relu_redirect=False):
        return toy.features_fn(relu_gradients.apply(images - 0.25, "relu", relu_redirect) + 0.25)

    return dataclasses.replace(toy, features_fn=features, supports_relu_redirect=True)


def test_lucid_schedule_updates_steps_0_to_n_and_redirects_0_to_16(toy):
    """Lucid's ``render_vis`` runs steps ``0..max(thresholds)`` and its redirect is on while
    ``global_step <= 16``: ``steps=20`` is 21 updates, the first 17 redirected."""
    redirected = tf.Variable(0)

    def features(images, relu_redirect=False):
        if relu_redirect:  # traced into the redirected step only
            redirected.assign_add(1)
        return toy.features_fn(images)

    model = dataclasses.replace(toy, features_fn=features, supports_relu_redirect=True)
    objective = objectives.channel("sep3", 2)
    seen = []
    optimization = fv.Optimization(model, objective, 1, fv.RenderSettings(size=16, steps=20, seed=0))
    optimization.run(on_step=lambda i: seen.append((i, int(redirected.numpy()))))
    assert seen == [(i, min(i, 16) + 1) for i in range(21)]
    assert int(optimization.optimizer.iterations.numpy()) == 21
    defaults = fv.RenderSettings()
    assert (defaults.steps, defaults.relu_redirect_steps, defaults.pre_activation) == (512, 16, True)
    never = fv.RenderSettings(size=16, steps=2, relu_redirect_steps=None)
    off = fv.Optimization(model, objective, 1, never)
    off.run()
    assert int(off.optimizer.iterations.numpy()) == 3 and int(redirected.numpy()) == 17
    for bad in ({"steps": -1}, {"relu_redirect_steps": -1}, {"size": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fv.RenderSettings(**bad)


def test_objective_reading_an_unknown_tensor_is_a_clear_error(toy):
    with pytest.raises(ValueError, match=r"reads \['nope'\], which toy does not compute.*sep3"):
        fv.Optimization(toy, objectives.channel("nope", 0), 1, fv.RenderSettings(size=16, steps=0))
    with pytest.raises(ValueError, match=r"unknown tensor\(s\) \['conv9'\]"):
        toy.tensors(tf.zeros([1, 16, 16, 3]), ["conv1", "conv9"])


def per_batch_reference(model, pairs, batch, settings, diversity=0):
    """What rendering ``pairs`` alone (padded with its last channel to ``batch``) gives: fresh steps."""
    padded = pairs + pairs[-1:] * (batch - len(pairs))
    key = fv.channels.channel_key(pairs, diversity)
    if not diversity:
        return fv.render_vis(model, objectives.layer_channels(padded), batch, settings, key=key)[:len(pairs)]
    per_image = [pair for pair in padded for _ in range(diversity)]
    images = fv.render_vis(model, objectives.diverse_layer_channels(per_image, diversity), len(per_image),
                           settings, key=key)
    return images.reshape(batch, diversity, *images.shape[1:])[:len(pairs)]


def test_channel_renderer_reuses_one_trace_for_every_batch(redirect_toy):
    settings = fv.RenderSettings(size=16, steps=4, relu_redirect_steps=2, seed=5)
    renderer = fv.ChannelRenderer(redirect_toy, ["sep3", "conv1", "conv2"], 5, settings)
    batches = [[("conv2", 3), ("sep3", 5), ("conv1", 7), ("sep3", 0), ("conv2", 11)],
               [("sep3", 15), ("conv1", 1), ("conv1", 4), ("sep3", 2), ("conv2", 0)],
               [("conv2", 6), ("sep3", 1), ("conv1", 2)]]  # partial: padded to 5
    rendered = [renderer.render(pairs) for pairs in batches]
    assert renderer.tracing_count() == 2  # the plain and the redirected step, once each
    for pairs, images in zip(batches, rendered, strict=True):
        assert images.shape == (len(pairs), 16, 16, 3)
        np.testing.assert_allclose(images, per_batch_reference(redirect_toy, pairs, 5, settings), atol=1e-5)
    assert np.abs(rendered[0] - rendered[1]).max() > 1e-3
    # The same batch again restarts from the same random start: nothing leaks from the batches between.
    np.testing.assert_array_equal(renderer.render(batches[0]), rendered[0])
    assert renderer.tracing_count() == 2


def test_diversity_renderer_reuses_one_trace(toy):
    settings = fv.RenderSettings(size=16, steps=4, seed=2)
    renderer = fv.ChannelRenderer(toy, ["conv2"], 2, settings, diversity=3)
    batches = [[("conv2", 3), ("conv2", 9)], [("conv2", 1)]]
    for pairs in batches:
        images = renderer.render(pairs)
        assert images.shape == (len(pairs), 3, 16, 16, 3)
        expected = per_batch_reference(toy, pairs, 2, settings, diversity=3)
        np.testing.assert_allclose(images, expected, atol=1e-5)
    assert renderer.tracing_count() == 1  # the toy model has no ReLU redirect: the plain step only


def test_channel_renderer_rejects_bad_batches(toy):
    settings = fv.RenderSettings(size=16, steps=1, seed=0)
    renderer = fv.ChannelRenderer(toy, ["conv2"], 2, settings)
    for pairs, message in [([("sep3", 1)], "not one of"), ([("conv2", 12)], "12 channels"),
                           ([("conv2", 1)] * 3, "1 to 2"), ([], "1 to 2")]:
        with pytest.raises(ValueError, match=message):
            renderer.render(pairs)
    with pytest.raises(ValueError, match="one layer"):
        fv.ChannelRenderer(toy, ["conv2", "sep3"], 2, settings, diversity=2)
    with pytest.raises(ValueError, match="need layers"):
        fv.ChannelRenderer(toy, [], 2, settings)


def test_render_channels_checks_pairs_on_every_path(toy):
    """The multi-layer diversity path runs no ChannelRenderer: it checks its pairs the same way."""
    settings = fv.RenderSettings(size=16, steps=1, seed=0)
    for diversity in (0, 2):
        for pairs, message in [([("conv2", 12), ("sep3", 0)], r"conv2 has 12 channels; out of range: \[12\]"),
                               ([("conv2", -1), ("sep3", 0)], r"conv2 has 12 channels; out of range: \[-1\]"),
                               ([("nope", 0), ("sep3", 0)], "unknown layer")]:
            with pytest.raises(ValueError, match=message):
                fv.render_channels(toy, pairs, settings, diversity=diversity)


def test_render_settings_reject_a_negative_seed():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        fv.RenderSettings(seed=-1)


def test_even_chunks():
    assert fv.to_disk.even_chunks(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert fv.to_disk.even_chunks(list(range(8)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert fv.to_disk.even_chunks([1, 2], 8) == [[1, 2]] and fv.to_disk.even_chunks([], 3) == []


def test_render_to_dir_names_sprites_and_resume(toy, tmp_path):
    settings = fv.RenderSettings(size=16, steps=3, seed=0)
    counts = fv.render_to_dir(toy, {"sep3": [4, 0, 2]}, tmp_path, settings, batch_channels=8, diversity=2)
    assert counts == {"batches": 2, "images": 9, "sprites": 1}
    for ch in (0, 2, 4):
        assert Image.open(tmp_path / f"feature-vis/channel/sep3-{ch}-channel.jpg").size == (16, 16)
        for d in (0, 1):
            assert (tmp_path / f"feature-vis/diversity-{d}/sep3-{ch}-diversity-{d}.jpg").exists()
    sheet = Image.open(tmp_path / "feature-vis/sprites/sep3-channel.jpg")
    index = json.loads((tmp_path / "feature-vis/sprites/sep3-channel.json").read_text())
    assert sheet.size == (32, 32) and index["channels"] == [0, 2, 4] and index["columns"] == 2
    assert index["positions"]["4"] == {"row": 1, "col": 0, "x": 0, "y": 16}
    stamp = os.stat(tmp_path / "feature-vis/channel/sep3-2-channel.jpg").st_mtime_ns
    again = fv.render_to_dir(toy, {"sep3": [0, 2, 4]}, tmp_path, settings, batch_channels=8, diversity=2)
    assert again["images"] == 0 and again["batches"] == 0
    assert os.stat(tmp_path / "feature-vis/channel/sep3-2-channel.jpg").st_mtime_ns == stamp
    more = fv.render_to_dir(toy, {"sep3": [0, 2, 4, 5]}, tmp_path, settings, diversity=0)
    assert more["images"] == 1
    index = json.loads((tmp_path / "feature-vis/sprites/sep3-channel.json").read_text())
    assert index["channels"] == [0, 2, 4, 5]
    assert not list(tmp_path.rglob("*.tmp"))
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in tmp_path.rglob("*.j*"))
    # Channel batches mix layers; diversity batches take one layer each, split evenly (3 -> 2 + 1).
    mixed = fv.render_to_dir(toy, {"conv2": [1, 2, 3], "sep3": [0]}, tmp_path / "mixed", settings,
                                 batch_channels=4, diversity=2, sprites=False)
    assert mixed == {"batches": 4, "images": 12, "sprites": 0}
    assert len(list((tmp_path / "mixed").rglob("*.jpg"))) == 12


def test_sprite_sheet_layout():
    tiles = np.stack([np.full((4, 4, 3), i * 40, np.uint8) for i in range(5)])
    sheet, columns = sprite.sprite_sheet(tiles)
    assert columns == 3 and sheet.shape == (8, 12, 3)
    assert sheet[0, 8, 0] == 80 and sheet[4, 0, 0] == 120 and sheet[4, 4, 0] == 160 and sheet[7, 11, 0] == 255


def test_graph_nodes(tmp_path):
    with pytest.raises(FileNotFoundError):
        outputs.graph_channels(tmp_path)
    (tmp_path / "ag").mkdir()
    (tmp_path / "ag/ag-0.json").write_text(json.dumps({"sep3": [{"channel": 5, "layer": "sep3"}],
                                                       "conv2": [{"channel": 1, "layer": "conv2"}]}))
    (tmp_path / "ag/ag-7.json").write_text(json.dumps({"sep3": [{"channel": 2, "layer": "sep3"},
                                                                {"channel": 5, "layer": "sep3"}]}))
    assert outputs.graph_channels(tmp_path) == {"sep3": [2, 5], "conv2": [1]}
    (tmp_path / "ag/ag-8.json").write_text(json.dumps({"sep3": [{"layer": "sep3"}]}))
    with pytest.raises(ValueError, match="ag-8.json"):
        outputs.graph_channels(tmp_path)


def test_select_channels(toy):
    assert fv.select_channels(toy, {"sep3": [2, 1, 2], "conv1": [0]}) == {"conv1": [0], "sep3": [1, 2]}
    assert fv.select_channels(toy, None, ["conv1"]) == {"conv1": list(range(8))}
    # Restricting layers ignores wanted layers outside them, even unknown ones (e.g. another graph's).
    assert fv.select_channels(toy, {"conv2": [3], "mixed4a": [1]}, ["conv2", "sep3"]) == {"conv2": [3]}
    bad = [({"sep3": [1, 99]}, None, "out of range"), ({"nope": [1]}, None, "unknown"),
           ({"sep3": [1]}, ["conv1"], "no channels"), (None, ["nope"], "unknown")]
    for wanted, layers, message in bad:
        with pytest.raises(ValueError, match=message):
            fv.select_channels(toy, wanted, layers)


@pytest.mark.parametrize("args,message", [
    (["--model=nonsense", "--out_dir=x"], "unknown model spec"),
    (["--model=nonsense", "--out_dir=x", "--steps=-1"], "--steps=-1: -1 is not a non-negative integer"),
    (["--model=toy", "--out_dir=x", "--seed=-1"], "--seed=-1: -1 is not a non-negative integer"),
    (["--model=toy", "--out_dir=x", "--batch_channels=0"], "--batch_channels=0: 0 is not a positive integer"),
    (["--model=toy", "--out_dir=x", "--strategy=multi_worker"], "one of <auto|one_device|mirrored>"),
    (["--model=nonsense", "--out_dir=x", "--nopre_activation"], "unknown model spec"),  # a known flag
    (["--out_dir=x"], "--model is required"),
    (["--model=toy"], "--out_dir is required"),
    (["--model=toy", "--out_dir=x", "extra"], "unexpected arguments"),
    (["--model=nonsense", "--out_dir=x", "--channels=a:1", "--only_graph_nodes=y"], "not both"),
    (["--model=nonsense", "--out_dir=x", "--channels=a:b"], "--channels of a: expected"),
    (["--model=nonsense", "--out_dir=x", "--only_graph_nodes=/nonexistent"], "no attribution graphs"),
    (["--model=toy", "--out_dir=x", "--size=big"], "size"),
])
def test_main_bad_input_returns_2(args, message, capsys):
    assert cli.main(["prog", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_bad_flag_exits_2(tmp_path):
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "feature_vis.render", "--model=toy", "--out_dir=x", "--steps=many"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert "steps" in result.stderr and "Traceback" not in result.stderr
