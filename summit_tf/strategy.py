"""``--strategy`` names -> TensorFlow's own distribution engines (``tf.distribute``), and the check of the
cluster description (``TF_CONFIG``) that multi-worker runs need; shared by aggregation and feature vis.

TensorFlow reads ``TF_CONFIG`` itself; command lines pass its text to :func:`check_tf_config` first, so a
missing or malformed one is one clear error instead of a silent single-worker run or a hang.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from summit_tf.vocabulary import STRATEGIES

if TYPE_CHECKING:
    import tensorflow as tf

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


@dataclass(frozen=True)
class Cluster:
    """Where this process stands in a multi-worker job (worker 0 is the chief)."""

    num_workers: int
    worker_index: int


def check_tf_config(text: str | None) -> Cluster:
    """Parse ``TF_CONFIG`` as MultiWorkerMirroredStrategy reads it; ``ValueError`` says what is wrong."""
    if not text:
        raise ValueError(f"--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
                         f"TF_CONFIG='{TF_CONFIG_EXAMPLE}'")
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not JSON ({e}); e.g. '{TF_CONFIG_EXAMPLE}'") from None
    cluster = conf.get("cluster") if isinstance(conf, dict) else None
    task = conf.get("task") if isinstance(conf, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG needs 'cluster' and 'task' objects, e.g. '{TF_CONFIG_EXAMPLE}'")
    unknown = set(cluster) - {"chief", "worker"}
    if unknown:
        raise ValueError(f"TF_CONFIG: multi_worker runs only 'chief' and 'worker' tasks, got "
                         f"{sorted(unknown)}")
    chiefs, workers = cluster.get("chief", []), cluster.get("worker", [])
    if not isinstance(chiefs, list) or not isinstance(workers, list) or len(chiefs) > 1:
        raise ValueError("TF_CONFIG: cluster 'chief' (at most one) and 'worker' must be lists of host:port")
    kind, index = task.get("type"), task.get("index")
    size = {"chief": len(chiefs), "worker": len(workers)}
    if kind not in size or not isinstance(index, int) or not 0 <= index < size[kind]:
        raise ValueError(f"TF_CONFIG: task {task} is not in the cluster ({size['chief']} chief, "
                         f"{size['worker']} workers)")
    return Cluster(len(chiefs) + len(workers), index + (len(chiefs) if kind == "worker" else 0))


def make_strategy(name: str, devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """The strategy ``name`` stands for; ``devices`` (mirrored only) overrides the visible GPUs.

    Call it before any other TensorFlow work: multi-worker collectives must be set up at start-up.
    ``one_device`` is TensorFlow's default strategy (no distribution code in the step at all).
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if devices is not None and name != "mirrored":
        raise ValueError(f"devices apply to strategy 'mirrored' only, got strategy {name!r}")
    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(list(devices) if devices is not None else None)
    return tf.distribute.MultiWorkerMirroredStrategy()
