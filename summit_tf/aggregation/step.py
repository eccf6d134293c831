"""The per-batch ``tf.function`` and the device accumulators it adds into: the model runs, every layer's
channels are scored and selected (A), every link's top-k inputs are found (I), and the results are
scatter-added into int32 variables; the batch never comes back to Python.

Under a ``tf.distribute`` strategy each replica adds into its own copy of the counters (variables
synchronized on read, summed), so no step exchanges counts between devices; ``replicas.Replicas.fold``
sums them when a checkpoint or the output needs totals."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from summit_tf import store
from summit_tf.aggregation import channel_selection as selection
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.influence_topk import top_influence
from summit_tf.aggregation.plan import Plan
from summit_tf.models.base import Link, SummitModel

NON_FINITE = "summit-tf: non-finite model outputs"  # the step's assertion message


READ_BLOCK = 2**24  # counter entries read from or written to the device at once (64 MiB of int32)


def a_key(layer: str) -> str:
    """The name of layer ``layer``'s A counter (also its checkpoint dataset)."""
    return f"A/{layer}"


def i_key(link_name: str) -> str:
    """The name of link ``link_name``'s I counter (also its checkpoint dataset)."""
    return f"I/{store.link_key(link_name)}"


class Accumulators:
    """Per-class int32 counters on the device: images, A per layer, I per link, top-1 and probabilities.

    ``vars[name]`` is one flat variable holding a ``shapes[name]`` array, classes first (rows): a
    scatter-add of flat indices is about twice as fast on CPU as ``scatter_nd_add`` of ``[class, j, i]``
    triples (MobileNetV1 step 227 -> 207 ms at batch 16, BUILD_NOTES). Names: ``count``, ``correct``,
    ``prob_hist``, :func:`a_key` and :func:`i_key`. :func:`counter_rows` reads classes back shaped."""

    def __init__(self, model: SummitModel, plan: Plan,
                 strategy: tf.distribute.Strategy | None = None) -> None:
        k = int(plan.classes.size)
        strategy = strategy if strategy is not None else tf.distribute.get_strategy()
        self.shapes: dict[str, tuple[int, ...]] = {
            "count": (k,), "correct": (k,), "prob_hist": (k, store.PROB_BINS),
            **{a_key(layer): (k, model.channels[layer]) for layer in plan.layers},
            **{i_key(link.name): (k, link.cout, link.cin) for link in plan.links}}
        with strategy.scope():  # one copy per replica; reading one outside a replica sums them
            self.vars: dict[str, tf.Variable] = {
                name: tf.Variable(tf.zeros([int(np.prod(shape))], tf.int32), trainable=False,
                                  synchronization=tf.VariableSynchronization.ON_READ,
                                  aggregation=tf.VariableAggregation.SUM)
                for name, shape in self.shapes.items()}

    def nbytes(self) -> int:
        return sum(int(np.prod(shape)) * 4 for shape in self.shapes.values())


def flat_range(var: tf.Variable, start: int, stop: int) -> tf.Tensor:
    """Flat indices ``start:stop`` of a flat counter, in its index dtype."""
    return tf.range(start, stop, dtype=index_dtype((int(var.shape[0]),)))


def counter_slice(var: tf.Variable, start: int, stop: int) -> tf.Tensor:
    """Entries ``start:stop`` of a flat counter, read by a gather. Once a scatter has touched a variable, TF
    copies all of it on every plain read (``v[a:b]``, ``tf.reshape(v, ...)``: 58 ms for 400 MB, measured),
    so counters are only ever read through ``ResourceGather``."""
    return tf.raw_ops.ResourceGather(resource=var.handle, indices=flat_range(var, start, stop),
                                     dtype=var.dtype)


def counter_rows(var: tf.Variable, shape: tuple[int, ...], ids: np.ndarray) -> np.ndarray:
    """Classes (rows) ``ids`` of a flat counter holding a ``shape`` array: ``[len(ids), *shape[1:]]``."""
    row, dtype = int(np.prod(shape[1:])), index_dtype(shape)
    starts = tf.constant(np.asarray(ids, np.int64), dtype)[:, None] * row
    indices = tf.reshape(starts + tf.range(row, dtype=dtype)[None], [-1])
    values = tf.raw_ops.ResourceGather(resource=var.handle, indices=indices, dtype=var.dtype)
    return values.numpy().reshape(len(ids), *shape[1:])


def index_dtype(shape: tuple[int, ...]) -> tf.DType:
    """Flat indices of a counter fit int32 unless it has 2**31 entries or more (1,000 classes of a
    2048 x 2048 link)."""
    return tf.int32 if int(np.prod(shape)) < 2**31 else tf.int64


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


def flat_index(shape: tuple[int, ...], *parts: tf.Tensor) -> tf.Tensor:
    """Flat positions, in a counter holding a ``shape`` array, of index ``parts`` (broadcast), row-major."""
    dtype = index_dtype(shape)
    index = tf.cast(parts[0], dtype)
    for size, part in zip(shape[1:], parts[1:], strict=True):
        index = index * size + tf.cast(part, dtype)
    return index


def count_indices(feats: Mapping[str, tf.Tensor], slots: tf.Tensor, plan: Plan, cfg: AggregateConfig,
                  shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tf.Tensor]:
    """The flat positions a batch adds one to, per counter of ``shapes`` (``Accumulators.shapes``), for
    images of classes ``slots``: the image count, A per layer, I per link. What the step scatter-adds, and
    what host-resident counters would receive (``benchmarks.host_scatter``)."""
    indices = {"count": slots}
    for layer, chosen in layer_selections(feats, plan, cfg).items():
        name = a_key(layer)
        indices[name] = flat_index(shapes[name], tf.gather(slots, chosen[:, 0]), chosen[:, 1])
    tops = link_top_inputs(feats, plan.links, plan, cfg)
    for link in plan.links:
        name = i_key(link.name)
        outputs = tf.range(link.cout, dtype=tf.int32)[None, :, None]
        indices[name] = flat_index(shapes[name], slots[:, None, None], outputs, tops[link.name])
    return indices


def make_step(model: SummitModel, plan: Plan, acc: Accumulators, cfg: AggregateConfig,
              strategy: tf.distribute.Strategy | None = None,
              input_specs: tuple[object, object] | None = None) -> Callable:
    """The per-batch ``tf.function``: images ``[B, S, S, 3]`` in [0, 1] and class ids ``[B]`` in, or, under
    ``strategy``, their per-replica values (``input_specs``: the distributed dataset's element specs of
    images and labels). A replica may get an empty batch at the end of the data."""
    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    slot_of = tf.constant(plan.slot_table())
    output_of = tf.constant(np.asarray(model.class_to_output, np.int32))
    size = model.input_size

    def add_ones(var: tf.Variable, flat: tf.Tensor) -> None:
        # var.handle is this replica's own copy: the op ResourceVariable.scatter_add runs
        tf.raw_ops.ResourceScatterAdd(resource=var.handle, indices=tf.reshape(flat, [-1]),
                                      updates=tf.ones(tf.size(flat), tf.int32))

    def count_batch(images: tf.Tensor, labels: tf.Tensor) -> None:
        labels = tf.cast(labels, tf.int32)
        feats = model.features(images)
        # NaN anywhere in the network reaches the logits; checked before any count is added (stateful ops
        # run in program order), since a NaN influence value would pick no valid input, and an
        # out-of-range scatter index is an error on CPU but silently dropped on a GPU.
        tf.debugging.assert_all_finite(feats["logits"], NON_FINITE)
        slots = tf.gather(slot_of, labels)
        for name, flat in count_indices(feats, slots, plan, cfg, acc.shapes).items():
            add_ones(acc.vars[name], flat)
        logits = tf.cast(feats["logits"], tf.float32)
        target = tf.gather(output_of, labels)
        prob = tf.gather(tf.nn.softmax(logits), target, batch_dims=1)
        bins = tf.clip_by_value(tf.cast(tf.floor(prob * store.PROB_BINS), tf.int32), 0, store.PROB_BINS - 1)
        add_ones(acc.vars["prob_hist"], flat_index(acc.shapes["prob_hist"], slots, bins))
        hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), target), tf.int32)
        tf.raw_ops.ResourceScatterAdd(resource=acc.vars["correct"].handle, indices=slots, updates=hit)

    if input_specs is None:
        input_specs = (tf.TensorSpec([None, size, size, 3], tf.float32), tf.TensorSpec([None], tf.int32))

    def count_nonempty(images: tf.Tensor, labels: tf.Tensor) -> None:
        # a replica left without data at the end gets an empty batch, and TF's CPU convolutions reject
        # a batch of 0 images
        tf.cond(tf.shape(images)[0] > 0, lambda: count_batch(images, labels) or tf.constant(0),
                lambda: tf.constant(0))

    replica_fn = count_nonempty if strategy.num_replicas_in_sync > 1 else count_batch

    # autograph=False: the step has no tensor-dependent Python control flow, and converting the
    # selection and influence code costs far more tracing time than the step itself.
    @tf.function(autograph=False, input_signature=list(input_specs))
    def step(images: tf.Tensor, labels: tf.Tensor) -> None:
        strategy.run(replica_fn, args=(images, labels))

    return step
