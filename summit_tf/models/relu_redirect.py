"""Lucid's ReLU gradient redirect, for feature visualization in its first optimization steps.

A channel whose pre-activation is negative everywhere gets no gradient through a plain ReLU, so an
optimizer starting from noise can never bring it to life. The redirected ReLU computes the same forward
value; backwards it passes the ordinary ReLU gradient for every example where that gradient is non-zero
somewhere, and otherwise (a "dead" example) also passes gradient at negative inputs, except where it would
push them lower. The gradient is that of a loss being *minimized* (Lucid's convention: the loss is minus
the objective), so "pushing lower" means an upstream gradient above zero.
"""

from __future__ import annotations

import tensorflow as tf


@tf.custom_gradient
def redirected_relu(x: tf.Tensor):
    """ReLU with Lucid's gradient redirect; the forward value is exactly ``tf.nn.relu(x)``."""
    y = tf.nn.relu(x)

    def grad(dy: tf.Tensor) -> tf.Tensor:
        zeros = tf.zeros_like(dy)
        plain = tf.where(x > 0, dy, zeros)
        redirected = tf.where((x <= 0) & (dy > 0), zeros, dy)
        per_example_axes = list(range(1, x.shape.rank))
        alive = tf.reduce_any(tf.not_equal(plain, 0), axis=per_example_axes, keepdims=True)
        return tf.where(alive, plain, redirected)

    return y, grad
