"""ReLU-family activations, plain or with Lucid's redirected gradient (for feature visualization).

A clamped ReLU unit passes no gradient, so an optimizer that starts from an image where a channel is
dead never wakes it up. Lucid's redirect (used for the first steps of feature visualization) lets the
gradient through a clamped unit when following it would move the pre-activation back into the live
range, and only for the batch images where the ordinary gradient is zero everywhere.

Convention: the incoming gradient is that of a loss being *minimized* (``loss = -objective``, as with
Keras optimizers), so a positive gradient at a unit clamped at its lower bound (pre-activation < 0) would
push it further down and stays blocked; a negative one passes. For ReLU6 the upper bound is symmetric.
"""

from __future__ import annotations

import tensorflow as tf

ACTIVATIONS = ("linear", "relu", "relu6", "relu_n1_to_1")


def _per_image_any(mask: tf.Tensor) -> tf.Tensor:
    """``[B, ...]`` bool -> ``[B, 1, ..., 1]``: does the image have any True entry."""
    flat = tf.reshape(mask, [tf.shape(mask)[0], -1])
    shape = tf.concat([tf.shape(mask)[:1], tf.ones([tf.rank(mask) - 1], tf.int32)], axis=0)
    return tf.reshape(tf.reduce_any(flat, axis=1), shape)


def _redirected_clip(x: tf.Tensor, upper: float | None) -> tf.Tensor:
    """``clip(x, 0, upper)`` with the redirected gradient."""

    @tf.custom_gradient
    def clip(x):
        y = tf.nn.relu(x) if upper is None else tf.clip_by_value(x, 0.0, upper)

        def grad(dy):
            below = x < 0.0
            above = tf.zeros_like(below) if upper is None else x > upper
            plain = tf.where(below | above, tf.zeros_like(dy), dy)
            pushes_out = (below & (dy > 0.0)) | (above & (dy < 0.0))
            redirected = tf.where(pushes_out, tf.zeros_like(dy), dy)
            return tf.where(_per_image_any(tf.not_equal(plain, 0.0)), plain, redirected)

        return y, grad

    return clip(x)


def apply(x: tf.Tensor, activation: str, relu_redirect: bool = False) -> tf.Tensor:
    """Apply a fused activation by name; ``relu_redirect`` swaps in the redirected ReLU/ReLU6 gradient."""
    if activation == "linear":
        return x
    if activation == "relu":
        return _redirected_clip(x, None) if relu_redirect else tf.nn.relu(x)
    if activation == "relu6":
        return _redirected_clip(x, 6.0) if relu_redirect else tf.nn.relu6(x)
    if activation == "relu_n1_to_1":
        return tf.clip_by_value(x, -1.0, 1.0)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
