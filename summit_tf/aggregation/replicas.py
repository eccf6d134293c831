"""The replicas of a ``tf.distribute`` strategy as the aggregation needs them: each keeps its own
counters (updated locally, never all-reduced per step); sums are folded into the chief's first replica
only at checkpoints and at the end, a block of flat entries at a time, so the chief reads and writes
totals.

On one worker the fold moves blocks between local devices; across workers it is one collective sum per
block, which every worker runs in the same order. Small host values (stream positions, flags) travel by
the same collective sum, each worker filling its own row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from summit_tf.aggregation.step import counter_slice, flat_range
from summit_tf.strategy import Cluster


def cluster_of(strategy: tf.distribute.Strategy) -> Cluster:
    """Workers in the job and this one's index (worker 0 is the chief; one worker without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec or resolver.task_type is None:
        return Cluster(1, 0)
    chiefs, workers = len(spec.get("chief", [])), len(spec.get("worker", []))
    index = int(resolver.task_id) + (chiefs if resolver.task_type == "worker" else 0)
    return Cluster(chiefs + workers, index)


class Replicas:
    """A strategy, this worker's place in the job, and the cross-replica operations on counters."""

    def __init__(self, strategy: tf.distribute.Strategy | None = None) -> None:
        self.strategy = strategy if strategy is not None else tf.distribute.get_strategy()
        cluster = cluster_of(self.strategy)
        self.num_workers, self.worker_index = cluster.num_workers, cluster.worker_index
        self.is_chief = self.worker_index == 0
        self.num_replicas = int(self.strategy.num_replicas_in_sync)

    def local(self, value: object) -> tuple:
        """This worker's per-replica parts of a distributed value or variable."""
        return tuple(self.strategy.experimental_local_results(value))

    def _sum(self, parts: Sequence[tf.Tensor]) -> tf.Tensor:
        """Sum over every replica of the job, given this worker's per-replica ``parts``."""
        if self.num_replicas == 1:
            return parts[0]
        per_replica = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.identity(parts[ctx.replica_id_in_sync_group % len(parts)]))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def fold(self, var: tf.Variable, start: int, stop: int) -> None:
        """Entries ``start:stop`` of a flat counter: the sum over all replicas into the chief's first,
        zeros elsewhere.

        The total over replicas is unchanged, so counting goes on afterwards as before."""
        if self.num_replicas == 1:
            return
        local = self.local(var)
        total = self._sum([counter_slice(v, start, stop) for v in local])
        indices = flat_range(var, start, stop)
        for i, v in enumerate(local):
            value = total if i == 0 and self.is_chief else tf.zeros_like(total)
            tf.raw_ops.ResourceScatterUpdate(resource=v.handle, indices=indices, updates=value)

    def primary(self, var: tf.Variable) -> tf.Variable:
        """The replica that holds the totals after :meth:`fold` (on the chief)."""
        return self.local(var)[0]

    def gather_ints(self, values: Sequence[int]) -> np.ndarray:
        """int64 ``[workers, n]``: every worker's ``values`` (a collective when there are several)."""
        row = np.asarray(values, np.int64)
        if self.num_workers == 1:
            return row[None]
        if row.size and (row.min() < -2**31 or row.max() >= 2**31):
            raise ValueError(f"values exceed int32: {values}")
        table = np.zeros((self.num_workers, row.size), np.int32)
        table[self.worker_index] = row
        first = tf.constant(table)
        parts = [first] + [tf.zeros_like(first)] * (len(self.local_devices()) - 1)
        return self._sum(parts).numpy().astype(np.int64)

    def local_devices(self) -> tuple[str, ...]:
        return tuple(self.strategy.extended.worker_devices)

    def any(self, flag: bool) -> bool:
        """True on every worker when it is True on any (decisions that start collective work)."""
        return bool(self.gather_ints([int(flag)]).any()) if self.num_workers > 1 else flag
