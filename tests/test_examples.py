"""Dataset examples: streaming top-n per channel vs a NumPy reference, receptive fields, saved patches."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from cli_errors import assert_module_exits_2, assert_one_error_line
from PIL import Image
from toy import toy_model

from summit_tf import examples as ex
from summit_tf.examples import __main__ as examples_cli
from summit_tf.examples import runner as examples_run
from summit_tf.examples.top import top_examples


def stream(images: np.ndarray, index: np.ndarray, batch: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices({"image": images, "index": index}).batch(batch)


def reference_top(acts: np.ndarray, index: np.ndarray, n: int):
    """Per channel: the n images with the largest spatial max (ties: lower index), and the argmax."""
    b, h, w, c = acts.shape
    flat = acts.reshape(b, h * w, c).astype(np.float64)
    best, where = flat.max(axis=1), flat.argmax(axis=1)  # [B, C]
    rows = []
    for ch in range(c):
        order = np.lexsort((index, -best[:, ch]))[:n]
        rows.append((best[order, ch], index[order], where[order, ch] // w, where[order, ch] % w))
    return [np.array(v) for v in zip(*rows, strict=True)]


@pytest.fixture(scope="module")
def toy():
    return toy_model(size=33, seed=3)


@pytest.fixture(scope="module")
def images():
    """Smooth random images (upsampled 9x9 noise), so JPEG patches stay close to the pixels."""
    coarse = np.random.default_rng(7).uniform(0, 1, (45, 9, 9, 3)).astype(np.float32)
    return tf.image.resize(coarse, [33, 33], method="bilinear").numpy()


def test_streaming_top_n_matches_numpy(toy, images):
    index = np.arange(45, dtype=np.int64) * 3 + 1  # gaps, as skipped images leave them
    got = ex.top_examples(toy, stream(images, index, 8), n=6, show_progress=False)
    features = toy.features(tf.constant(images))
    for layer in toy.layers:
        value, idx, y, x = reference_top(features[layer].numpy(), index, 6)
        result = got[layer]
        assert result.value.shape == (toy.channels[layer], 6)
        np.testing.assert_allclose(result.value, value, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(result.index, idx)
        np.testing.assert_array_equal(result.y, y)
        np.testing.assert_array_equal(result.x, x)


def test_ties_keep_the_lower_index_and_short_streams_leave_empty_slots(toy):
    # Identical images in identical batches of one give bit-identical values: every channel ties.
    grey = np.full((7, 33, 33, 3), 0.5, np.float32)
    got = ex.top_examples(toy, stream(grey, np.array([9, 2, 4, 11, 12, 30, 31]), 1), n=10,
                          show_progress=False)["conv2"]
    np.testing.assert_array_equal(got.index[:, :7], np.tile([2, 4, 9, 11, 12, 30, 31], (12, 1)))
    assert np.all(got.index[:, 7:] == -1) and np.all(np.isneginf(got.value[:, 7:]))


def analytic_rows(layer: str, y: int, size: int = 33) -> tuple[int, int]:
    """conv1: 3x3/1 SAME; conv2: 3x3/2 SAME (pad 1 on top at 33 -> 17); sep3: 3x3/1 on conv2."""
    half = {"conv1": (y - 1, y + 1), "conv2": (2 * y - 2, 2 * y + 2), "sep3": (2 * y - 4, 2 * y + 4)}[layer]
    return max(half[0], 0), min(half[1], size - 1)


@pytest.mark.parametrize("layer, grid", [("conv1", (33, 33)), ("conv2", (17, 17)), ("sep3", (17, 17))])
def test_receptive_fields_of_the_toy_are_exact(toy, layer, grid):
    boxes = ex.receptive_fields(toy, layer, grid, range(grid[0]))
    for i in range(grid[0]):
        assert boxes[i][:2] == analytic_rows(layer, i), (layer, i)
        assert boxes[i][2:] == analytic_rows(layer, i), (layer, i)


def test_dead_units_get_the_whole_image(toy):
    """conv2 behind ``relu(x - 100)`` is zero with zero gradient on every image: each unit's box is the
    whole image, (0, S - 1, 0, S - 1)."""
    def features(images):
        values = dict(toy.features_fn(images))
        values["conv2"] = tf.nn.relu(values["conv2"] - 100.0)
        return values

    dead = dataclasses.replace(toy, features_fn=features)
    probe = dead.tensors(tf.random.uniform([2, 33, 33, 3], seed=1), ["conv2"])["conv2"]
    assert not probe.numpy().any()
    boxes = ex.receptive_fields(dead, "conv2", (17, 17), [0, 8, 16])
    assert boxes == {i: (0, 32, 0, 32) for i in (0, 8, 16)}


def read_patch(path: str) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32) / 255


def test_patches_are_receptive_field_crops_that_reproduce_the_activation(toy, images, tmp_path):
    index = np.arange(45, dtype=np.int64)
    source = stream(images, index, 10)
    found = ex.top_examples(toy, source, ["conv2", "sep3"], n=4, show_progress=False)
    written = ex.save_patches(toy, source, found, str(tmp_path), channels={"sep3": [0, 5, 15]},
                              show_progress=False)
    assert written == 12
    names = sorted(os.listdir(tmp_path / "feature-vis" / "dataset-p"))
    assert names == sorted(f"sep3-{c}-dataset-p-{r}.jpg" for c in (0, 5, 15) for r in range(4))
    sep3 = found["sep3"]
    for channel in (0, 5, 15):
        pasted_values = []
        for rank in range(4):
            patch = read_patch(ex.patch_path(str(tmp_path), "sep3", channel, rank))
            y, x = sep3.y[channel, rank], sep3.x[channel, rank]
            top, bottom = analytic_rows("sep3", y)
            left, right = analytic_rows("sep3", x)
            original = images[sep3.index[channel, rank]]
            assert patch.shape == (bottom - top + 1, right - left + 1, 3)
            assert np.abs(patch - original[top:bottom + 1, left:right + 1]).mean() < 0.02
            # Alone on a grey canvas the patch gives the unit the same input, hence about the same value.
            # Exactly: the crop alone on a grey canvas gives the unit the same input, hence the same value;
            # the saved JPEG patch gives about the same value.
            canvas = np.full((2, 33, 33, 3), 0.5, np.float32)
            canvas[0, top:bottom + 1, left:right + 1] = original[top:bottom + 1, left:right + 1]
            canvas[1, top:bottom + 1, left:right + 1] = patch
            exact, pasted = toy.features(tf.constant(canvas))["sep3"].numpy()[:, y, x, channel]
            assert exact == pytest.approx(sep3.value[channel, rank], rel=1e-5, abs=1e-5)
            assert pasted == pytest.approx(exact, rel=0.1, abs=0.05)
            pasted_values.append(pasted)
        assert pasted_values[0] >= max(pasted_values[1:]) - 0.05
    # Resumable: nothing to do, then only what was removed.
    assert ex.save_patches(toy, source, found, str(tmp_path), channels={"sep3": [0, 5, 15]},
                           show_progress=False) == 0
    os.remove(ex.patch_path(str(tmp_path), "sep3", 5, 2))
    assert ex.save_patches(toy, lambda: source, found, str(tmp_path), channels={"sep3": [0, 5, 15]},
                           show_progress=False) == 1


def test_index_json_round_trip(toy, images):
    found = ex.top_examples(toy, stream(images[:3], np.arange(3), 2), ["conv1"], n=5, show_progress=False)
    content = json.loads(json.dumps(ex.to_json(found, model="toy")))
    assert content["model"] == "toy" and content["layers"]["conv1"]["value"][0][3] is None
    back = ex.from_json(content)["conv1"]
    np.testing.assert_array_equal(back.index, found["conv1"].index)
    np.testing.assert_allclose(back.value, found["conv1"].value, rtol=1e-5)


def test_cli_rejects_bad_input_with_one_line(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "summit_tf.examples", "--model=nonsense", "--data=folder:/x",
               f"--out_dir={tmp_path}"]
    bad = subprocess.run(command, capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown model spec 'nonsense'")


def test_mobilenet_patches_excite_their_channel(shared, tmp_path):
    """Real MobileNetV1 on 30 Imagenette images: each saved patch, alone on a grey canvas, drives its unit
    to the recorded value (the receptive field is complete), and rank 0 drives it at least as hard as the
    other kept images do."""
    from summit_tf import data, models

    model = models.load("mobilenet_v1", layers=["Conv2d_7_pointwise"])
    folder = shared / "datasets" / "imagenette2-224"

    def source():
        return data.load(f"folder:{folder}", image_size=224, max_images_per_class=3, batch_size=15)

    layer, channels = "Conv2d_7_pointwise", [5, 100]
    found = ex.top_examples(model, source(), [layer], n=3, show_progress=False)
    assert ex.save_patches(model, source, found, str(tmp_path), {layer: channels}, show_progress=False) == 6
    top = found[layer]
    assert top.height == top.width == 14 and np.all(top.index[channels] >= 0)
    images = {int(i): image for batch in source().dataset.as_numpy_iterator()
              for i, image in zip(batch["index"], batch["image"], strict=True)}
    for channel in channels:
        canvases = []
        for rank in range(3):
            patch = read_patch(ex.patch_path(str(tmp_path), layer, channel, rank))
            y, x = top.y[channel, rank], top.x[channel, rank]
            # Conv2d_7's field by hand: stride 16, rows 16y - 30 .. 16y + 60 (TF pads stride-2 convs at the
            # bottom only on even sizes), clipped to the image.
            rows = slice(max(16 * y - 30, 0), min(16 * y + 60, 223) + 1)
            cols = slice(max(16 * x - 30, 0), min(16 * x + 60, 223) + 1)
            exact = np.full((224, 224, 3), 0.5, np.float32)
            exact[rows, cols] = images[int(top.index[channel, rank])][rows, cols]
            saved = np.full((224, 224, 3), 0.5, np.float32)
            saved[rows, cols] = patch  # raises if the patch has another size than the field
            canvases += [exact, saved]
        acts = model.features(tf.constant(np.stack(canvases)))[layer].numpy()
        ranks = np.arange(6) // 2
        values = acts[np.arange(6), top.y[channel, ranks], top.x[channel, ranks], channel]
        np.testing.assert_allclose(values[0::2], top.value[channel], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(values[1::2], top.value[channel], rtol=0.1, atol=0.1)
        assert values[1] >= values[3:].max() - 0.05


def test_run_resumes_and_refuses_another_runs_folder(toy, images, tmp_path, monkeypatch):
    from summit_tf import models

    folder = tmp_path / "data" / "n01440764"
    folder.mkdir(parents=True)
    for i, image in enumerate(images[:12]):
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    loaded, layers_asked = [], []
    monkeypatch.setattr(models, "load", lambda spec, layers=None, summit_compat=False:
                        loaded.append(summit_compat) or layers_asked.append(layers) or toy)
    out = str(tmp_path / "out")
    data = f"folder:{tmp_path / 'data'}"
    cfg = ex.ExamplesConfig("toy", data, out, layers=("conv1",), num_examples=3, channels={"sep3": [1, 2]})
    assert ex.run(cfg) == 8 * 3 + 6
    saved = json.loads(open(os.path.join(out, ex.SUBDIR, ex.INDEX_FILE)).read())
    assert sorted(saved["layers"]) == ["conv1", "sep3"] and saved["data"] == data
    assert layers_asked[0] == ["conv1", "sep3"]  # layers outside the adapter's default set load too

    def no_second_pass(*args, **kwargs):
        raise AssertionError("pass 1 should have been reused")

    monkeypatch.setattr(examples_run, "top_examples", no_second_pass)
    assert ex.run(cfg) == 0
    with pytest.raises(ValueError, match="belongs to another run \\(num_examples differ\\)"):
        ex.run(ex.ExamplesConfig("toy", data, out, num_examples=4))
    with pytest.raises(ValueError, match="belongs to another run \\(summit_compat differ\\)"):
        ex.run(dataclasses.replace(cfg, summit_compat=True))
    assert loaded == [False, False, False, True]

    # --summit_compat: the compat model, and images resized as TF1 did (no half-pixel centres)
    centres = []
    real_load = examples_run.data_inputs.load
    monkeypatch.setattr(examples_run.data_inputs, "load",
                        lambda *a, **k: centres.append(k["half_pixel_centers"]) or real_load(*a, **k))
    monkeypatch.setattr(examples_run, "top_examples", top_examples)
    compat_out = str(tmp_path / "compat")
    assert ex.run(dataclasses.replace(cfg, out_dir=compat_out, summit_compat=True)) == 8 * 3 + 6
    assert loaded[-1] is True and centres and not any(centres)
    saved = json.loads(open(os.path.join(compat_out, ex.SUBDIR, ex.INDEX_FILE)).read())
    assert saved["summit_compat"] is True
    for bad, message in ((dict(num_examples=0), "num_examples must be >= 1"), (dict(resize="zoom"), "resize"),
                         (dict(model=""), "model is required")):
        with pytest.raises(ValueError, match=message):
            ex.ExamplesConfig(**{"model": "toy", "data": data, "out_dir": out, **bad})


def test_run_reads_only_the_classes_asked_for(toy, images, tmp_path, monkeypatch):
    from summit_tf import imagenet, models

    for c, chunk in ((0, images[:3]), (1, images[3:6])):
        folder = tmp_path / "data" / imagenet.synsets()[c]
        folder.mkdir(parents=True)
        for i, image in enumerate(chunk):
            Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / f"{i}.png")
    monkeypatch.setattr(models, "load", lambda spec, layers=None, summit_compat=False: toy)
    out = tmp_path / "out"
    cfg = ex.ExamplesConfig("toy", f"folder:{tmp_path / 'data'}", str(out), layers=("conv1",), num_examples=5,
                            classes=(1,))
    ex.run(cfg)
    saved = json.loads((out / ex.SUBDIR / ex.INDEX_FILE).read_text())
    assert saved["classes"] == [1]
    filled = (examples_run.from_json(saved)["conv1"].index >= 0).sum(axis=-1)
    assert (filled == 3).all()  # class 1's three images only (all six would fill the five slots)
    with pytest.raises(ValueError, match="classes differ"):  # an all-class run does not reuse them
        ex.run(dataclasses.replace(cfg, classes=None))


def test_cli_bad_flags_exit_2_with_one_error_line(capsys):
    assert "num_examples" not in flags.FLAGS  # importing defined no global absl flag
    assert examples_cli.main(["examples", "--num_examples=ten"]) == 2
    assert_one_error_line(capsys.readouterr().err, "--num_examples=ten")
    assert_module_exits_2("summit_tf.examples", "--model=toy", "--num_exampels=3", contains="num_exampels")
