"""Host-resident accumulators, measured: what counting on the host would cost instead of class-group passes.

When the int32 counters of all classes exceed the device's memory, the engine counts the classes in
groups, one full pass over the data per group (``summit_tf/aggregation/memory_plan.py``). The alternative
is to keep the counters in host memory and send them, every batch, the flat indices the device found
(``step.count_indices``: the image count, A per layer, every link's Cout x top-k inputs per image). This
module measures the host side of that: TensorFlow's CPU ``ResourceScatterAdd`` (the op the engine runs)
of a real step's index batches into host counters of the same layout, on one core (the scatters chained
one after another; the op is single-threaded) and on all cores (every counter's scatter at once, as the
step issues them: the largest counter's share of the indices bounds the gain), and compares, at a given
device rate:

- host accumulators: one pass, as fast as the slower of the device and the host's scatter;
- class-group passes: ``passes`` full passes at the device's rate.

Counters are made for the batch's classes only (all 1,000 would not fit a development machine); a
batch's indices fall in its images' class rows either way.
"""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from benchmarks import machine
from summit_tf.aggregation import memory_plan
from summit_tf.aggregation import plan as run_plan
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.step import Accumulators, count_indices
from summit_tf.models.base import SummitModel


def step_indices(model: SummitModel, plan: run_plan.Plan, cfg: AggregateConfig, shapes: dict,
                 batches: list) -> list[dict[str, tf.Tensor]]:
    """Per batch, the step's flat indices per counter, computed where the model runs, copied to the host."""
    slot_of = tf.constant(plan.slot_table())

    @tf.function(autograph=False)
    def indices(images: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
        slots = tf.gather(slot_of, labels)
        return {name: tf.reshape(flat, [-1])
                for name, flat in count_indices(model.features(images), slots, plan, cfg, shapes).items()}

    out = []
    for images, labels in batches:
        found = indices(images, tf.constant(labels, tf.int32))
        with tf.device("/cpu:0"):
            out.append({name: tf.identity(value.numpy()) for name, value in found.items()})
    return out


def host_scatter(model: SummitModel, cfg: AggregateConfig, batches: list, repeats: int) -> dict:
    """Indices per image and the host's scatter-add rate (indices/s) on one core and on all cores."""
    labels = sorted({int(c) for _, y in batches for c in y})
    plan = run_plan.make_plan(model, cfg, labels)
    with tf.device("/cpu:0"):
        acc = Accumulators(model, plan)
    counters = acc.vars
    index_batches = step_indices(model, plan, cfg, acc.shapes, batches)
    spec = {name: tf.TensorSpec([None], value.dtype) for name, value in index_batches[0].items()}

    def scatter(chained: bool) -> tf.types.experimental.PolymorphicFunction:
        @tf.function(autograph=False, input_signature=[spec])
        def add(indices: dict[str, tf.Tensor]) -> None:
            previous: list = []
            for name, flat in indices.items():
                with tf.device("/cpu:0"), tf.control_dependencies(previous if chained else []):
                    op = tf.raw_ops.ResourceScatterAdd(resource=counters[name].handle, indices=flat,
                                                       updates=tf.ones(tf.size(flat), tf.int32))
                previous = [op]

        return add

    one_core, all_cores = scatter(True), scatter(False)

    def timed(add: tf.types.experimental.PolymorphicFunction) -> float:
        start = time.perf_counter()
        for indices in index_batches:
            add(indices)
        counters["count"].numpy()  # the scatters run before the function returns; this read is a formality
        return time.perf_counter() - start

    for add in (one_core, all_cores):  # trace
        add(index_batches[0])
    rounds = machine.interleaved({"one": lambda: timed(one_core), "all": lambda: timed(all_cores)}, repeats)
    best = {side: min(times) for side, times in rounds.items()}  # the fastest counts
    per_counter = {name: sum(int(b[name].shape[0]) for b in index_batches) for name in spec}
    total = sum(per_counter.values())
    images = sum(int(y.size) for _, y in batches)
    return {"indices_per_image": total / images, "one_core_indices_per_s": total / best["one"],
            "all_cores_indices_per_s": total / best["all"], "cores": os.cpu_count(),
            "counters": len(spec), "largest_counter_share": max(per_counter.values()) / total}


def compare(host: dict, images_per_s: float, per_class_bytes: int, budget: int | None, images: int,
            classes: int = 1000) -> dict:
    """Host accumulators vs class-group passes for ``images`` images of ``classes`` classes, at the device's
    aggregation rate ``images_per_s`` and memory ``budget`` (None: no limit)."""
    index_rate = images_per_s * host["indices_per_image"]  # what the device would send, indices/s
    passes = len(memory_plan.plan_groups(np.arange(classes), per_class_bytes, budget).groups)  # as the engine
    host_rate = min(images_per_s, host["all_cores_indices_per_s"] / host["indices_per_image"])
    device_pass_s = images / images_per_s
    return {"device_images_per_s": images_per_s, "index_mb_per_s": 4e-6 * index_rate,
            "cores_needed": index_rate / host["one_core_indices_per_s"],
            "host_images_per_s": host_rate, "host_minutes": images / host_rate / 60,
            "passes": passes, "passes_minutes": passes * device_pass_s / 60,
            "break_even_passes": images_per_s / host_rate,
            "cheaper": "host accumulators" if images / host_rate < passes * device_pass_s
            else "class-group passes"}
