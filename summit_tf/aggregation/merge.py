"""Sum aggregates files (shards, class splits) into one (command line: ``python -m summit_tf.merge``).

Counts add over the union of the inputs' classes. Inputs must agree on everything that defines a count
(model, layers, links, reductions, selection, influence settings, exclusions, preprocessing) and must not
count the same images twice (two inputs over the same data whose shards may share records and whose classes
overlap); otherwise the merge is refused with exit code 2. Influence matrices are summed one class at a
time, so memory stays at one class's ``Cout x Cin`` per link whatever the number of classes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from summit_tf import store
from summit_tf.aggregation.config import COUNTING_KEYS, IMAGE_SELECTION_KEYS, with_defaults


class MergeError(ValueError):
    """Inputs that cannot be summed; the message names the file and the difference."""


def image_selections(agg: store.Aggregates) -> list[dict]:
    """The image selections an aggregates file counted (several for an already merged file)."""
    selections = agg.config["merged_from"] if "merged_from" in agg.config else [agg.config]
    return [{key: with_defaults(sel).get(key) for key in IMAGE_SELECTION_KEYS} for sel in selections]


def counting(agg: store.Aggregates) -> dict:
    """The settings that define what the file's counts mean (those added after it was written at their
    defaults)."""
    config = with_defaults(agg.config)
    return {key: config.get(key) for key in COUNTING_KEYS}


def _signature(agg: store.Aggregates) -> dict:
    """Everything that must be equal for counts to be summable."""
    return {
        **counting(agg),
        "model": agg.model,
        "layers": list(agg.layers),
        "channels": agg.channels,
        "links": {name: (info, tuple(agg.I[name].shape[1:])) for name, info in sorted(agg.links.items())},
    }


def check_compatible(paths: Sequence[str], inputs: Sequence[store.Aggregates]) -> None:
    """``MergeError`` unless all inputs count the same way and no images are counted twice."""
    first = _signature(inputs[0])
    for path, agg in zip(paths[1:], inputs[1:], strict=True):
        other = _signature(agg)
        diff = [key for key in first if first[key] != other[key]]
        if diff:
            shown = "; ".join(f"{key}: {first[key]!r} vs {other[key]!r}" for key in diff)
            raise MergeError(f"{path} counts differently from {paths[0]} ({shown[:600]})")
    counted = [(i, sel, _countable(agg, sel))
               for i, agg in enumerate(inputs) for sel in image_selections(agg)]
    for n, (i, sel, classes) in enumerate(counted):
        for j, other, other_classes in counted[:n]:
            if j == i or not _may_share_records(sel, other):  # one input's own selections: checked already
                continue
            both = sorted(classes & other_classes)
            if both:
                shown = f"{both[:10]}{' ...' if len(both) > 10 else ''}"
                raise MergeError(f"{paths[j]} and {paths[i]} may both count images of class(es) {shown} "
                                 f"of {sel['data']} ({_shard(other)} and {_shard(sel)}); merging them would "
                                 "count those images twice")


_FILTERS = ("max_images", "max_images_per_class", "classes")  # what makes a data set's record stream


def _countable(agg: store.Aggregates, sel: dict) -> set[int]:
    """Classes whose images ``sel`` may have counted: the file's classes within the selection's filter."""
    present = set(agg.classes.tolist())
    return present & set(sel["classes"]) if sel["classes"] else present


def _shard(sel: dict) -> str:
    return f"shard {sel['shard_index'] or 0} of {sel['num_shards'] or 1}"


def _may_share_records(a: dict, b: dict) -> bool:
    """Whether two image selections can hold the same record, judged from data, filters and shards.

    The data is filtered, then sharded (``summit_tf.data.source``): of one filtered stream, shard i of n
    holds the records r = i (mod n), so shards i of n and j of m share records iff i = j (mod gcd(n, m)).
    TFRecords without a count cap are sharded by files instead where there are at least n files; two shard
    counts may then split the same files one by records, one by files, and share records whatever the
    indices. Streams filtered differently number their records differently: their shards may share any.
    """
    if a["data"] != b["data"]:
        return False
    if any(a[key] != b[key] for key in _FILTERS):
        return True
    n, m = a["num_shards"] or 1, b["num_shards"] or 1
    by_file_maybe = (str(a["data"]).startswith("tfrecord:") and a["max_images"] is None
                     and a["max_images_per_class"] is None)
    if n != m and by_file_maybe:
        return True
    return ((a["shard_index"] or 0) - (b["shard_index"] or 0)) % math.gcd(n, m) == 0


class _SummedRows:
    """Per-class sums of one link's influence counts, read from the inputs one class at a time."""

    def __init__(self, name: str, inputs: Sequence[store.Aggregates], rows: Sequence[np.ndarray],
                 k: int) -> None:
        self.name, self.inputs = name, inputs
        self.shape = (k, *inputs[0].I[name].shape[1:])
        # union row -> [(input, input row)]
        self.sources: list[list[tuple[int, int]]] = [[] for _ in range(k)]
        for i, union_rows in enumerate(rows):
            for own, row in enumerate(union_rows):
                self.sources[row].append((i, own))

    def __getitem__(self, row: int) -> np.ndarray:
        total = np.zeros(self.shape[1:], np.int64)
        for i, own in self.sources[row]:
            total += self.inputs[i].I[self.name][own]
        return total


def merge(paths: Sequence[str], out: str | os.PathLike, config: dict | None = None) -> store.Aggregates:
    """Sum the aggregates files ``paths`` into ``out`` (written atomically). ``config``: the output's
    ``config`` record (default: the shared counting settings and every input's image selection, under
    ``merged_from``); a run that joins its own class-group passes gives its one-pass record.

    Returns ``out`` opened with :func:`store.load` (the inputs are closed by then): close it, or use it
    as a context manager.
    """
    if len(paths) < 1:
        raise MergeError("nothing to merge: give the aggregates files to sum")
    inputs = []
    try:
        for path in paths:
            inputs.append(store.load(path))
        check_compatible(paths, inputs)
        classes = np.unique(np.concatenate([agg.classes for agg in inputs])).astype(np.int32)
        rows = [np.searchsorted(classes, agg.classes) for agg in inputs]
        k = classes.size

        def summed(get, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
            total = np.zeros((k, *shape_tail), np.int64)
            for agg, r in zip(inputs, rows, strict=True):
                total[r] += get(agg)
            return total

        first = inputs[0]
        merged = store.Aggregates(
            model=first.model,
            config=config if config is not None else {
                **counting(first),
                "merged_from": [sel for agg in inputs for sel in image_selections(agg)]},
            classes=classes,
            class_count=summed(lambda a: a.class_count),
            layers=list(first.layers),
            A={layer: summed(lambda a, layer=layer: a.A[layer], (c,)) for layer, c in first.channels.items()},
            links=dict(first.links),
            I={name: _SummedRows(name, inputs, rows, k) for name in first.links},
            correct=summed(lambda a: a.correct),
            prob_hist=summed(lambda a: a.prob_hist, (store.PROB_BINS,)),
            num_images=sum(agg.num_images for agg in inputs),
            num_skipped=sum(agg.num_skipped for agg in inputs),
        )
        store.save(out, merged)
    finally:
        for agg in inputs:
            agg.close()
    return store.load(out)
