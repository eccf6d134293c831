"""tf.distribute aggregation: counts under MirroredStrategy (2 and 3 logical CPU devices) and under
MultiWorkerMirroredStrategy (2 worker processes on 127.0.0.1) are bit-identical to one device, also after a
SIGKILL mid-run and a resume. Every setup is a process of ``distribute_harness.py`` (TensorFlow fixes
devices and cluster at start-up); they start together, so the suite pays for about two TF start-ups.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from summit_tf.aggregation.checkpoint import checkpoint_path

HARNESS = Path(__file__).with_name("distribute_harness.py")
FILES = (7, 6, 5, 5)  # images per TFRecord file: 23 images, batches of 3 end partly filled
CLASSES = (0, 5, 217, 999)
DEADLINE = 600  # seconds; a hang (e.g. a collective that never completes) fails instead of blocking CI


def write_data(folder: Path) -> tuple[str, str]:
    """The same JPEGs as TFRecord files and as a ``folder:`` tree; their two data specs."""
    import tensorflow as tf

    from summit_tf import imagenet
    from summit_tf.data.tfrecords import make_example

    rng = np.random.default_rng(0)
    folder.mkdir()
    for f, count in enumerate(FILES):
        with tf.io.TFRecordWriter(str(folder / f"train-{f:05d}-of-{len(FILES):05d}")) as w:
            for i in range(count):
                image = rng.integers(0, 256, (24 + i, 30, 3), dtype=np.uint8)
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, "JPEG")
                label = int(rng.choice(CLASSES))
                w.write(make_example(buf.getvalue(), label, image.shape[0], 30, f"{f}-{i}"))
                path = folder / "images" / imagenet.synsets()[label] / f"{f}-{i}.JPEG"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(buf.getvalue())
    return f"tfrecord:{folder / 'train-*'}", f"folder:{folder / 'images'}"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HARNESS), *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def workers(*args: str) -> list[subprocess.Popen]:
    """Two multi-worker processes on free local ports."""
    hosts = [f"127.0.0.1:{p}" for p in free_ports(2)]
    return [start("worker", *args, env={"TF_CONFIG": json.dumps(
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})}) for i in range(2)]


def finish(procs: list[subprocess.Popen]) -> list[str]:
    """Wait for every process; each must exit 0. Returns their stderr."""
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=DEADLINE)
        assert p.returncode == 0, err[-3000:]
        errs.append(err)
    return errs


def kill_after_checkpoint(procs: list[subprocess.Popen], out: Path) -> None:
    """SIGKILL the processes once the checkpoint exists (the gated runs hang after writing it)."""
    deadline = time.monotonic() + DEADLINE
    while not checkpoint_path(out).exists() and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-3000:] for p in procs]
        time.sleep(0.02)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.communicate()
        assert p.returncode == -signal.SIGKILL
    assert checkpoint_path(out).exists() and not out.exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, object]:
    """Every run of the module, started together: mirrored 1/2/3 devices, two workers, and a mirrored and a
    two-worker run killed after their first checkpoint, then resumed (mirrored: on 3 devices, not 2; the
    workers read a ``folder:`` copy of the images, whose classes each worker lists for its part only)."""
    tmp = tmp_path_factory.mktemp("distribute")
    data, folder = write_data(tmp / "data")
    t0 = time.monotonic()
    killed = tmp / "killed.h5"
    procs: list[subprocess.Popen] = []
    try:
        procs += [mirrored := start("mirrored", data, str(tmp), str(killed), folder)]
        procs += (multi := workers(data, str(tmp / "workers.h5")))
        procs += [gated := start("gated", data, str(killed))]
        procs += (gated_workers := workers(folder, str(tmp / "killed_workers.h5"), "--gate"))
        kill_after_checkpoint([gated], killed)
        (tmp / "killed.h5.go").touch()  # the mirrored process resumes it next
        kill_after_checkpoint(gated_workers, tmp / "killed_workers.h5")
        procs += (resumed_workers := workers(folder, str(tmp / "killed_workers.h5"), "--resume"))
        errs = finish([mirrored, *multi, *resumed_workers])
    finally:  # nothing outlives a failure
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    logs = {"mirrored": errs[0], "workers": errs[1], "resume_workers": errs[3]}
    print(f"distribute runs: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return {"dir": tmp, "logs": logs}


def assert_same(a: Path, b: Path, attrs: tuple[str, ...] = ("model", "config", "num_images", "num_skipped")
                ) -> None:
    """Every dataset and the attributes ``attrs`` identical (the config records the data and shard)."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names: list[str] = []
        fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) else None)
        assert names and set(names) == {n for n in names if n in fb}
        for name in names:
            x, y = fa[name][()], fb[name][()]
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        for key in attrs:
            assert fa.attrs[key] == fb.attrs[key], key


def test_mirrored_counts_equal_one_device(runs):
    one = runs["dir"] / "one.h5"
    with h5py.File(one) as f:
        assert f.attrs["num_images"] == sum(FILES)
    for n in (2, 3):
        assert_same(one, runs["dir"] / f"mirrored{n}.h5")
    assert "3 replica(s) on 1 worker(s)" in runs["logs"]["mirrored"]


def test_feature_vis_on_two_devices_equals_one(runs):
    one, two = runs["dir"] / "fv-one" / "feature-vis", runs["dir"] / "fv-mirrored" / "feature-vis"
    files = sorted(p.relative_to(one) for p in one.rglob("*.jpg"))
    assert len(files) == 7 * 3  # 7 channels: a channel image and 2 diversity images each
    assert files == sorted(p.relative_to(two) for p in two.rglob("*.jpg"))
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_mirrored_resume_after_sigkill(runs):
    assert_same(runs["dir"] / "one.h5", runs["dir"] / "killed.h5")
    assert "resuming from" in runs["logs"]["mirrored"]
    assert not checkpoint_path(runs["dir"] / "killed.h5").exists()


def test_two_workers_equal_one_process(runs):
    assert_same(runs["dir"] / "one.h5", runs["dir"] / "workers.h5")
    assert "2 replica(s) on 2 worker(s)" in runs["logs"]["workers"]


def test_two_workers_killed_and_restarted(runs):
    assert_same(runs["dir"] / "one_folder.h5", runs["dir"] / "killed_workers.h5")
    # the same images as TFRecords (another data spec and class filter in the config): the same counts
    assert_same(runs["dir"] / "one.h5", runs["dir"] / "one_folder.h5", attrs=("num_images", "num_skipped"))
    assert "resuming from" in runs["logs"]["resume_workers"]
    assert not checkpoint_path(runs["dir"] / "killed_workers.h5").exists()


# ---------------------------------------------------------------- in process: settings and their errors


@pytest.mark.parametrize("text, message", [
    (None, "needs the TF_CONFIG"),
    ("{", "not JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', "'cluster' and 'task'"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "only 'chief' and 'worker'"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "not in the cluster"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not in the cluster"),
])
def test_bad_tf_config(text, message):
    from summit_tf.strategy import check_tf_config

    with pytest.raises(ValueError, match=message):
        check_tf_config(text)


def test_tf_config_worker_index():
    from summit_tf.strategy import Cluster, check_tf_config

    workers = '{"cluster": {"worker": ["a:1", "b:1", "c:1"]}, "task": {"type": "worker", "index": 2}}'
    assert check_tf_config(workers) == Cluster(3, 2)
    chief = '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "%s", "index": 0}}'
    assert check_tf_config(chief % "chief") == Cluster(2, 0)
    assert check_tf_config(chief % "worker") == Cluster(2, 1)


def test_cli_multi_worker_without_tf_config_exits_2(tmp_path, monkeypatch, capsys):
    from summit_tf import aggregate

    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "x.h5"
    assert aggregate.main(["aggregate", "--strategy=multi_worker", "--model=mobilenet_v1",
                           f"--data=folder:{tmp_path}", f"--out={out}"]) == 2
    assert "TF_CONFIG" in capsys.readouterr().err and not out.exists()
    assert aggregate.main(["aggregate", "--strategy=many", "--model=m", "--data=folder:x",
                           f"--out={out}"]) == 2


@pytest.mark.parametrize("num_shards, shard_index", [(1, 0), (3, 2)])
def test_worker_parts_make_up_the_shard(num_shards, shard_index):
    from summit_tf.aggregation.config import AggregateConfig
    from summit_tf.aggregation.run import worker_shard

    cfg = AggregateConfig(model="m", data="tfrecord:x", out="o", num_shards=num_shards,
                          shard_index=shard_index)
    records = np.arange(101)
    parts = []
    for worker in range(4):
        shards, shard = worker_shard(cfg, 4, worker, 4 * num_shards)
        parts.append(records[shard::shards])
    assert sorted(np.concatenate(parts).tolist()) == records[shard_index::num_shards].tolist()
    with pytest.raises(ValueError, match="3 TFRecord file.*4 workers x 1"):
        worker_shard(AggregateConfig(model="m", data="tfrecord:x", out="o"), 4, 0, 3)
    with pytest.raises(ValueError, match="strategy must be one of"):
        AggregateConfig(model="m", data="d", out="o", strategy="tpu")


def test_experiments_pass_the_strategy_through(tmp_path):
    from absl import flags

    from experiments import cli, pipeline

    fv = flags.FlagValues()
    cli.define(fv, model="m", data="folder:x", out_dir=str(tmp_path), max_images_per_class=None, fv_steps=1,
               fv_diversity=0, num_examples=1, figure_classes="", compare="")
    fv(["prog", "--strategy=mirrored"])
    cfg = cli.config(fv)
    assert cfg.strategy == "mirrored" and pipeline._aggregate_config(cfg).strategy == "mirrored"
    with pytest.raises(ValueError, match="summit_tf.aggregate --strategy=multi_worker"):
        pipeline.PipelineConfig(model="m", data="d", out_dir=str(tmp_path), strategy="multi_worker")
