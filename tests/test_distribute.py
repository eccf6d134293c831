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
DEADLINE = 300  # seconds; a hang (e.g. a collective that never completes) fails instead of blocking CI


def write_records(folder: Path) -> str:
    import tensorflow as tf

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
    return str(folder / "train-*")


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
        try:
            _, err = p.communicate(timeout=DEADLINE)
        finally:
            p.kill()
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
    two-worker run killed after their first checkpoint, then resumed (mirrored: on 3 devices, not 2)."""
    tmp = tmp_path_factory.mktemp("distribute")
    data = write_records(tmp / "data")
    t0 = time.monotonic()
    mirrored = start("mirrored", data, str(tmp))
    multi = workers(data, str(tmp / "workers.h5"))
    killed = start("gated", data, str(tmp / "killed.h5"), "2")
    killed_workers = workers(data, str(tmp / "killed_workers.h5"), "--gate")
    kill_after_checkpoint([killed], tmp / "killed.h5")
    kill_after_checkpoint(killed_workers, tmp / "killed_workers.h5")
    resumed = start("resume", data, str(tmp / "killed.h5"), "3")
    resumed_workers = workers(data, str(tmp / "killed_workers.h5"), "--resume")
    errs = finish([mirrored, *multi, resumed, *resumed_workers])
    logs = {"mirrored": errs[0], "workers": errs[1], "resume": errs[3], "resume_workers": errs[4]}
    print(f"distribute runs: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return {"dir": tmp, "data": data, "logs": logs}


def assert_same(a: Path, b: Path) -> None:
    """Every dataset and the counting attributes identical (the config records the data and shard)."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names: list[str] = []
        fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) else None)
        assert names and set(names) == {n for n in names if n in fb}
        for name in names:
            x, y = fa[name][()], fb[name][()]
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        for key in ("model", "config", "num_images", "num_skipped"):
            assert fa.attrs[key] == fb.attrs[key], key


def test_mirrored_counts_equal_one_device(runs):
    one = runs["dir"] / "one.h5"
    with h5py.File(one) as f:
        assert f.attrs["num_images"] == sum(FILES)
    for n in (2, 3):
        assert_same(one, runs["dir"] / f"mirrored{n}.h5")
    assert "3 replica(s) on 1 worker(s)" in runs["logs"]["mirrored"]


def test_mirrored_resume_after_sigkill(runs):
    assert_same(runs["dir"] / "one.h5", runs["dir"] / "killed.h5")
    assert "resuming from" in runs["logs"]["resume"]
    assert not checkpoint_path(runs["dir"] / "killed.h5").exists()


def test_two_workers_equal_one_process(runs):
    assert_same(runs["dir"] / "one.h5", runs["dir"] / "workers.h5")
    assert "2 replica(s) on 2 worker(s)" in runs["logs"]["workers"]


def test_two_workers_killed_and_restarted(runs):
    assert_same(runs["dir"] / "one.h5", runs["dir"] / "killed_workers.h5")
    assert "resuming from" in runs["logs"]["resume_workers"]
    assert not checkpoint_path(runs["dir"] / "killed_workers.h5").exists()
