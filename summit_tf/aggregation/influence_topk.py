"""The ``k`` most influential inputs of every output channel of a link, without ranking every pair.

For 1x1 and separable links the influence of input i on output j has a closed form,
``where(K[i, j] >= 0, K[i, j] * hi_i, K[i, j] * lo_i)`` (:mod:`influence`): cheap to compute, but
``tf.math.top_k`` over the ``[B, Cout, Cin]`` values was most of the aggregation step (~1 us per row on
CPU). Here the inputs are split into contiguous groups of ``GROUP``; one XLA function computes each
group's maximum (the ``[B, Cout, Cin]`` values never reach memory), picks the ``k`` best groups, and
ranks the ``k * GROUP`` values of those groups, recomputed from the gathered kernel entries exactly as
``link_influence`` computes them. Both selections are ``k`` rounds of vectorized max/min reductions
("the largest value after the previous pick", equal values by the lower index), not ``top_k``; the
second one breaks ties by the input index itself, so the order of the chosen groups does not matter.

Exact for finite values, ties included (larger value first, equal values by the lower input index, as
``selection.top_inputs``): an input of the true top k lies in a group whose maximum is at least its
value. Were that group not among the k best groups, each of the k groups ranked above it would hold an
input ranked above this one: a strictly larger value, or an equal value in a group of lower index, so a
lower input index (groups are contiguous). That would be k inputs above a member of the top k.
Excluded inputs and the padding of the last group get products ``1 * -inf``; padding sorts after every
real input, so with ``k <= Cin`` it is never picked.

Identity links (a residual shortcut, a per-channel scale): output j reads input j only, so the top-k
inputs of j are that single candidate, whatever k: I counts the pair (j, j) once per image of the class,
and top-k over inputs says nothing more there. An excluded input j still gets its count (no other
candidate exists); the graph stage has no vertex for excluded channels, so it never becomes an edge.
"""

from __future__ import annotations

import tensorflow as tf

from summit_tf.aggregation import channel_selection as selection
from summit_tf.aggregation import influence
from summit_tf.models.base import Link

GROUP = 8  # inputs per group, measured best for MobileNetV1 (:mod:`influence` has the numbers)
MAX_K = 16  # the grouped path unrolls 2 * k selection rounds; above this, top_k


def top_influence(x: tf.Tensor, link: Link, reduce: str = "max", stride: int = 1, k: int = 5,
                  excluded: tf.Tensor | None = None) -> tf.Tensor:
    """Indices of the ``k`` most influential inputs of every output channel: int32 ``[B, Cout, k]``.

    Identical to ``selection.top_inputs(influence.link_influence(x, link, reduce, stride), k, excluded)``
    (same errors too); 1x1 and separable links with more than ``k * GROUP`` inputs take the grouped path.
    """
    k = int(k)
    if link.kind == "identity":
        return identity_top(x, link)
    if link.kind not in ("1x1", "separable") or not 1 <= k <= MAX_K or k * GROUP >= link.cin:
        return selection.top_inputs(influence.link_influence(x, link, reduce, stride), k, excluded)
    kernel, hi, lo = influence.pointwise_factors(x, link, reduce, stride)
    off = selection.checked_influence_mask(k, link.cin, excluded)
    if off is not None:
        kernel = tf.where(off[:, None], 1.0, kernel)
        hi, lo = tf.where(off, float("-inf"), hi), tf.where(off, float("-inf"), lo)
    groups = -(-link.cin // GROUP)
    pad = groups * GROUP - link.cin
    kernel = tf.pad(kernel, [[0, pad], [0, 0]], constant_values=1.0)
    hi = tf.reshape(tf.pad(hi, [[0, 0], [0, pad]], constant_values=float("-inf")), [-1, groups, GROUP])
    lo = tf.reshape(tf.pad(lo, [[0, 0], [0, pad]], constant_values=float("-inf")), [-1, groups, GROUP])
    by_group = tf.reshape(kernel, [groups, GROUP, link.cout])
    by_output = tf.reshape(tf.transpose(kernel), [link.cout, groups, GROUP])
    return _grouped_top(by_group, by_output, hi, lo, k)


def identity_top(x: tf.Tensor, link: Link) -> tf.Tensor:
    """An identity link's top inputs: output j has one candidate input, j, so its top-k for any k is
    ``[j]``: int32 ``[B, Cout, 1]`` (I counts the pair (j, j) once per image; see the module docstring)."""
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 4 or x.shape[-1] != link.cin:
        raise ValueError(f"link {link.name}: input must be [B, H, W, {link.cin}], got {x.shape}")
    return tf.broadcast_to(tf.range(link.cout, dtype=tf.int32)[None, :, None], [tf.shape(x)[0], link.cout, 1])


@tf.function(jit_compile=True, autograph=False)
def _grouped_top(by_group: tf.Tensor, by_output: tf.Tensor, hi: tf.Tensor, lo: tf.Tensor,
                 k: int) -> tf.Tensor:
    """Kernel ``[groups, G, Cout]`` and ``[Cout, groups, G]``, ``hi``/``lo`` ``[B, groups, G]`` ->
    int32 ``[B, Cout, k]``.

    With ``hi >= lo`` the value ``where(K >= 0, K hi, K lo)`` is ``max(K hi, K lo)`` (rounding is
    monotone), so a group maximum is the larger of two max-reductions of plain products, which XLA keeps
    vectorized along ``Cout`` (~10x faster than fusing the ``where``).
    """
    kb = by_group[None]
    best = tf.maximum(tf.reduce_max(kb * hi[..., None], axis=2), tf.reduce_max(kb * lo[..., None], axis=2))
    group_ids = tf.range(tf.shape(best)[1])[None, :, None]
    chosen = tf.concat(_first_k(best, group_ids, k, axis=1), axis=1)  # [B, k, Cout] group ids
    chosen = tf.transpose(chosen, [0, 2, 1])
    b, cout, group = tf.shape(chosen)[0], tf.shape(by_output)[0], tf.shape(by_output)[2]
    kc = tf.transpose(tf.gather(by_output, tf.transpose(chosen, [1, 0, 2]), batch_dims=1), [1, 0, 2, 3])
    flat = tf.reshape(chosen, [b, cout * k])
    hc = tf.reshape(tf.gather(hi, flat, batch_dims=1), [b, cout, k, group])
    lc = tf.reshape(tf.gather(lo, flat, batch_dims=1), [b, cout, k, group])
    values = tf.where(kc >= 0, kc * hc, kc * lc)  # [B, Cout, k, G], as link_influence computes them
    channels = chosen[..., None] * group + tf.range(group)
    return tf.stack([tf.squeeze(p, [2, 3]) for p in _first_k(values, channels, k, axis=(2, 3))], axis=-1)


def _first_k(values: tf.Tensor, ids: tf.Tensor, k: int, axis: int | tuple[int, ...]) -> list[tf.Tensor]:
    """Ids of the ``k`` largest ``values`` along ``axis``, larger value first, equal values by the lower
    id (``ids`` broadcast against ``values``, distinct along ``axis``); reduced axes kept.

    Round r takes the best element after pick r-1 in that order: a max and a min per round, which XLA
    vectorizes, where ``top_k`` pays ~1 us per row.
    """
    none = tf.int32.max
    eligible = tf.ones(tf.shape(values), tf.bool)
    picks = []
    for _ in range(k):
        best = tf.reduce_max(tf.where(eligible, values, float("-inf")), axis=axis, keepdims=True)
        pick = tf.reduce_min(tf.where(eligible & (values == best), ids, none), axis=axis, keepdims=True)
        picks.append(pick)
        eligible = (values < best) | ((values == best) & (ids > pick))
    return picks

