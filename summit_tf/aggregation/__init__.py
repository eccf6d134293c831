"""Aggregation: one streaming pass over a data set counts SUMMIT's A (top activations) and every I
(top influences) per class.

Modules: :mod:`config` (what a run counts), :mod:`channel_selection` (channel scores, A's selection, I's
top-k), :mod:`influence` and :mod:`influence_topk` (the per-pair influence kernels), :mod:`plan` (the run
resolved against model and data), :mod:`step` (the ``tf.function`` step and its device accumulators),
:mod:`replicas` (the devices and workers of a ``tf.distribute`` strategy, and folding their counters),
:mod:`memory_plan` (class groups that fit a device memory budget), :mod:`checkpoint` (resumable runs),
:mod:`engine` (the streaming pass over ``tf.data``), :mod:`run` (a run from a config, in class-group passes
where needed), :mod:`merge` (summing shards). Command lines: ``python -m summit_tf.aggregate`` and
``python -m summit_tf.merge``.
"""

from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.merge import MergeError, merge
from summit_tf.aggregation.run import aggregate

__all__ = ["AggregateConfig", "MergeError", "aggregate", "merge"]
