"""Mirrored scaling of the aggregation: the engine's step (``step.make_step``) fed as the engine feeds it
(``distribute_datasets_from_function``), on one device (``--strategy=one_device``) vs ``mirrored`` over N
devices with N times the global batch; efficiency = rate_N / (N x rate_1).

Used by ``benchmarks.device``: on N >= 2 GPUs it measures them; ``--smoke`` runs the same code on two
logical CPU devices (which share the machine's cores: there the figure means nothing, only the code path
is kept alive). TensorFlow fixes its devices at start-up, so :func:`split_cpu` must run before any
TensorFlow work.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from benchmarks import aggregate as agg_bench
from benchmarks import machine
from summit_tf.aggregation import plan as run_plan
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.step import Accumulators, make_step
from summit_tf.models.base import SummitModel
from summit_tf.strategy import make_strategy

INTER_OP_THREADS = 8  # logical CPU replicas in a 2-thread pool may deadlock (tests/distribute_harness.py)


def split_cpu(n: int) -> str | None:
    """The CPU as ``n`` logical devices (and a larger inter-op pool); None, or why it could not be done."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
    except RuntimeError:
        return "TensorFlow was initialized before the CPU could be split (run it as its own process)"
    return None


def devices(kind: str) -> list[str]:
    """The logical devices of ``kind`` ("GPU" or "CPU") by name."""
    return [d.name for d in tf.config.list_logical_devices(kind)]


def timed_step(model: SummitModel, cfg: AggregateConfig, strategy: tf.distribute.Strategy,
               per_replica_batch: int, steps: int) -> tuple[Callable[[], float], float]:
    """(a pass's images/s, first call s) of the engine's step under ``strategy``: a pass is ``steps`` global
    batches of random images from an in-memory ``tf.data`` pipeline; the first call (tracing) is made here."""
    replicas = strategy.num_replicas_in_sync
    pool = agg_bench.make_batches(model.input_size, per_replica_batch, 2)  # two distinct batches, cycled
    images = np.concatenate([x.numpy() for x, _ in pool])
    labels = np.concatenate([y for _, y in pool])
    plan = run_plan.make_plan(model, cfg, sorted({int(c) for c in labels}))
    data = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    data = data.repeat().batch(per_replica_batch).prefetch(2)
    batches = strategy.distribute_datasets_from_function(lambda _: data)
    specs = batches.element_spec
    acc = Accumulators(model, plan, strategy)
    step = make_step(model, plan, acc, cfg, strategy, (specs["image"], specs["label"]))
    stream = iter(batches)

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            batch = next(stream)
            step(batch["image"], batch["label"])
        for part in strategy.experimental_local_results(acc.vars["count"]):  # wait for every device
            part.numpy()
        return time.perf_counter() - start

    first = run(1)
    return lambda: steps * per_replica_batch * replicas / run(steps), first


def scaling(model: SummitModel, label: str, cfg: AggregateConfig, names: list[str], per_device_batch: int,
            steps: int, repeats: int) -> dict:
    """One device vs ``mirrored`` over the devices ``names``, the same per-device batch: both set up and
    traced first, then ``repeats`` passes of each, interleaved; the fastest counts."""
    one, one_first = timed_step(model, cfg, make_strategy("one_device"), per_device_batch, steps)
    many, many_first = timed_step(model, cfg, make_strategy("mirrored", names), per_device_batch, steps)
    rates = machine.interleaved({"one": one, "many": many}, repeats)
    one_rate, many_rate = max(rates["one"]), max(rates["many"])
    n = len(names)
    return {"model": label, "devices": n, "per_device_batch": per_device_batch,
            "one_device_images_per_s": one_rate, "mirrored_images_per_s": many_rate,
            "efficiency": many_rate / (n * one_rate),
            "first_call_s": {"one_device": one_first, "mirrored": many_first}}
