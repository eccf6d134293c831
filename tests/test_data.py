"""Data inputs on real images: folder, labels, TFRecords (from our writer), TFDS; filters, shards, skips."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from cli_errors import assert_module_exits_2, assert_one_error_line
from PIL import Image

from summit_tf import imagenet
from summit_tf.data import build_tfrecords, load, tfrecord_writer, tfrecords
from summit_tf.data.preprocess import resize_image

IMAGENETTE_CLASSES = [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]


def collect(source) -> dict[str, np.ndarray]:
    batches = list(source.dataset.as_numpy_iterator())
    return {key: np.concatenate([b[key] for b in batches]) for key in ("image", "label", "index")}


@pytest.fixture(scope="module")
def imagenette(shared) -> str:
    return f"folder:{shared / 'datasets' / 'imagenette2-224'}"


@pytest.fixture(scope="module")
def records(imagenette, tmp_path_factory) -> str:
    """The first 4 Imagenette images of each class written as 3 TFRecord shards."""
    prefix = str(tmp_path_factory.mktemp("records") / "train")
    outputs, skipped = tfrecord_writer.build(imagenette, prefix, shards=3, max_images_per_class=4)
    assert len(outputs) == 3 and not skipped
    return prefix


def write_jpeg(path: Path, array: np.ndarray, quality: int = 95) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def bilinear_reference(image: np.ndarray, size: int, half_pixel_centers: bool = True) -> np.ndarray:
    """Float64 bilinear resize with edge clamping, no antialiasing. Output pixel ``i`` samples input
    coordinate ``(i + 0.5) * in / out - 0.5`` (half-pixel centres, TF2) or ``i * in / out`` (TF1's
    ``resize_images``)."""
    def axis(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        offset = 0.5 if half_pixel_centers else 0.0
        pos = np.clip((np.arange(size) + offset) * n_in / size - offset, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    y0, y1, wy = axis(image.shape[0])
    x0, x1, wx = axis(image.shape[1])
    rows = image[y0] * (1 - wy)[:, None, None] + image[y1] * wy[:, None, None]
    return rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]


def test_labels_source_reads_the_1300_val_images(shared):
    folder = shared / "datasets" / "ilsvrc2012-val-1300"
    lines = [line.rsplit(",", 1) for line in (folder / "labels.txt").read_text().splitlines() if line.strip()]
    expected = np.array([int(label) for _, label in lines])
    source = load(f"labels:{folder / 'labels.txt'}", image_size=227, batch_size=100)
    assert source.num_records == 1300
    np.testing.assert_array_equal(source.classes, np.unique(expected))
    assert len(source.classes) == 725
    labels, indices, first = [], [], None
    for batch in source.dataset.as_numpy_iterator():
        labels.append(batch["label"])
        indices.append(batch["index"])
        first = batch["image"][0] if first is None else first
    np.testing.assert_array_equal(np.concatenate(labels), expected)
    np.testing.assert_array_equal(np.concatenate(indices), np.arange(1300))
    # 227x227 files at image_size 227: the image is the decoded file (PIL's IDCT differs by a few levels).
    reference = np.asarray(Image.open(folder / lines[0][0].strip()).convert("RGB"), dtype=np.float64) / 255
    assert first.shape == (227, 227, 3)
    assert np.abs(first - reference).mean() < 1.5 / 255


def test_folder_to_tfrecords_round_trip(imagenette, records):
    folder = collect(load(imagenette, image_size=40, max_images_per_class=4, batch_size=16))
    stream = collect(load(f"tfrecord:{records}-*", image_size=40, batch_size=16))
    assert len(folder["label"]) == 40
    np.testing.assert_array_equal(np.bincount(folder["label"], minlength=1000)[IMAGENETTE_CLASSES], 4)
    for key in ("label", "index"):
        np.testing.assert_array_equal(stream[key], folder[key])
    np.testing.assert_array_equal(stream["image"], folder["image"])  # the JPEG bytes are stored as they are


def test_tfrecord_fields_follow_build_imagenet_data(shared, records):
    raw = next(iter(tf.data.TFRecordDataset(f"{records}-00000-of-00003")))
    feature = tf.train.Example.FromString(raw.numpy()).features.feature
    assert feature["image/class/label"].int64_list.value == [1]  # tench = class 0 = label 1
    assert feature["image/class/synset"].bytes_list.value == [b"n01440764"]
    assert feature["image/class/text"].bytes_list.value[0].decode() == imagenet.names()[0]
    assert feature["image/height"].int64_list.value == feature["image/width"].int64_list.value == [224]
    assert feature["image/format"].bytes_list.value == [b"JPEG"]
    name = feature["image/filename"].bytes_list.value[0].decode()
    original = shared / "datasets" / "imagenette2-224" / "train" / "n01440764" / name
    assert feature["image/encoded"].bytes_list.value[0] == original.read_bytes()


def test_tfrecord_label_without_synset_is_label_minus_one(tmp_path):
    encoded = write_jpeg(tmp_path / "x.jpg", np.full((8, 8, 3), 90, np.uint8))
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })) for label in (0, 7, 1000)]
    with tf.io.TFRecordWriter(str(tmp_path / "r-0")) as writer:
        for example in examples:
            writer.write(example.SerializeToString())
    got = collect(load(f"tfrecord:{tmp_path}/r-*", image_size=8))
    np.testing.assert_array_equal(got["label"], [6, 999])  # label 0 (background) is not in the stream
    np.testing.assert_array_equal(got["index"], [0, 1])


def test_filters_on_tfrecords_match_the_folder_listing(imagenette, records):
    kwargs = dict(image_size=16, batch_size=7, classes=[217, 701, 0], max_images_per_class=3)
    stream = collect(load(f"tfrecord:{records}-*", **kwargs))
    folder = collect(load(imagenette, **kwargs))
    np.testing.assert_array_equal(stream["label"], [0] * 3 + [217] * 3 + [701] * 3)
    for key in ("label", "index", "image"):
        np.testing.assert_array_equal(stream[key], folder[key])
    capped = collect(load(f"tfrecord:{records}-*", image_size=16, max_images=5, max_images_per_class=2))
    np.testing.assert_array_equal(capped["label"], [0, 0, 217, 217, 482])


@pytest.mark.parametrize("form", ["folder", "tfrecord_files", "tfrecord_records"])
def test_shards_partition_the_stream(imagenette, records, form):
    spec = imagenette if form == "folder" else f"tfrecord:{records}-*"
    kwargs = dict(image_size=12, batch_size=8, max_images_per_class=4)
    if form == "tfrecord_files":
        kwargs.pop("max_images_per_class")  # no stateful filter: whole files go to each shard
    full = collect(load(spec, **kwargs))
    parts = [collect(load(spec, num_shards=3, shard_index=k, **kwargs)) for k in range(3)]
    images = np.concatenate([p["image"] for p in parts])
    assert len(images) == len(full["image"]) == 40
    order = np.lexsort(images.reshape(len(images), -1).T)
    reference = np.lexsort(full["image"].reshape(40, -1).T)
    np.testing.assert_array_equal(images[order], full["image"][reference])
    for part in parts:
        np.testing.assert_array_equal(part["index"], np.arange(len(part["index"])))
    if form != "tfrecord_files":  # record-level: shard k holds records k, k + 3, ...
        np.testing.assert_array_equal(parts[1]["image"], full["image"][1::3])


@pytest.mark.parametrize("form", ["folder", "tfrecord"])
def test_skip_records_resumes_exactly(imagenette, records, form):
    spec = imagenette if form == "folder" else f"tfrecord:{records}-*"
    kwargs = dict(image_size=12, batch_size=6, max_images_per_class=2)
    full = collect(load(spec, **kwargs))
    resumed = collect(load(spec, skip_records=7, **kwargs))
    np.testing.assert_array_equal(resumed["index"], np.arange(7, 20))
    for key in ("image", "label"):
        np.testing.assert_array_equal(resumed[key], full[key][7:])
    again = collect(load(spec, **kwargs))
    np.testing.assert_array_equal(again["image"], full["image"])  # deterministic order


def test_corrupt_images_are_skipped_and_leave_index_gaps(tmp_path, shared):
    rng = np.random.default_rng(1)
    folder = tmp_path / "n01440764"
    good = write_jpeg(folder / "a.JPEG", rng.integers(0, 256, (30, 30, 3), dtype=np.uint8))
    (folder / "b.JPEG").write_bytes(good[: len(good) // 2])  # truncated
    write_jpeg(folder / "c.JPEG", rng.integers(0, 256, (30, 30, 3), dtype=np.uint8))
    (folder / "d.JPEG").write_bytes(b"not an image at all")
    write_jpeg(folder / "e.JPEG", rng.integers(0, 256, (30, 30, 3), dtype=np.uint8))
    source = load(f"folder:{tmp_path}", image_size=10, batch_size=2)
    got = collect(source)
    np.testing.assert_array_equal(got["index"], [0, 2, 4])
    assert source.num_records - len(got["index"]) == 2
    # The writer skips and names them too, and the reader of its output sees the 3 good ones.
    outputs, skipped = tfrecord_writer.build(f"folder:{tmp_path}", str(tmp_path / "out" / "r"), shards=1)
    assert sorted(Path(p).name for p in skipped) == ["b.JPEG", "d.JPEG"]
    assert len(collect(load(f"tfrecord:{outputs[0]}", image_size=10))["index"]) == 3


def test_truncated_tfrecord_file_is_survived_and_reported(records, tmp_path, capfd):
    files = sorted(tf.io.gfile.glob(f"{records}-*"))
    data = Path(files[0]).read_bytes()
    (tmp_path / "t-0").write_bytes(data[: len(data) // 2])
    (tmp_path / "t-1").write_bytes(Path(files[1]).read_bytes())
    infos = tfrecords.scan(f"{tmp_path}/t-*")
    whole = tfrecords.scan_file(files[0])
    assert infos[0].truncated and not infos[1].truncated and not whole.truncated
    assert 0 < infos[0].records < whole.records == 14
    got = collect(load(f"tfrecord:{tmp_path}/t-*", image_size=8))
    assert len(got["index"]) == infos[0].records + infos[1].records
    err = capfd.readouterr().err
    assert err.count("ended early") == 1 and '/t-0" ended early' in err and "at least 1 record" in err


def test_grey_and_png_become_rgb(tmp_path):
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (25, 1))
    folder = tmp_path / "val" / "n01440764"
    folder.mkdir(parents=True)
    Image.fromarray(grey, mode="L").save(folder / "grey.png")
    rgba = np.dstack([grey, 255 - grey, grey // 2, np.full_like(grey, 7)])
    Image.fromarray(rgba, mode="RGBA").save(folder / "rgba.png")
    got = collect(load(f"folder:{tmp_path}", image_size=25))
    assert got["image"].shape == (2, 25, 25, 3)
    np.testing.assert_allclose(got["image"][0], np.repeat(grey[..., None], 3, axis=2) / 255, atol=1e-6)
    np.testing.assert_allclose(got["image"][1], rgba[..., :3] / 255, atol=1e-6)


def test_squash_is_plain_bilinear_and_center_crop_drops_the_border(tmp_path):
    rng = np.random.default_rng(3)
    odd = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    folder = tmp_path / "n01440764"
    folder.mkdir()
    Image.fromarray(odd).save(folder / "a.png")
    frame = np.zeros((160, 160, 3), np.uint8)
    frame[..., 2] = 255
    for border in (np.s_[:10], np.s_[-10:], np.s_[:, :10], np.s_[:, -10:]):
        frame[border] = (255, 0, 0)
    Image.fromarray(frame).save(folder / "b.png")
    squash = collect(load(f"folder:{tmp_path}", image_size=29))["image"]
    crop = collect(load(f"folder:{tmp_path}", image_size=29, resize="center_crop"))["image"]
    np.testing.assert_allclose(squash[0], bilinear_reference(odd / 255.0, 29), atol=1e-5)
    # central 87.5 % of 37x53 rows 2..34, cols 3..49 (tf.image.central_crop), then bilinear
    np.testing.assert_allclose(crop[0], bilinear_reference(odd[2:35, 3:50] / 255.0, 29), atol=1e-5)
    assert squash[1][0, :, 0].min() > 0.99 and squash[1][14, 14, 0] == 0  # red frame kept
    assert crop[1][..., 0].max() == 0 and crop[1][..., 2].min() == 1  # the 1/16 frame is cropped away


@pytest.mark.parametrize("shape, size", [((13, 21), 31), ((45, 37), 11), ((9, 41), 23)])
def test_tf1_resize_grid_against_a_float64_reference(shape, size):
    """``half_pixel_centers=False`` (``--summit_compat``) samples as TF1's ``resize_images``; the default
    samples at half-pixel centres. Odd sizes, up- and downsampling, non-zero pixels everywhere."""
    image = np.random.default_rng(size).uniform(0.05, 1.0, (*shape, 3)).astype(np.float32)
    tf1 = resize_image(tf.constant(image), size, half_pixel_centers=False).numpy()
    tf2 = resize_image(tf.constant(image), size).numpy()
    # TF computes the source coordinates in float32: up to ~4e-6 off at coordinate 45
    np.testing.assert_allclose(tf1, bilinear_reference(image.astype(np.float64), size, False), atol=1e-5)
    np.testing.assert_allclose(tf2, bilinear_reference(image.astype(np.float64), size), atol=1e-5)
    assert np.abs(tf1 - tf2).max() > 0.05  # the grids differ: each reference tells them apart


def test_tf1_resize_grid_through_the_data_source(tmp_path):
    image = np.random.default_rng(4).integers(1, 256, (23, 35, 3), dtype=np.uint8)
    (tmp_path / "n01440764").mkdir()
    Image.fromarray(image).save(tmp_path / "n01440764" / "a.png")
    got = collect(load(f"folder:{tmp_path}", image_size=15, half_pixel_centers=False))["image"][0]
    np.testing.assert_allclose(got, bilinear_reference(image / 255.0, 15, False), atol=1e-5)


def test_tfds_source_on_a_locally_built_dataset(tmp_path, monkeypatch):
    import data_tfds
    from tensorflow_datasets.core.utils import file_utils

    data_tfds.prepare(str(tmp_path / "prepared"))
    # TFDS chooses the data directory: here one registered in-process; $TFDS_DATA_DIR set after TFDS was
    # imported (an empty folder) is for TFDS to read, not the library (no os.environ outside command lines)
    monkeypatch.setattr(file_utils, "_REGISTERED_DATA_DIRS", set())
    data_tfds.tfds.core.add_data_dir(str(tmp_path / "prepared"))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    source = load("tfds:tiny_summit_images/test", image_size=17, batch_size=2)
    assert source.num_records == 5
    got = collect(source)
    np.testing.assert_array_equal(got["index"], np.arange(5))
    # TFDS stores its own example order; match images back to the generated ones by content.
    originals = data_tfds.split_images("test")
    classes = np.array([0, 217, 701])
    for image, label in zip(got["image"], got["label"], strict=True):
        matches = [i for i, (array, _) in enumerate(originals)
                   if np.allclose(image, bilinear_reference(array / 255.0, 17), atol=1e-5)]
        assert len(matches) == 1 and label == classes[originals[matches[0]][1]]
    sharded = [collect(load("tfds:tiny_summit_images", image_size=8, num_shards=2, shard_index=k))
               for k in (0, 1)]
    assert [len(s["index"]) for s in sharded] == [4, 3]  # the train split by default, 7 examples
    assert load("tfds:tiny_summit_images", image_size=8, num_shards=2, shard_index=1).num_records == 3
    only = collect(load("tfds:tiny_summit_images/train", image_size=8, classes=[217]))
    assert set(only["label"]) == {217}
    with pytest.raises(ValueError, match="no split 'nope'.*train"):
        load("tfds:tiny_summit_images/nope", image_size=8)
    with pytest.raises(ValueError, match="not found"):
        load("tfds:no_such_dataset_here", image_size=8)


@pytest.mark.parametrize("spec, kwargs, message", [
    ("imagenet", {}, "unknown data spec 'imagenet'; expected one of: tfrecord:GLOB"),
    ("folder:", {}, "unknown data spec"),
    ("folder:/no/such/dir", {}, "not a directory"),
    ("labels:/no/such/file.txt", {}, "file not found"),
    ("tfrecord:/no/such/train-*", {}, "no files match"),
    ("tfds:", {}, "unknown data spec"),
    ("folder:{tmp}", {"resize": "crop"}, "unknown resize 'crop'; expected one of: squash, center_crop"),
    ("folder:{tmp}", {"shard_index": 2, "num_shards": 2}, "shard_index must be in 0..1"),
    ("folder:{tmp}", {"classes": [1000]}, "class ids in 0..999"),
    ("folder:{tmp}", {"max_images": 0}, "max_images must be a positive integer"),
    ("folder:{tmp}", {"image_size": 0}, "image_size must be a positive integer"),
    ("folder:{tmp}", {"classes": [5]}, "no images left"),
])
def test_bad_specs_say_what_is_wrong(tmp_path, spec, kwargs, message):
    write_jpeg(tmp_path / "n01440764" / "a.JPEG", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load(spec.format(tmp=tmp_path), **{"image_size": 8, **kwargs})


def test_bad_folders_and_label_files(tmp_path):
    (tmp_path / "empty" / "n01440764").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        load(f"folder:{tmp_path / 'empty'}", image_size=8)
    (tmp_path / "mixed" / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="not synsets: cats"):
        load(f"folder:{tmp_path / 'mixed'}", image_size=8)
    bad = tmp_path / "labels.txt"
    bad.write_text("a.JPEG, 3\nb.JPEG, 1000\n")
    with pytest.raises(ValueError, match=r"labels\.txt:2: .*LABEL 0\.\.999"):
        load(f"labels:{bad}", image_size=8)
    bad.write_text("missing.JPEG, 3\n")
    with pytest.raises(ValueError, match="relative to the file's folder"):
        load(f"labels:{bad}", image_size=8)


def test_writer_cli(tmp_path):
    write_jpeg(tmp_path / "in" / "n01440764" / "a.JPEG", np.full((9, 11, 3), 200, np.uint8))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = [sys.executable, "-m", "summit_tf.data.build_tfrecords"]
    ok = subprocess.run(run + [f"--data=folder:{tmp_path / 'in'}", f"--out={tmp_path / 'out' / 'tr'}",
                               "--shards=1"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / "tr-00000-of-00001").is_file()
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp" in p.name]
    bad = subprocess.run(run + ["--data=tfds:x", f"--out={tmp_path / 'o'}"], capture_output=True, text=True,
                         env=env)
    assert bad.returncode == 2
    message = "error: data must be folder:DIR or labels:FILE, got 'tfds:x'"
    assert bad.stderr.strip().splitlines()[-1] == message


def test_writer_cli_bad_flags_exit_2_with_one_error_line(capsys):
    assert "shards" not in flags.FLAGS  # importing defined no global absl flag
    assert build_tfrecords.main(["build_tfrecords", "--shards=two"]) == 2
    assert_one_error_line(capsys.readouterr().err, "--shards=two")
    assert_module_exits_2("summit_tf.data.build_tfrecords", "--data=folder:/x", "--shard=2", contains="shard")
