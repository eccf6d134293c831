"""Resumable runs: the accumulators, each worker's next input record and counters written atomically beside
the output (``OUT.ckpt.h5``), and read back only by a run with exactly the same settings and workers.

The file holds totals (the replicas' counters already folded together), so a run may resume under another
strategy or number of devices; only the number of workers must stay, since each reads its own part of the
data."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import tensorflow as tf

from summit_tf import atomic
from summit_tf.aggregation.config import differences
from summit_tf.aggregation.plan import AggregateError, Plan, SettingsMismatch
from summit_tf.aggregation.step import READ_BLOCK, counter_slice, flat_range

CHECKPOINT_FORMAT = "summit-tf/checkpoint"
CHUNK = 2**20  # counter entries in one HDF5 chunk (4 MiB)


def checkpoint_path(out: str | os.PathLike) -> Path:
    return Path(f"{out}.ckpt.h5")


@dataclass
class State:
    """Host-side progress of one worker through its input stream."""

    next_record: int = 0
    images: int = 0
    batches: int = 0

    def row(self) -> list[int]:
        return [self.next_record, self.images, self.batches]


def save_checkpoint(path: Path, counters: dict[str, tf.Variable], plan: Plan, states: list[State],
                    record: dict) -> None:
    """``counters`` by name (flat totals: a single device's variables or the folded replica), one state a
    worker."""

    def write(f: h5py.File) -> None:
        f.attrs.update(format=CHECKPOINT_FORMAT, config=json.dumps(record, sort_keys=True),
                       workers=len(states), next_record=states[0].next_record,
                       images=sum(s.images for s in states), batches=states[0].batches)
        f["classes"] = plan.classes
        f["positions"] = np.asarray([s.row() for s in states], np.int64)
        for name, var in counters.items():
            size = int(var.shape[0])  # flat counters (step.Accumulators)
            # lzf: about twice as fast as gzip for ~20 % more bytes; checkpoints are written often
            # and read once, by h5py only
            ds = f.create_dataset(name, shape=(size,), dtype=np.int32, chunks=(max(1, min(size, CHUNK)),),
                                  compression="lzf")
            for start in range(0, size, READ_BLOCK):
                stop = min(start + READ_BLOCK, size)
                ds[start:stop] = counter_slice(var, start, stop).numpy()

    with atomic.writing(path) as tmp, h5py.File(tmp, "w") as f:
        write(f)


def load_checkpoint(path: Path, counters: dict[str, tf.Variable], plan: Plan, record: dict,
                    workers: int = 1) -> list[State]:
    """Restore the counters (totals into ``counters``) and return each worker's state; the checkpoint must
    come from a run with exactly these settings and ``workers`` workers."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != CHECKPOINT_FORMAT:
            raise AggregateError(f"{path} is not a summit-tf checkpoint")
        diff = differences(json.loads(f.attrs["config"]), record)
        if diff:
            raise SettingsMismatch(f"cannot resume: {path} was written with other settings "
                                 f"(setting: checkpoint vs now): {diff}")
        if not np.array_equal(f["classes"][()], plan.classes):
            raise SettingsMismatch(f"cannot resume: {path} counts other classes than this data")
        saved_workers = int(f.attrs.get("workers", 1))
        if saved_workers != workers:
            raise SettingsMismatch(f"cannot resume: {path} was written by {saved_workers} worker(s), this "
                                 f"run has {workers}; each worker reads its own part of the data")
        for name, var in counters.items():
            _restore(f, name, var, path)
        if "positions" in f:
            return [State(*(int(v) for v in row)) for row in f["positions"][()]]
        return [State(int(f.attrs["next_record"]), int(f.attrs["images"]), int(f.attrs["batches"]))]


def _restore(f: h5py.File, name: str, var: tf.Variable, path: Path) -> None:
    """Counter ``name`` from the file into ``var``, ``READ_BLOCK`` entries at a time (host memory stays
    small). Checkpoints written before the counters were flat hold classes-first arrays: their rows, in
    order, are the flat layout."""
    if name not in f or f[name].size != int(var.shape[0]):
        raise AggregateError(f"cannot resume: {path} has no counter {name!r} of {int(var.shape[0])} entries")
    ds = f[name]
    row = int(np.prod(ds.shape[1:]))
    rows_a_read = max(1, READ_BLOCK // row)
    for first in range(0, ds.shape[0], rows_a_read):
        values = ds[first:first + rows_a_read].reshape(-1)
        start = first * row
        indices = flat_range(var, start, start + values.size)
        tf.raw_ops.ResourceScatterUpdate(resource=var.handle, indices=indices,
                                         updates=tf.constant(values, var.dtype))


def remove_stale_temporaries(path: Path) -> None:
    """Temporary files a killed run left while writing ``path`` (as :func:`atomic.writing` names them)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)
