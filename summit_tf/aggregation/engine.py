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

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import h5py
import numpy as np
import tensorflow as tf

from summit_tf import atomic, store
from summit_tf.aggregation import channel_selection as selection
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.influence_topk import top_influence
from summit_tf.imagenet import NUM_CLASSES
from summit_tf.models.base import Link, SummitModel
from summit_tf.progress import Progress

CHECKPOINT_FORMAT = "summit-tf/checkpoint"
ROW_BLOCK = 32  # classes read from the device at once when writing (bounds host memory)
LARGE_ACCUMULATORS = 4 * 2**30  # bytes; above this the start-up line suggests splitting by class
NON_FINITE = "summit-tf: non-finite model outputs"  # the step's assertion message


class AggregateError(ValueError):
    """A problem with the user's input (flags, data, model); the CLI reports it and exits with 2."""


class Source(Protocol):
    """What the engine reads from an input pipeline (``summit_tf.data.ImageSource``)."""

    spec: str
    dataset: tf.data.Dataset
    num_records: int | None
    classes: Sequence[int] | None


OpenSource = Callable[[int], Source]
"""``open_source(skip_records)``: the configured input stream, from record ``skip_records`` on.

The stream's records are numbered after filtering and sharding (``max_images`` caps records, not
readable images), batches carry each image's record number as ``index``: the contract of
``summit_tf.data.load``.
"""


@dataclass
class Plan:
    """The run resolved against the model: layers, links, class slots and excluded channels."""

    layers: list[str]
    links: list[Link]
    classes: np.ndarray  # int32 [K], ascending: slot -> ImageNet class id
    excluded: dict[str, np.ndarray]  # channel space -> bool [C]

    def slot_table(self) -> np.ndarray:
        """int32 [1000]: class id -> accumulator row, -1 for classes outside the run."""
        table = np.full(NUM_CLASSES, -1, np.int32)
        table[self.classes] = np.arange(self.classes.size, dtype=np.int32)
        return table


def _space_layer(space: str) -> str:
    """The SUMMIT layer an inner channel space belongs to (``mixed4a/3x3_bottleneck`` -> ``mixed4a``)."""
    return space.split("/")[0]


def make_plan(model: SummitModel, cfg: AggregateConfig, source_classes: Sequence[int] | None) -> Plan:
    """Check the config against the model and the data; ``AggregateError`` says what does not fit."""
    try:
        layers = model.check_layers(cfg.layers) if cfg.layers else list(model.layers)
    except ValueError as e:
        raise AggregateError(str(e)) from None
    kept = set(layers)
    links = [link for link in model.links
             if _space_layer(link.src) in kept and _space_layer(link.dst) in kept]

    spaces = model.channel_spaces()
    excluded = {}
    for space, ids in cfg.exclude_channels.items():
        if space not in spaces:
            raise AggregateError(f"--exclude_channels: unknown layer {space!r}; known: {', '.join(spaces)}")
        if max(ids) >= spaces[space]:
            raise AggregateError(f"--exclude_channels: {space} has {spaces[space]} channels, got {max(ids)}")
        mask = np.zeros(spaces[space], bool)
        mask[list(ids)] = True
        excluded[space] = mask
    for layer in layers:
        if layer in excluded and excluded[layer].all():
            raise AggregateError(f"--exclude_channels excludes every channel of {layer}")
    for link in links:
        allowed = link.cin - int(excluded[link.src].sum() if link.src in excluded else 0)
        if cfg.influence_topk > allowed:
            raise AggregateError(f"--influence_topk={cfg.influence_topk} exceeds the {allowed} selectable "
                                 f"input channels of link {link.name}")

    outputs = np.asarray(model.class_to_output)
    if source_classes is not None:
        classes = np.asarray(sorted(set(int(c) for c in source_classes)), np.int32)
    elif cfg.classes is not None:
        classes = np.asarray(cfg.classes, np.int32)
    else:
        classes = np.flatnonzero(outputs >= 0).astype(np.int32)
    if classes.size == 0:
        raise AggregateError(f"empty data: no classes in {cfg.data}")
    if classes.min() < 0 or classes.max() >= NUM_CLASSES:
        raise AggregateError(f"class ids must lie in 0..{NUM_CLASSES - 1}, the data has {classes.min()}.."
                             f"{classes.max()}")
    missing = classes[outputs[classes] < 0]
    if missing.size:
        raise AggregateError(f"a class count that does not fit the model: {model.spec} has no output for "
                             f"classes {missing.tolist()[:10]} ({missing.size} of {classes.size})")
    return Plan(layers, links, classes, excluded)


class Accumulators:
    """Per-class int32 counters on the device: images, A per layer, I per link, top-1 and probabilities."""

    def __init__(self, model: SummitModel, plan: Plan) -> None:
        k = int(plan.classes.size)

        def zeros(*shape: int) -> tf.Variable:
            return tf.Variable(tf.zeros(shape, tf.int32), trainable=False)

        self.count = zeros(k)
        self.correct = zeros(k)
        self.prob_hist = zeros(k, store.PROB_BINS)
        self.A = {layer: zeros(k, model.channels[layer]) for layer in plan.layers}
        self.I = {link.name: zeros(k, link.cout, link.cin) for link in plan.links}

    def named(self) -> dict[str, tf.Variable]:
        """Every counter under a stable name (checkpoint keys)."""
        return {"count": self.count, "correct": self.correct, "prob_hist": self.prob_hist,
                **{f"A/{layer}": v for layer, v in self.A.items()},
                **{f"I/{store.link_key(name)}": v for name, v in self.I.items()}}

    def nbytes(self) -> int:
        return sum(int(np.prod(v.shape)) * 4 for v in self.named().values())


def layer_selections(feats: Mapping[str, tf.Tensor], plan: Plan,
                     cfg: AggregateConfig) -> dict[str, tf.Tensor]:
    """What A counts: per layer, the selected (image, channel) pairs, int64 ``[N, 2]``."""
    chosen = {}
    for layer in plan.layers:
        scores = selection.reduce_channels(feats[layer], cfg.activation_reduce)
        chosen[layer] = tf.where(selection.select(scores, cfg.activation_select, plan.excluded.get(layer)))
    return chosen


def link_top_inputs(feats: Mapping[str, tf.Tensor], links: Sequence[Link], plan: Plan,
                    cfg: AggregateConfig) -> dict[str, tf.Tensor]:
    """What I counts: per link, the top-k inputs of every output channel, int32 ``[B, Cout, k]``."""
    return {link.name: top_influence(feats[link.input], link, cfg.influence_reduce, cfg.stride,
                                     cfg.influence_topk, plan.excluded.get(link.src)) for link in links}


def make_step(model: SummitModel, plan: Plan, acc: Accumulators, cfg: AggregateConfig) -> Callable:
    """The per-batch ``tf.function``: images ``[B, S, S, 3]`` in [0, 1] and class ids ``[B]`` in."""
    slot_of = tf.constant(plan.slot_table())
    output_of = tf.constant(np.asarray(model.class_to_output, np.int32))
    size = model.input_size

    def add_ones(var: tf.Variable, indices: tf.Tensor) -> None:
        var.scatter_nd_add(indices, tf.ones(tf.shape(indices)[:1], tf.int32))

    # autograph=False: the step has no tensor-dependent Python control flow, and converting the
    # selection and influence code costs far more tracing time than the step itself.
    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def step(images: tf.Tensor, labels: tf.Tensor) -> None:
        feats = model.features(images)
        # NaN anywhere in the network reaches the logits; checked before any count is added (stateful ops
        # run in program order), since a NaN influence value would pick no valid input, and an
        # out-of-range scatter index is an error on CPU but silently dropped on a GPU.
        tf.debugging.assert_all_finite(feats["logits"], NON_FINITE)
        slots = tf.gather(slot_of, labels)
        add_ones(acc.count, slots[:, None])
        for layer, chosen in layer_selections(feats, plan, cfg).items():
            rows = tf.gather(slots, chosen[:, 0])
            add_ones(acc.A[layer], tf.stack([rows, tf.cast(chosen[:, 1], tf.int32)], axis=1))
        tops = link_top_inputs(feats, plan.links, plan, cfg)
        for link in plan.links:
            top = tops[link.name]  # [B, Cout, k]
            shape = tf.shape(top)
            rows = tf.broadcast_to(slots[:, None, None], shape)
            outs = tf.broadcast_to(tf.range(link.cout, dtype=tf.int32)[None, :, None], shape)
            add_ones(acc.I[link.name], tf.reshape(tf.stack([rows, outs, top], axis=-1), [-1, 3]))
        logits = tf.cast(feats["logits"], tf.float32)
        target = tf.gather(output_of, labels)
        prob = tf.gather(tf.nn.softmax(logits), target, batch_dims=1)
        bins = tf.clip_by_value(tf.cast(tf.floor(prob * store.PROB_BINS), tf.int32), 0, store.PROB_BINS - 1)
        add_ones(acc.prob_hist, tf.stack([slots, bins], axis=1))
        hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), target), tf.int32)
        acc.correct.scatter_nd_add(slots[:, None], hit)

    return step


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


def checkpoint_path(out: str | os.PathLike) -> Path:
    return Path(f"{out}.ckpt.h5")


@dataclass
class _State:
    """Host-side progress through the input stream."""

    next_record: int = 0
    images: int = 0
    batches: int = 0


def save_checkpoint(path: Path, acc: Accumulators, plan: Plan, state: _State, record: dict) -> None:
    all_rows = np.arange(plan.classes.size)

    def write(f: h5py.File) -> None:
        f.attrs.update(format=CHECKPOINT_FORMAT, config=json.dumps(record, sort_keys=True),
                       next_record=state.next_record, images=state.images, batches=state.batches)
        f["classes"] = plan.classes
        for name, var in acc.named().items():
            shape = tuple(var.shape)
            # lzf: about twice as fast as gzip for ~20 % more bytes; checkpoints are written often
            # and read once, by h5py only
            ds = f.create_dataset(name, shape=shape, dtype=np.int32, chunks=(1, *shape[1:]),
                                  compression="lzf")
            for start in range(0, shape[0], ROW_BLOCK):
                ds[start:start + ROW_BLOCK] = tf.gather(var, all_rows[start:start + ROW_BLOCK]).numpy()

    with atomic.writing(path) as tmp, h5py.File(tmp, "w") as f:
        write(f)


def load_checkpoint(path: Path, acc: Accumulators, plan: Plan, record: dict) -> _State:
    """Restore the counters; the checkpoint must come from a run with exactly these settings."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != CHECKPOINT_FORMAT:
            raise AggregateError(f"{path} is not a summit-tf checkpoint")
        saved = json.loads(f.attrs["config"])
        if saved != json.loads(json.dumps(record, sort_keys=True)):
            diff = {k: (saved.get(k), record.get(k)) for k in set(saved) | set(record)
                    if saved.get(k) != record.get(k)}
            raise AggregateError(f"cannot resume: {path} was written with other settings "
                                 f"(setting: checkpoint vs now): {diff}")
        if not np.array_equal(f["classes"][()], plan.classes):
            raise AggregateError(f"cannot resume: {path} counts other classes than this data")
        for name, var in acc.named().items():
            var.assign(f[name][()])
        return _State(int(f.attrs["next_record"]), int(f.attrs["images"]), int(f.attrs["batches"]))


def finished(cfg: AggregateConfig) -> bool:
    """``--resume`` of a run that already wrote its output: nothing is left to do."""
    return cfg.resume and Path(cfg.out).exists() and not checkpoint_path(cfg.out).exists()


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files a killed run left while writing ``path`` (as :func:`atomic.writing` names them)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def check_output(cfg: AggregateConfig) -> None:
    """Refuse to replace an output or an interrupted run's checkpoint unless asked to."""
    if cfg.resume or cfg.overwrite:
        return
    out, ckpt = Path(cfg.out), checkpoint_path(cfg.out)
    if out.exists():
        raise AggregateError(f"output {out} exists; pass --overwrite to replace it")
    if ckpt.exists():
        raise AggregateError(f"{ckpt} holds an interrupted run; pass --resume to continue it "
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
        _remove_stale_temporaries(path)
    resuming = cfg.resume and ckpt.exists()
    if cfg.resume and not resuming:
        _say(stream, f"no checkpoint {ckpt} to resume from: starting from the beginning")

    first = open_source(0)
    if first.num_records == 0:
        raise AggregateError(f"empty data: {cfg.data} has no images (after class filters and sharding)")
    plan = make_plan(model, cfg, first.classes)
    record = {**cfg.record(), "layers": plan.layers}
    acc = Accumulators(model, plan)
    state = _State()
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
