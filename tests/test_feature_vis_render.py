"""The render loop, batched channel rendering, outputs, sprites and the CLI, on the toy model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from toy import toy_model

from feature_vis import cli, objectives, outputs, render, sprite


@pytest.fixture(scope="module")
def toy():
    return toy_model()


def channel_means(model, images, layer):
    return model.features(tf.constant(images))[layer].numpy().mean((1, 2))


def test_batched_render_gives_each_image_its_own_channel(toy):
    channels = [0, 1, 2, 3, 4]  # alive at the grey start (the toy model has no ReLU redirect)
    settings = render.RenderSettings(size=24, steps=60, seed=0)
    images = render.render_channels(toy, [("sep3", c) for c in channels], settings)
    assert images.shape == (5, 24, 24, 3) and images.min() >= 0.0 and images.max() <= 1.0
    means = channel_means(toy, images, "sep3")[:, channels]
    grey = channel_means(toy, np.full((1, 24, 24, 3), 0.5, np.float32), "sep3")[0, channels]
    # Image b is the batch's best image for channel b, and beats a grey image by a wide margin.
    np.testing.assert_array_equal(means.argmax(axis=0), np.arange(5))
    assert np.all(np.diag(means) > 2 * grey + 0.1)


def test_seed_makes_renders_reproducible(toy):
    settings = render.RenderSettings(size=16, steps=4, seed=3)
    pairs = [("conv2", 1), ("sep3", 2)]
    a = render.render_channels(toy, pairs, settings)
    b = render.render_channels(toy, pairs, settings)
    c = render.render_channels(toy, pairs, render.RenderSettings(size=16, steps=4, seed=4))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def gram_cosine_mean(model, images, layer):
    cos = objectives.gram_cosines(model.features(tf.constant(images))[layer], len(images)).numpy()[0]
    return cos[~np.eye(len(images), dtype=bool)].mean()


def test_diversity_images_differ_more_than_plain_ones(toy):
    settings = render.RenderSettings(size=24, steps=40, seed=1)
    plain = render.render(toy, objectives.channel("sep3", 3), 4, settings)
    diverse = render.render_channels(toy, [("sep3", 3)], settings, diversity=4)
    assert diverse.shape == (1, 4, 24, 24, 3)
    assert gram_cosine_mean(toy, diverse[0], "sep3") < gram_cosine_mean(toy, plain, "sep3") - 0.05


def test_render_to_dir_names_sprites_and_resume(toy, tmp_path):
    settings = render.RenderSettings(size=16, steps=3, seed=0)
    counts = render.render_to_dir(toy, {"sep3": [4, 0, 2]}, tmp_path, settings, batch_channels=8, diversity=2)
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
    again = render.render_to_dir(toy, {"sep3": [0, 2, 4]}, tmp_path, settings, batch_channels=8, diversity=2)
    assert again["images"] == 0 and again["batches"] == 0
    assert os.stat(tmp_path / "feature-vis/channel/sep3-2-channel.jpg").st_mtime_ns == stamp
    more = render.render_to_dir(toy, {"sep3": [0, 2, 4, 5]}, tmp_path, settings, diversity=0)
    assert more["images"] == 1
    index = json.loads((tmp_path / "feature-vis/sprites/sep3-channel.json").read_text())
    assert index["channels"] == [0, 2, 4, 5]
    assert not list(tmp_path.rglob("*.tmp"))
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in tmp_path.rglob("*.j*"))


def test_sprite_sheet_layout():
    tiles = np.stack([np.full((4, 4, 3), i * 40, np.uint8) for i in range(5)])
    sheet, columns = sprite.sprite_sheet(tiles)
    assert columns == 3 and sheet.shape == (8, 12, 3)
    assert sheet[0, 8, 0] == 80 and sheet[4, 0, 0] == 120 and sheet[4, 4, 0] == 160 and sheet[7, 11, 0] == 255


def test_parse_channels_and_graph_nodes(tmp_path):
    assert outputs.parse_channels("a:1,3-5;b/x:0;a:2") == {"a": [1, 2, 3, 4, 5], "b/x": [0]}
    for bad in ("a", "a:x", "a:1-", ":3"):
        with pytest.raises(ValueError):
            outputs.parse_channels(bad)
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
    assert cli.select_channels(toy, {"sep3": [2, 1, 2], "conv1": [0]}) == {"conv1": [0], "sep3": [1, 2]}
    assert cli.select_channels(toy, None, ["conv1"]) == {"conv1": list(range(8))}
    # Restricting layers ignores wanted layers outside them, even unknown ones (e.g. another graph's).
    assert cli.select_channels(toy, {"conv2": [3], "mixed4a": [1]}, ["conv2", "sep3"]) == {"conv2": [3]}
    bad = [({"sep3": [1, 99]}, None, "out of range"), ({"nope": [1]}, None, "unknown"),
           ({"sep3": [1]}, ["conv1"], "no channels"), (None, ["nope"], "unknown")]
    for wanted, layers, message in bad:
        with pytest.raises(ValueError, match=message):
            cli.select_channels(toy, wanted, layers)


@pytest.mark.parametrize("args,message", [
    (["--model=nonsense", "--out_dir=x"], "unknown model spec"),
    (["--model=nonsense", "--out_dir=x", "--steps=0"], "--steps must be positive"),
    (["--out_dir=x"], "--model and --out_dir are required"),
    (["--model=toy", "--out_dir=x", "extra"], "unexpected arguments"),
    (["--model=nonsense", "--out_dir=x", "--channels=a:1", "--only_graph_nodes=y"], "not both"),
    (["--model=nonsense", "--out_dir=x", "--channels=a:b"], "bad channel"),
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
