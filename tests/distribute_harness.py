"""Subprocess side of ``test_distribute.py``: TensorFlow fixes its devices (logical CPUs) and its cluster
(TF_CONFIG) at start-up, so each setup needs its own process. The toy model stands in for a real one
(``summit_tf.models.load`` is replaced), the data (``tfrecord:`` or ``folder:`` specs) are small JPEGs read
by the real pipeline.

    python tests/distribute_harness.py mirrored DATA OUT_DIR KILLED FOLDER  # one_device, 2 and 3 replicas,
        # FOLDER on one device; feature vis on 1 and 2 devices; then resumes run KILLED on 3 replicas once
        # KILLED.go exists
    python tests/distribute_harness.py gated DATA OUT REPLICAS    # checkpoints every step, then hangs
    python tests/distribute_harness.py worker DATA OUT [--gate] [--resume]   # the CLI, TF_CONFIG set
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))
from toy import toy_model  # noqa: E402

import summit_tf.data  # noqa: E402
import summit_tf.models  # noqa: E402

BATCH = 3
GATE_AT = 2  # gated runs stop (hang until killed) at their third batch
CLASSES = (0, 5, 217, 999)  # the classes of test_distribute.py's records
INTER_OP_THREADS = 8


def use_toy_model() -> None:
    summit_tf.models.load = lambda spec, **kwargs: toy_model()


def gate_data() -> None:
    """Batches from ``GATE_AT`` on never come: the run checkpoints what it counted and waits to be killed."""
    load = summit_tf.data.load
    never = threading.Event()

    def block(x: tf.Tensor) -> tf.Tensor:
        never.wait()
        return x

    def gated(*args, **kwargs):
        source = load(*args, **kwargs)
        ds = source.dataset.enumerate().map(
            lambda i, b: {**b, "index": tf.cond(i < GATE_AT, lambda: b["index"],
                                                lambda: tf.py_function(block, [b["index"]], tf.int64))})
        source.dataset = ds
        return source

    summit_tf.data.load = gated


def logical_cpus(n: int) -> list[str]:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    return [f"/cpu:{i}" for i in range(n)]


def config(data: str, out: str, **kwargs):
    from summit_tf.aggregation.config import AggregateConfig

    return AggregateConfig(model="toy", data=data, out=out, batch_size=BATCH, checkpoint_minutes=0,
                           classes=CLASSES if data.startswith("tfrecord:") else None, **kwargs)


def render_feature_vis(out: str, devices: list[str]) -> None:
    """The same channels on one device and spread over two (4 batches of channel images, 7 of diversity
    images), into OUT/fv-one and OUT/fv-mirrored."""
    from feature_vis.optimize import RenderSettings
    from feature_vis.to_disk import render_to_dir
    from summit_tf.strategy import make_strategy

    settings = RenderSettings(size=16, steps=3, seed=0)
    selection = {"conv2": [1, 2, 3], "sep3": [0, 4, 5, 7]}
    strategies = {"one": make_strategy("one_device"), "mirrored": make_strategy("mirrored", devices[:2])}
    for name, strategy in strategies.items():
        render_to_dir(toy_model(), selection, f"{out}/fv-{name}", settings, batch_channels=2, diversity=2,
                      sprites=False, strategy=strategy)


def wait_for(path: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear")
        time.sleep(0.02)


def main(mode: str, data: str, out: str, *rest: str) -> int:
    from summit_tf.aggregation.run import aggregate
    from summit_tf.strategy import make_strategy

    # TF's inter-op pool defaults to the core count (2 here); 3 replicas on logical CPUs plus the input
    # iterator's threads can wait on each other in so small a pool
    tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)

    use_toy_model()
    if mode == "mirrored":
        devices = logical_cpus(3)
        aggregate(config(data, f"{out}/one.h5"), strategy=make_strategy("one_device"))
        for n in (2, 3):
            aggregate(config(data, f"{out}/mirrored{n}.h5"), strategy=make_strategy("mirrored", devices[:n]))
        aggregate(config(rest[1], f"{out}/one_folder.h5"), strategy=make_strategy("one_device"))
        render_feature_vis(out, devices)
        wait_for(Path(f"{rest[0]}.go"))
        aggregate(config(data, rest[0], checkpoint_every=1, resume=True),
                  strategy=make_strategy("mirrored", devices))
        return 0
    if mode == "gated":
        gate_data()
        aggregate(config(data, out, checkpoint_every=1), strategy=make_strategy("mirrored", logical_cpus(2)))
        return 0
    if mode == "worker":
        from summit_tf import aggregate as cli

        if "--gate" in rest:
            gate_data()
        flags = ["--strategy=multi_worker", "--model=toy", f"--data={data}", f"--out={out}",
                 f"--batch_size={BATCH}", "--checkpoint_every=1", "--checkpoint_minutes=0"]
        if data.startswith("tfrecord:"):  # folder: the classes come from the listing (the union of workers')
            flags.append("--classes=" + ",".join(map(str, CLASSES)))
        return cli.main(["aggregate", *flags, *(["--resume"] if "--resume" in rest else [])])
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    np.set_printoptions(linewidth=200)
    sys.exit(main(*sys.argv[1:]))
