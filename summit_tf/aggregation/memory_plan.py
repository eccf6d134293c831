"""Fit the accumulators to the device: class groups counted in successive passes over the data.

The step's int32 counters grow with classes x (every layer's channels + every link's ``Cout x Cin``):
MobileNetV1 needs ~12 MiB a class, the InceptionV1 structure ~9.6 MiB (BUILD_NOTES), so 1,000 classes
do not fit most GPUs beside the model and a batch. When the accumulators of all classes exceed the
budget, the run's classes are split into the fewest groups that fit, each group is one pass over the
data filtered to its classes, and the passes' outputs are joined (disjoint classes: the join is a
concatenation, the same counts as one pass). Host-resident accumulators fed with device-side top-k
indices were the alternative the issue named; measured (``benchmarks.host_scatter``, a row of
``benchmarks.device``) and not built: they can only save passes, and a card with 40 GB or more counts
1,000 classes of either model in one (BUILD_NOTES, "Scale out").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from summit_tf import store
from summit_tf.aggregation.plan import AggregateError, Plan
from summit_tf.models.base import SummitModel

DEVICE_SHARE = 0.5  # of a GPU's memory, the default budget: the rest for the model, a batch, influence maps
COUNTER_BYTES = 4  # int32


def bytes_per_class(model: SummitModel, plan: Plan) -> int:
    """Device bytes of one class's counters (``step.Accumulators`` divided by the classes), computed
    without allocating them: image count, top-1, probability bins, A per layer, I per link."""
    cells = 2 + store.PROB_BINS + sum(model.channels[layer] for layer in plan.layers)
    cells += sum(link.cout * link.cin for link in plan.links)
    return COUNTER_BYTES * cells


def default_budget() -> int | None:
    """``DEVICE_SHARE`` of the first GPU's memory as TensorFlow's allocator sees it; None without a GPU
    (host memory is the operating system's to manage)."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    from tensorflow.python.client import device_lib  # the one public-enough place with a GPU's memory size

    limits = [d.memory_limit for d in device_lib.list_local_devices() if d.device_type == "GPU"]
    return int(DEVICE_SHARE * limits[0]) if limits and limits[0] else None


def mib(nbytes: int) -> str:
    """A byte count as the plan's log lines write it (``4,869.5 MiB``)."""
    return f"{nbytes / 2**20:,.1f} MiB"


@dataclass(frozen=True)
class MemoryPlan:
    """The run's classes in groups whose accumulators each fit ``budget`` bytes."""

    groups: list[np.ndarray]  # int32 class ids, ascending, disjoint, covering the run's classes
    per_class: int  # bytes
    budget: int | None

    def describe(self) -> str:
        largest = max(g.size for g in self.groups)
        classes = sum(g.size for g in self.groups)
        return (f"memory plan: {classes} classes in {len(self.groups)} passes of <={largest} classes, "
                f"{mib(largest * self.per_class)} each (budget "
                f"{'none' if self.budget is None else mib(self.budget)})")


def plan_groups(classes: np.ndarray, per_class: int, budget: int | None) -> MemoryPlan:
    """The fewest groups of consecutive classes, of near-equal size, whose counters fit ``budget``."""
    classes = np.asarray(classes, np.int32)
    if budget is None or classes.size * per_class <= budget:
        return MemoryPlan([classes], per_class, budget)
    fit = budget // per_class
    if fit < 1:
        raise AggregateError(f"device_memory_budget {budget:,} bytes holds not even one class's "
                             f"accumulators ({per_class:,} bytes)")
    groups = np.array_split(classes, math.ceil(classes.size / fit))
    return MemoryPlan(groups, per_class, budget)
