"""The aggregation pass: stream a dataset once and count, per class, SUMMIT's A and I matrices.

One ``tf.function`` step per batch runs the model, reduces every layer's channels, selects them
(``selection``), finds every link's top-k inputs by per-pair influence (``influence_topk``), and adds
the results into int32 ``tf.Variable`` accumulators with ``scatter_nd_add``: the batch never comes back
to Python, and nothing on the host waits for the device except at checkpoints and at the end.

Memory is bounded by the accumulators (``K`` classes x every layer's channels and every link's
``Cout x Cin``; printed before the run starts) plus one batch: a run over 1,000 classes of a large model
can be split with ``classes`` and the pieces joined by ``summit_tf.merge``.

Resume: every ``checkpoint_minutes`` (and/or ``checkpoint_every`` batches) the accumulators, the next
record of the input stream and the counters are written atomically beside the output
(``OUT.ckpt.h5``). Because the step is deterministic and the input stream is ordered, a resumed run
ends with exactly the counts of an uninterrupted one. The checkpoint is removed once the output is
written. Unreadable records are counted from the gaps in the stream positions (plus those after the
last image when the source knows its length; TFRecord sources do not, so trailing ones go uncounted).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import tensorflow as tf

from summit_tf import store
from summit_tf.aggregation.checkpoint import (
    ROW_BLOCK,
    State,
    checkpoint_path,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.plan import AggregateError, OpenSource, make_plan
from summit_tf.aggregation.step import NON_FINITE, Accumulators, make_step
from summit_tf.imagenet import NUM_CLASSES
from summit_tf.models.base import SummitModel
from summit_tf.progress import Progress

LARGE_ACCUMULATORS = 4 * 2**30  # bytes; above this the start-up line suggests splitting by class

__all__ = ["AggregateError", "RunSummary", "aggregate", "check_output", "checkpoint_path", "finished",
           "finished_summary"]


class _Rows:
    """Rows ``rows`` of a device counter, read a block at a time: host memory stays small."""

    def __init__(self, var: tf.Variable, rows: np.ndarray) -> None:
        self.var, self.rows = var, rows
        self.shape = (int(rows.size), *var.shape[1:])
        self._block: tuple[int, np.ndarray] | None = None

    def __getitem__(self, i: int) -> np.ndarray:
        start = i - i % ROW_BLOCK
        if self._block is None or self._block[0] != start:
            ids = self.rows[start:start + ROW_BLOCK]
            self._block = (start, tf.gather(self.var, ids).numpy())
        return self._block[1][i - start]


def finished(cfg: AggregateConfig) -> bool:
    """``--resume`` of a run that already wrote its output: nothing is left to do."""
    return cfg.resume and Path(cfg.out).exists() and not checkpoint_path(cfg.out).exists()


def check_output(cfg: AggregateConfig) -> None:
    """Refuse to replace an output or an interrupted run's checkpoint unless asked to."""
    if cfg.resume or cfg.overwrite:
        return
    out, ckpt = Path(cfg.out), checkpoint_path(cfg.out)
    if out.exists():
        raise AggregateError(f"output {out} exists; pass overwrite (--overwrite) to replace it")
    if ckpt.exists():
        raise AggregateError(f"{ckpt} holds an interrupted run; pass resume (--resume) to continue it "
                             "or --overwrite to start over")


@dataclass
class RunSummary:
    """What a finished run did."""

    out: Path
    images: int
    skipped: int
    classes: int
    seconds: float
    resumed_from: int  # images already counted by the checkpoint (0 for a fresh run)


def finished_summary(cfg: AggregateConfig, stream: TextIO | None = None) -> RunSummary:
    """The summary of a run whose output is already complete (``--resume`` after the end)."""
    out = Path(cfg.out)
    _say(stream or sys.stderr, f"{out} is complete (no checkpoint to resume): nothing to do")
    with store.load(out) as done:
        return RunSummary(out, done.num_images, done.num_skipped, int(done.classes.size), 0.0,
                          done.num_images)


def _say(stream: TextIO, text: str) -> None:
    print(text, file=stream, flush=True)


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f} MiB"


def aggregate(cfg: AggregateConfig, model: SummitModel, open_source: OpenSource,
              stream: TextIO | None = None) -> RunSummary:
    """Count A, I and the prediction statistics over the source and write ``cfg.out`` atomically.

    ``open_source(skip_records)`` opens the input stream (``--resume`` skips the records a checkpoint
    already counted). Raises :class:`AggregateError` for problems with the user's input.
    """
    stream = stream if stream is not None else sys.stderr
    t0 = time.monotonic()
    out, ckpt = Path(cfg.out), checkpoint_path(cfg.out)
    if finished(cfg):
        return finished_summary(cfg, stream)
    check_output(cfg)
    if cfg.overwrite:
        ckpt.unlink(missing_ok=True)
    for path in (out, ckpt):
        remove_stale_temporaries(path)
    resuming = cfg.resume and ckpt.exists()
    if cfg.resume and not resuming:
        _say(stream, f"no checkpoint {ckpt} to resume from: starting from the beginning")

    first = open_source(0)
    if first.num_records == 0:
        raise AggregateError(f"empty data: {cfg.data} has no images (after class filters and sharding)")
    plan = make_plan(model, cfg, first.classes)
    record = {**cfg.record(), "layers": plan.layers}
    acc = Accumulators(model, plan)
    state = State()
    if resuming:
        state = load_checkpoint(ckpt, acc, plan, record)
        _say(stream, f"resuming from {ckpt}: {state.images} images counted, record {state.next_record} next")
        source = open_source(state.next_record)
    else:
        source = first
    _say(stream, f"{model.spec}: {len(plan.layers)} layers, {len(plan.links)} links, {plan.classes.size} "
                 f"classes; device accumulators {_mib(acc.nbytes())} "
                 f"({_mib(acc.nbytes() // plan.classes.size)} per class)"
                 + ("; to use less memory, split the classes with --classes and merge the parts"
                    if acc.nbytes() > LARGE_ACCUMULATORS else ""))

    step = make_step(model, plan, acc, cfg)
    slot_table = plan.slot_table()
    total = first.num_records
    if total is None and cfg.max_images is not None:
        total = -(-cfg.max_images // cfg.num_shards)
    progress = Progress("aggregate", total=total, start=state.images, stream=stream)
    start_images = state.images
    last_checkpoint, checkpoint_gap = time.monotonic(), 60 * cfg.checkpoint_minutes
    for batch in source.dataset:
        labels = batch["label"].numpy()
        bad = (labels < 0) | (labels >= NUM_CLASSES)
        bad[~bad] = slot_table[labels[~bad]] < 0
        if bad.any():
            raise AggregateError(f"a class count that does not fit the model: label(s) "
                                 f"{sorted(set(labels[bad].tolist()))[:10]} are outside this run's classes")
        try:
            step(batch["image"], tf.constant(labels, tf.int32))
        except tf.errors.InvalidArgumentError as e:
            if NON_FINITE not in str(e):
                raise
            raise AggregateError(f"{model.spec} gave non-finite outputs (NaN or inf) for an image among "
                                 f"records {int(batch['index'][0])}..{int(batch['index'][-1])}: check the "
                                 "model's weights and preprocessing; no output was written") from None
        state.images += int(labels.size)
        state.batches += 1
        state.next_record = int(batch["index"][-1]) + 1
        progress.update(int(labels.size))
        due_by_count = cfg.checkpoint_every and state.batches % cfg.checkpoint_every == 0
        due_by_time = cfg.checkpoint_minutes and time.monotonic() - last_checkpoint >= checkpoint_gap
        if due_by_count or due_by_time:
            t_save = time.monotonic()
            save_checkpoint(ckpt, acc, plan, state, record)
            last_checkpoint = time.monotonic()
            # Large accumulators take long to save: keep timed checkpoints under ~5 % of the run.
            checkpoint_gap = max(60 * cfg.checkpoint_minutes, 20 * (last_checkpoint - t_save))
    progress.finish()
    if state.images == 0:
        raise AggregateError(f"empty data: no readable images in {cfg.data}")

    # Unreadable records show as gaps in the stream positions; those after the last readable image
    # are known only when the source knows its length.
    trailing = 0 if first.num_records is None else max(first.num_records - state.next_record, 0)
    skipped = state.next_record - state.images + trailing

    counts = acc.count.numpy()
    rows = np.flatnonzero(counts > 0)
    agg = store.Aggregates(
        model=model.spec,
        config=record,
        classes=plan.classes[rows],
        class_count=counts[rows].astype(np.int64),
        layers=plan.layers,
        A={layer: tf.gather(var, rows).numpy() for layer, var in acc.A.items()},
        links={link.name: store.LinkInfo(link.name, link.src, link.dst, link.kind, link.dst_offset,
                                         link.stride) for link in plan.links},
        I={name: _Rows(var, rows) for name, var in acc.I.items()},
        correct=acc.correct.numpy()[rows].astype(np.int64),
        prob_hist=acc.prob_hist.numpy()[rows].astype(np.int64),
        num_images=state.images,
        num_skipped=skipped,
    )
    store.save(out, agg)
    ckpt.unlink(missing_ok=True)
    seconds = time.monotonic() - t0
    _say(stream, f"wrote {out}: {state.images} images in {rows.size} classes, {skipped} skipped "
                 f"(unreadable or corrupt), {seconds:.1f} s")
    return RunSummary(out, state.images, skipped, int(rows.size), seconds, start_images)
