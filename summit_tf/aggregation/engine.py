"""The aggregation pass: stream a dataset once and count, per class, SUMMIT's A and I matrices.

One ``tf.function`` step per batch runs the model, reduces every layer's channels, selects them
(``selection``), finds every link's top-k inputs by per-pair influence (``influence_topk``), and adds
the results into flat int32 ``tf.Variable`` accumulators with ``scatter_add``: the batch never comes back
to Python, and nothing on the host waits for the device except at checkpoints and at the end.

Distribution (``replicas``, a ``tf.distribute`` strategy): each replica (device) counts its batches into
its own accumulators, with no collective in the step; at checkpoints and at the end the replicas' counters
are folded into the chief's first replica (``Replicas.fold``), which the checkpoint and the output read.
Under several workers each reads its own part of the data, their input pipelines step together (TF's
distributed iterator), the chief alone touches the files and tells the others what it decided (fresh run,
resume positions, nothing to do, an error).

Memory is bounded by the accumulators (``K`` classes x every layer's channels and every link's
``Cout x Cin``; printed before the run starts) plus one batch: a run over 1,000 classes of a large model
is split into class-group passes by ``run.aggregate_model`` (``memory_plan``) when it exceeds the budget.

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
    State,
    checkpoint_path,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from summit_tf.aggregation.config import AggregateConfig, differences
from summit_tf.aggregation.memory_plan import mib
from summit_tf.aggregation.plan import AggregateError, OpenSource, SettingsMismatch, make_plan, run_record
from summit_tf.aggregation.replicas import Replicas
from summit_tf.aggregation.step import (
    NON_FINITE,
    READ_BLOCK,
    Accumulators,
    a_key,
    counter_rows,
    counter_slice,
    i_key,
    make_step,
)
from summit_tf.cli import USER_ERRORS  # defines no flags: safe to import from a library
from summit_tf.imagenet import NUM_CLASSES
from summit_tf.models.base import SummitModel
from summit_tf.progress import Progress

LARGE_ACCUMULATORS = 4 * 2**30  # bytes; above this the start-up line suggests a memory budget

__all__ = ["AggregateError", "RunSummary", "aggregate", "check_output", "checkpoint_path", "finished",
           "finished_summary"]


class _Rows:
    """Rows ``rows`` of a device counter, read a block at a time: host memory stays small."""

    def __init__(self, var: tf.Variable, shape: tuple[int, ...], rows: np.ndarray) -> None:
        self.var, self.rows, self.full_shape = var, rows, shape
        self.shape = (int(rows.size), *shape[1:])
        self._rows_a_read = max(1, READ_BLOCK // int(np.prod(self.shape[1:])))
        self._block: tuple[int, np.ndarray] | None = None

    def __getitem__(self, i: int) -> np.ndarray:
        start = i - i % self._rows_a_read
        if self._block is None or self._block[0] != start:
            ids = self.rows[start:start + self._rows_a_read]
            self._block = (start, counter_rows(self.var, self.full_shape, ids))
        return self._block[1][i - start]


def finished(cfg: AggregateConfig, model: SummitModel) -> bool:
    """``--resume`` of a run that already wrote its output: nothing is left to do. An output counted with
    other settings (a class-group pass of an earlier run, say) is an ``AggregateError``, never reused."""
    out = Path(cfg.out)
    if not (cfg.resume and out.exists() and not checkpoint_path(out).exists()):
        return False
    with store.load(out) as done:
        diff = differences(done.config, run_record(model, cfg))
    if diff:
        raise SettingsMismatch(f"cannot resume: {out} is complete but was counted with other settings "
                             f"(setting: file vs now): {diff}; pass --overwrite to count it again")
    return True


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


FRESH, RESUME, FINISHED = 0, 1, 2  # the chief's decision about the output and checkpoint files


def _fold_all(replicas: Replicas, acc: Accumulators) -> None:
    """Every counter's total into the chief's first replica, ``READ_BLOCK`` flat entries at a time (the
    temporaries on the first device: the block's sum and its indices)."""
    if replicas.num_replicas == 1:
        return
    for var in acc.vars.values():
        size = int(var.shape[0])
        for start in range(0, size, READ_BLOCK):
            replicas.fold(var, start, min(start + READ_BLOCK, size))


def _agree(replicas: Replicas, error: Exception | None, row: list[int]) -> np.ndarray:
    """Every worker's ``row`` (after a flag saying whether it failed); a failure anywhere stops all of them
    with a clear error instead of leaving the others waiting in a collective."""
    table = replicas.gather_ints([int(error is not None), *row])
    if error is not None:
        raise error
    if table[:, 0].any():
        bad = np.flatnonzero(table[:, 0]).tolist()
        raise AggregateError(f"worker(s) {bad} stopped with an error (see their logs); nothing was written")
    return table[:, 1:]


def aggregate(cfg: AggregateConfig, model: SummitModel, open_source: OpenSource,
              stream: TextIO | None = None, replicas: Replicas | None = None) -> RunSummary:
    """Count A, I and the prediction statistics over the source and write ``cfg.out`` atomically.

    ``open_source(skip_records)`` opens the input stream (``--resume`` skips the records a checkpoint
    already counted); under a multi-worker ``replicas`` it opens this worker's part of the data, and only
    the chief (worker 0) touches the output and checkpoint files. Raises :class:`AggregateError` for
    problems with the user's input.
    """
    stream = stream if stream is not None else sys.stderr
    replicas = replicas if replicas is not None else Replicas()
    workers, me_index = replicas.num_workers, replicas.worker_index
    tag = f"worker {me_index}: " if workers > 1 else ""
    t0 = time.monotonic()
    out, ckpt = Path(cfg.out), checkpoint_path(cfg.out)

    decision, error, first = FRESH, None, None
    try:
        if replicas.is_chief:
            if finished(cfg, model):
                decision = FINISHED
            else:
                check_output(cfg)
                if cfg.overwrite:
                    ckpt.unlink(missing_ok=True)
                for path in (out, ckpt):
                    remove_stale_temporaries(path)
                decision = RESUME if cfg.resume and ckpt.exists() else FRESH
                if cfg.resume and decision == FRESH:
                    _say(stream, f"no checkpoint {ckpt} to resume from: starting from the beginning")
        if decision != FINISHED:
            first = open_source(0)
            if first.num_records == 0:
                raise AggregateError(f"empty data: {cfg.data} has no images (after class filters and "
                                     "sharding)")
            ids = np.asarray(first.classes if first.classes is not None else [], np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= NUM_CLASSES):
                raise AggregateError(f"class ids must lie in 0..{NUM_CLASSES - 1}, the data has "
                                     f"{ids.min()}..{ids.max()}")
    except USER_ERRORS as e:  # one worker's bad input stops them all
        if workers == 1:
            raise
        error = e
    # the chief's decision, and the classes of the whole job (each worker lists only its own part)
    mask = np.zeros(NUM_CLASSES, np.int64)
    known = first is not None and first.classes is not None
    if known:
        mask[np.asarray(first.classes, np.int64)] = 1
    table = _agree(replicas, error, [decision, int(known), *mask])
    decision = int(table[0, 0])
    if decision == FINISHED:
        if replicas.is_chief:
            return finished_summary(cfg, stream)
        return RunSummary(out, 0, 0, 0, 0.0, 0)
    source_classes = np.flatnonzero(table[:, 2:].sum(axis=0)) if table[:, 1].all() else None
    assert first is not None

    plan = make_plan(model, cfg, source_classes)
    record = run_record(model, cfg)
    acc = Accumulators(model, plan, replicas.strategy)
    counters = {name: replicas.primary(var) for name, var in acc.vars.items()}
    states = [State() for _ in range(workers)]
    if decision == RESUME:
        error = None
        try:
            if replicas.is_chief:
                states = load_checkpoint(ckpt, counters, plan, record, workers)
        except USER_ERRORS as e:
            if workers == 1:
                raise
            error = e
        rows = _agree(replicas, error, [v for state in states for v in state.row()])
        states = [State(*(int(v) for v in rows[0, 3 * w:3 * w + 3])) for w in range(workers)]
        _say(stream, f"{tag}resuming from {ckpt}: {sum(s.images for s in states)} images counted, record "
                     f"{states[me_index].next_record} next")
    me = states[me_index]
    start_images = sum(s.images for s in states)
    source = open_source(me.next_record) if decision == RESUME else first
    _say(stream, f"{tag}{model.spec}: {len(plan.layers)} layers, {len(plan.links)} links, "
                 f"{plan.classes.size} classes, {replicas.num_replicas} replica(s) on {workers} worker(s); "
                 f"accumulators {mib(acc.nbytes())} a replica ({mib(acc.nbytes() // plan.classes.size)} "
                 "per class)"
                 + ("; to use less memory, set --device_memory_budget (classes counted in passes)"
                    if acc.nbytes() > LARGE_ACCUMULATORS else ""))

    # one input pipeline per worker; its local replicas take consecutive batches (a replica left without
    # one at the end gets an empty batch), so a worker's stream position is its last batch's last index
    batches = replicas.strategy.distribute_datasets_from_function(lambda _: source.dataset)
    specs = batches.element_spec
    step = make_step(model, plan, acc, cfg, replicas.strategy, (specs["image"], specs["label"]))
    slot_table = plan.slot_table()
    total = first.num_records
    if total is None and cfg.max_images is not None:
        total = -(-cfg.max_images // (cfg.num_shards * workers))
    progress = Progress(f"{tag}aggregate", total=total, start=me.images, stream=stream)

    def checkpoint() -> None:
        rows = replicas.gather_ints(me.row())
        _fold_all(replicas, acc)
        if replicas.is_chief:
            save_checkpoint(ckpt, counters, plan, [State(*(int(v) for v in row)) for row in rows], record)

    last_checkpoint, checkpoint_gap = time.monotonic(), 60 * cfg.checkpoint_minutes
    for batch in batches:
        labels = np.concatenate([t.numpy() for t in replicas.local(batch["label"])])
        bad = (labels < 0) | (labels >= NUM_CLASSES)
        bad[~bad] = slot_table[labels[~bad]] < 0
        if bad.any():
            raise AggregateError(f"a class count that does not fit the model: label(s) "
                                 f"{sorted(set(labels[bad].tolist()))[:10]} are outside this run's classes")
        index = np.concatenate([t.numpy() for t in replicas.local(batch["index"])])
        try:
            step(batch["image"], batch["label"])
        except tf.errors.InvalidArgumentError as e:
            if NON_FINITE not in str(e):
                raise
            raise AggregateError(f"{model.spec} gave non-finite outputs (NaN or inf) for an image among "
                                 f"records {int(index.min())}..{int(index.max())}: check the model's "
                                 "weights and preprocessing; no output was written") from None
        me.images += int(labels.size)
        me.batches += 1
        if index.size:
            me.next_record = int(index.max()) + 1
        progress.update(int(labels.size))
        due_by_count = cfg.checkpoint_every and me.batches % cfg.checkpoint_every == 0
        due_by_time = cfg.checkpoint_minutes and time.monotonic() - last_checkpoint >= checkpoint_gap
        if workers > 1 and cfg.checkpoint_minutes:  # workers step together; the clocks need not agree
            due_by_time = replicas.any(bool(due_by_time))
        if due_by_count or due_by_time:
            t_save = time.monotonic()
            checkpoint()
            last_checkpoint = time.monotonic()
            # Large accumulators take long to save: keep timed checkpoints under ~5 % of the run.
            checkpoint_gap = max(60 * cfg.checkpoint_minutes, 20 * (last_checkpoint - t_save))
    progress.finish()

    # Unreadable records show as gaps in the stream positions; those after the last readable image
    # are known only when the source knows its length.
    trailing = 0 if first.num_records is None else max(first.num_records - me.next_record, 0)
    rows = replicas.gather_ints([me.next_record - me.images + trailing, me.images])
    skipped, images = int(rows[:, 0].sum()), int(rows[:, 1].sum())
    if images == 0:
        raise AggregateError(f"empty data: no readable images in {cfg.data}")
    _fold_all(replicas, acc)
    if not replicas.is_chief:
        _say(stream, f"{tag}counted {me.images} images; the chief writes {out}")
        return RunSummary(out, me.images, 0, 0, time.monotonic() - t0, start_images)

    k = int(plan.classes.size)
    counts = counter_slice(counters["count"], 0, k).numpy()
    rows = np.flatnonzero(counts > 0)
    agg = store.Aggregates(
        model=model.spec,
        config=record,
        classes=plan.classes[rows],
        class_count=counts[rows].astype(np.int64),
        layers=plan.layers,
        A={layer: counter_rows(counters[a_key(layer)], acc.shapes[a_key(layer)], rows)
           for layer in plan.layers},
        links={link.name: store.LinkInfo(link.name, link.src, link.dst, link.kind, link.dst_offset,
                                         link.stride) for link in plan.links},
        I={link.name: _Rows(counters[i_key(link.name)], acc.shapes[i_key(link.name)], rows)
           for link in plan.links},
        correct=counter_slice(counters["correct"], 0, k).numpy()[rows].astype(np.int64),
        prob_hist=counter_rows(counters["prob_hist"], acc.shapes["prob_hist"], rows).astype(np.int64),
        num_images=images,
        num_skipped=skipped,
    )
    store.save(out, agg)
    ckpt.unlink(missing_ok=True)
    seconds = time.monotonic() - t0
    _say(stream, f"wrote {out}: {images} images in {rows.size} classes, {skipped} skipped "
                 f"(unreadable or corrupt), {seconds:.1f} s")
    return RunSummary(out, images, skipped, int(rows.size), seconds, start_images)
