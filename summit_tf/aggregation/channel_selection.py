"""Channel scores and the selections that turn them into counts (SUMMIT's A matrix and I's top-k).

Every function is graph-safe (pure TF ops, static output shapes) so the aggregation engine can call it
inside its ``tf.function`` step on CPU or GPU.

Ordering rule, everywhere: larger score first, equal scores by the lower channel index. It is
implemented with ``tf.math.top_k``, which keeps the lower index first among equal values, so the
selected set never depends on the kernel that computed the scores.

Excluded channels (a bool ``[C]`` mask, SUMMIT's non-semantic channels) are never selected. For
``mass:TAU`` they hold no mass: SUMMIT zeroed their score before normalizing, and this module does the
same, so the shares of the remaining channels are exactly SUMMIT's.

Mass edge cases: negative scores (possible with ``mean``/``sum`` of a pre-activation) count as zero
mass; a channel holding zero mass is taken only as the compulsory first one. With all scores zero, one
channel is selected, the lowest-index non-excluded one (SUMMIT, whose shares became NaN there, also
selected exactly one). If every channel is excluded nothing is selected.
"""

from __future__ import annotations

import tensorflow as tf

from summit_tf.vocabulary import ACTIVATION_REDUCERS, parse_select


def reduce_channels(act: tf.Tensor, how: str) -> tf.Tensor:
    """Score each channel of ``[B, H, W, C]`` activations over space: ``[B, C]`` float32."""
    act = tf.cast(act, tf.float32)
    if how == "max":
        return tf.reduce_max(act, axis=[1, 2])
    if how == "mean":
        return tf.reduce_mean(act, axis=[1, 2])
    if how == "sum":
        return tf.reduce_sum(act, axis=[1, 2])
    if how == "l2":
        return tf.sqrt(tf.reduce_sum(tf.square(act), axis=[1, 2]))
    raise ValueError(f"unknown activation reducer {how!r}; expected one of {', '.join(ACTIVATION_REDUCERS)}")


def _excluded_mask(excluded: tf.Tensor | None, channels: int) -> tf.Tensor:
    if excluded is None:
        return tf.zeros([channels], tf.bool)
    excluded = tf.convert_to_tensor(excluded, tf.bool)
    excluded.shape.assert_is_compatible_with([channels])
    return excluded


def _prefix_mask(scores: tf.Tensor, top_values: tf.Tensor, top_indices: tf.Tensor,
                 count: tf.Tensor) -> tf.Tensor:
    """Bool ``[B, C]``: the first ``count[b]`` channels of row b in the (score desc, index asc) order.

    Comparing against the last taken (value, index) pair avoids a scatter: a channel comes before it
    when its score is larger, or equal with an index not above the last taken index.
    """
    last = tf.maximum(count - 1, 0)[:, None]
    t = tf.gather(top_values, last, batch_dims=1)
    t_index = tf.gather(top_indices, last, batch_dims=1)
    index = tf.range(tf.shape(scores)[1], dtype=top_indices.dtype)[None, :]
    taken = (scores > t) | ((scores == t) & (index <= t_index))
    return taken & (count > 0)[:, None]


def select(scores: tf.Tensor, spec: str, excluded: tf.Tensor | None = None) -> tf.Tensor:
    """Selected channels per image, bool ``[B, C]``, for a ``mass:TAU`` or ``topk:K`` spec.

    ``topk:K`` with K above the number of allowed channels selects all allowed channels.
    """
    kind, arg = parse_select(spec)
    scores = tf.convert_to_tensor(scores, tf.float32)
    channels = scores.shape[-1]
    if channels is None:
        raise ValueError("select needs a static channel count")
    excluded = _excluded_mask(excluded, channels)
    allowed = tf.logical_not(excluded)[None, :]
    if kind == "topk":
        k = min(int(arg), channels)
        ranked = tf.where(allowed, scores, float("-inf"))
        values, indices = tf.math.top_k(ranked, k=k, sorted=True)
        count = tf.fill([tf.shape(scores)[0]], k)
        return _prefix_mask(ranked, values, indices, count) & allowed
    # Mass: shares of the non-negative, non-excluded scores; float64 keeps the cumulative sums close
    # to exact arithmetic, so the crossing channel does not depend on the summation order.
    mass = tf.where(allowed, tf.nn.relu(scores), 0.0)
    ranked = tf.where(allowed, mass, -1.0)  # excluded channels sort after every allowed one
    values, indices = tf.math.top_k(ranked, k=channels, sorted=True)
    held = tf.cast(tf.maximum(values, 0.0), tf.float64)
    before = tf.cumsum(held, axis=1, exclusive=True)
    total = tf.reduce_sum(held, axis=1, keepdims=True)
    takes = (before < float(arg) * total) & (held > 0.0)
    count = tf.maximum(tf.reduce_sum(tf.cast(takes, tf.int32), axis=1), 1)
    return _prefix_mask(ranked, values, indices, count) & allowed


def top_inputs(values: tf.Tensor, k: int, excluded: tf.Tensor | None = None) -> tf.Tensor:
    """Indices of the ``k`` most influential inputs per output channel: ``[B, Cout, Cin]`` -> int32
    ``[B, Cout, k]``, in decreasing order, ties by the lower input index; excluded inputs never appear.

    ValueError when ``k`` exceeds the number of allowed inputs (known when the mask is a constant).
    """
    values = tf.convert_to_tensor(values, tf.float32)
    cin = values.shape[-1]
    if cin is None:
        raise ValueError("top_inputs needs a static input-channel count")
    excluded = checked_influence_mask(k, cin, excluded)
    if excluded is not None:
        values = tf.where(excluded, float("-inf"), values)
    return tf.math.top_k(values, k=int(k), sorted=True).indices


def checked_influence_mask(k: int, cin: int, excluded: tf.Tensor | None) -> tf.Tensor | None:
    """The checks of ``top_inputs`` on ``k`` and the exclusion mask (ValueError), shared with
    :mod:`influence_topk`; returns the mask as a bool ``[cin]`` tensor, or None."""
    k = int(k)
    if k < 1:
        raise ValueError(f"influence top-k must be >= 1, got {k}")
    if excluded is None:
        if k > cin:
            raise ValueError(f"influence top-k {k} exceeds the {cin} input channels")
        return None
    excluded = _excluded_mask(excluded, cin)
    static = tf.get_static_value(excluded)
    allowed_count = cin - int(static.sum()) if static is not None else cin
    if k > allowed_count:
        raise ValueError(f"influence top-k {k} exceeds the {allowed_count} non-excluded input channels")
    return excluded
