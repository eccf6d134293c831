"""The aggregation CLI on real data (MobileNetV1, Imagenette2 val): invariants, determinism, SIGKILL +
resume, shards + merge, corrupt images and a truncated TFRecord file, and the exit-2 cases.

Kept small (30 images, three layers including the 1024 x 1024 link) so the file runs in about a minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf
from distribute_harness import GATE_AT

from summit_tf import aggregate, merge, store
from summit_tf.aggregation.engine import checkpoint_path
from summit_tf.data import tfrecords

LAYERS = "Conv2d_11_pointwise,Conv2d_12_pointwise,Conv2d_13_pointwise"
TOPK, INFLUENCE_TOPK, PER_CLASS = 7, 3, 3


def base_flags(shared, out, data=None):
    data = data or f"folder:{shared / 'datasets' / 'imagenette2-224' / 'val'}"
    return ["aggregate", "--model=mobilenet_v1", f"--data={data}", f"--out={out}", f"--layers={LAYERS}",
            f"--activation_select=topk:{TOPK}", f"--influence_topk={INFLUENCE_TOPK}",
            f"--max_images_per_class={PER_CLASS}", "--batch_size=8"]


@pytest.fixture(scope="module")
def reference(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    assert aggregate.main(base_flags(shared, out)) == 0
    return out


def datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
    return sorted(names)


def assert_same(a, b, attrs=("model", "config", "num_images", "num_skipped")) -> None:
    """Every dataset (values, dtype, shape) and the given root attributes are identical."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert datasets(fa) == datasets(fb)
        for name in datasets(fa):
            x, y = fa[name][()], fb[name][()]
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        for key in attrs:
            assert fa.attrs[key] == fb.attrs[key], key


def test_invariants_on_real_data(reference):
    with store.load(reference) as agg:
        assert agg.classes.tolist() == [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]
        assert (agg.class_count == PER_CLASS).all() and agg.num_images == 10 * PER_CLASS
        assert agg.num_skipped == 0 and agg.layers == LAYERS.split(",")
        for layer in agg.layers:  # topk:K selects exactly K channels per image
            np.testing.assert_array_equal(agg.A[layer].sum(axis=1), TOPK * agg.class_count)
        assert sorted(agg.links) == ["Conv2d_12_pointwise", "Conv2d_13_pointwise"]
        for name, info in agg.links.items():
            counts = np.asarray(agg.I[name])
            assert counts.shape == (10, agg.channels[info.dst], agg.channels[info.src])
            # every output channel counts exactly INFLUENCE_TOPK inputs per image
            expected = np.broadcast_to(INFLUENCE_TOPK * agg.class_count[:, None], counts.shape[:2])
            np.testing.assert_array_equal(counts.sum(axis=2), expected)
            assert info.kind == "separable"
        np.testing.assert_array_equal(agg.prob_hist.sum(axis=1), agg.class_count)
        assert agg.correct.sum() >= 0.6 * agg.num_images  # a real classifier on easy classes
        assert agg.config["influence_stride"] == 1 and agg.config["max_images_per_class"] == PER_CLASS


def test_two_runs_are_bit_identical(shared, reference, tmp_path):
    out = tmp_path / "again.h5"
    assert aggregate.main(base_flags(shared, out)) == 0
    assert_same(reference, out)


GATED_CLI = """import sys
sys.path.insert(0, sys.argv.pop(1))
import distribute_harness
distribute_harness.gate_data()
from summit_tf import aggregate
sys.exit(aggregate.main(["aggregate", *sys.argv[1:]]))
"""


def checkpoint_batches(out) -> int:
    """Batches counted in ``out``'s checkpoint, -1 while there is none (it is replaced atomically)."""
    try:
        with h5py.File(checkpoint_path(out), "r") as f:
            return int(f.attrs["batches"])
    except (OSError, KeyError):
        return -1


def test_sigkill_then_resume_equals_uninterrupted_run(shared, reference, tmp_path, capsys):
    """The CLI with its data held back from batch ``GATE_AT`` on (as ``distribute_harness``'s gated runs):
    it checkpoints ``GATE_AT`` batches and waits, so the kill lands there whatever the machine's speed."""
    out = tmp_path / "killed.h5"
    args = [a for a in base_flags(shared, out)[1:] if not a.startswith("--batch_size")]
    proc = subprocess.Popen([sys.executable, "-c", GATED_CLI, str(Path(__file__).parent), *args,
                             "--batch_size=3", "--checkpoint_every=1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and checkpoint_batches(out) < GATE_AT and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert checkpoint_batches(out) == GATE_AT and not out.exists()
    # without --resume the interrupted run is protected
    assert aggregate.main(base_flags(shared, out)) == 2
    assert "--resume" in capsys.readouterr().err
    assert aggregate.main([*base_flags(shared, out), "--resume"]) == 0  # batch size 8 now: same counts
    err = capsys.readouterr().err
    assert "resuming from" in err
    assert not checkpoint_path(out).exists()
    assert_same(reference, out)
    # resuming a finished run has nothing left to do
    assert aggregate.main([*base_flags(shared, out), "--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_two_shards_merged_equal_one_run(shared, reference, tmp_path):
    parts = []
    for i in range(2):
        parts.append(tmp_path / f"shard{i}.h5")
        assert aggregate.main([*base_flags(shared, parts[-1]), "--num_shards=2", f"--shard_index={i}"]) == 0
    with store.load(parts[0]) as a, store.load(parts[1]) as b:
        assert 0 < a.num_images < 10 * PER_CLASS and a.num_images + b.num_images == 10 * PER_CLASS
    merged = tmp_path / "merged.h5"
    assert merge.main(["merge", f"--out={merged}", *map(str, parts)]) == 0
    assert_same(reference, merged, attrs=("model", "num_images", "num_skipped"))


def test_corrupt_images_are_skipped_and_reported(shared, tmp_path, capsys):
    val = shared / "datasets" / "imagenette2-224" / "val"
    folder = tmp_path / "images"
    for synset in ("n01440764", "n03000684"):
        (folder / synset).mkdir(parents=True)
        for src in sorted((val / synset).glob("*.JPEG"))[:3]:
            shutil.copy(src, folder / synset / src.name)
    (folder / "n01440764" / "garbage.JPEG").write_bytes(os.urandom(3000))
    (folder / "n03000684" / "truncated.JPEG").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(500))
    out = tmp_path / "c.h5"
    flags = [f for f in base_flags(shared, out, data=f"folder:{folder}") if "per_class" not in f]
    assert aggregate.main(flags) == 0
    err = capsys.readouterr().err
    assert "2 skipped" in err and "images/s" in err and "accumulators" in err
    with store.load(out) as agg:
        assert agg.num_images == 6 and agg.num_skipped == 2
        assert agg.classes.tolist() == [0, 491] and agg.class_count.tolist() == [3, 3]


def test_corrupt_record_and_truncated_tfrecord_file(shared, tmp_path, capfd):
    val = shared / "datasets" / "imagenette2-224" / "val"
    jpegs = {c: sorted((val / s).glob("*.JPEG"))[:3] for c, s in ((0, "n01440764"), (217, "n02102040"))}

    def write(path, items):
        with tf.io.TFRecordWriter(str(path)) as w:
            for encoded, label in items:
                w.write(tfrecords.make_example(encoded, label, 224, 224, "x.JPEG"))

    first = [(jpegs[0][0].read_bytes(), 0), (b"\xff\xd8 not a jpeg", 0), (jpegs[217][0].read_bytes(), 217),
             (jpegs[217][1].read_bytes(), 217)]
    write(tmp_path / "t-0", first)
    data = (tmp_path / "t-0").read_bytes()
    (tmp_path / "t-0").write_bytes(data[:-2000])  # cut into the last record
    write(tmp_path / "t-1", [(jpegs[0][1].read_bytes(), 0), (jpegs[217][2].read_bytes(), 217)])
    out = tmp_path / "r.h5"
    flags = [f for f in base_flags(shared, out, data=f"tfrecord:{tmp_path}/t-*") if "per_class" not in f]
    assert aggregate.main(flags) == 0
    err = capfd.readouterr().err
    assert "ended early" in err and "1 skipped" in err
    with store.load(out) as agg:
        # readable: two from the truncated file (its corrupt record is a gap), two from the intact one
        assert agg.num_images == 4 and agg.num_skipped == 1 and agg.class_count.tolist() == [2, 2]


@pytest.mark.parametrize("extra, message", [
    (["--activation_reduce=median"], "activation_reduce"),
    (["--influence_reduce=mean"], "influence_reduce"),
    (["--influence_topk=0"], "influence_topk"),
    (["--exclude_channels=Conv2d_1_pointwise"], "exclude_channels"),
    (["--exclude_channels=Conv2d_1_pointwise:a"], "integers"),
    (["--classes=5,abc"], "--classes"),
    (["--classes=1000"], "0..999"),
    (["--num_shards=2", "--shard_index=2"], "shard_index"),
    (["--resume", "--overwrite"], "exclude each other"),
    (["--device_memory_budget=lots"], "--device_memory_budget"),
    (["--data_service=localhost:5050"], "grpc://HOST:PORT"),
    (["--data_service=grpc://localhost:5050", "--checkpoint_minutes=5"], "checkpoint_minutes=0"),
    (["--jpeg_max_ratio=3"], "jpeg_max_ratio"),
    (["--bogus_flag=1"], "bogus_flag"),
    (["stray_positional"], "unexpected arguments"),
])
def test_bad_flags_exit_2(tmp_path, capsys, extra, message):
    args = ["aggregate", "--model=mobilenet_v1", "--data=folder:/nowhere", f"--out={tmp_path / 'o.h5'}",
            *extra]
    assert aggregate.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1, err


def test_missing_required_flag_and_existing_output(tmp_path, capsys):
    assert aggregate.main(["aggregate", "--data=folder:/x", f"--out={tmp_path / 'o.h5'}"]) == 2
    assert "--model is required" in capsys.readouterr().err
    (tmp_path / "o.h5").write_bytes(b"old")
    assert aggregate.main(["aggregate", "--model=mobilenet_v1", "--data=folder:/x",
                           f"--out={tmp_path / 'o.h5'}"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "o.h5").read_bytes() == b"old"


def test_subprocess_bad_flag_and_help(tmp_path):
    cmd = [sys.executable, "-m", "summit_tf.aggregate", "--model=mobilenet_v1", "--data=folder:/x",
           f"--out={tmp_path / 'o.h5'}"]
    proc = subprocess.run([*cmd, "--activation_reduce=median"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "summit_tf.aggregate", "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "mass:0.01" in proc.stdout and "--exclude_channels" in proc.stdout


@pytest.mark.parametrize("extra, message", [
    (["--layers=Conv2d_11_pointwise,nope"], "nope"),
    (["--exclude_channels=Conv2d_12_pointwise:5000"], "has 1024 channels"),
    (["--activation_select=mass:2"], "mass:2"),
    (["--classes=5"], "no images"),
])
def test_input_errors_exit_2(shared, tmp_path, capsys, extra, message):
    flags = [f for f in base_flags(shared, tmp_path / "o.h5") if not f.startswith("--layers")
             or not any(e.startswith("--layers") for e in extra)]
    assert aggregate.main([*flags, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err, err
    assert not (tmp_path / "o.h5").exists()


def test_empty_folder_exit_2(shared, tmp_path, capsys):
    (tmp_path / "empty" / "n01440764").mkdir(parents=True)
    assert aggregate.main(base_flags(shared, tmp_path / "o.h5", data=f"folder:{tmp_path / 'empty'}")) == 2
    assert "error:" in capsys.readouterr().err
