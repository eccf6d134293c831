"""GraphDefFunction (op-by-op TF2 evaluation of a frozen GraphDef) and the redirected ReLU."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from summit_tf.models import relu_gradients
from summit_tf.models.graphdef import GraphDefFunction, import_reference, read_graph_def


def _tf2_graph_def() -> tf.compat.v1.GraphDef:
    """A small graph written by TF 2 itself (ConcatV2, AddV2, LRN, both pools, transposed MatMul)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    dense = rng.normal(size=(7, 5 * 5 * 8)).astype(np.float32)

    def net(input):
        x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(input, w, 2, "SAME"), b))
        x = tf.nn.local_response_normalization(x, 2, 1.5, 1e-3, 0.75)
        y = tf.concat([tf.nn.max_pool2d(x, 3, 1, "SAME"), tf.nn.avg_pool2d(x, 3, 1, "SAME") + x], -1)
        z = tf.reshape(y, [-1, 5 * 5 * 8])
        return tf.nn.softmax(tf.matmul(z, dense, transpose_b=True) + 1.0)

    spec = tf.TensorSpec([None, 9, 9, 3], tf.float32, name="input")
    return tf.function(net, autograph=False).get_concrete_function(spec).graph.as_graph_def()


def test_matches_tf_import_on_a_tf2_written_graph():
    graph_def = _tf2_graph_def()
    names = [n.name for n in graph_def.node if n.op not in ("Const", "Placeholder")]
    x = tf.constant(np.random.default_rng(1).normal(size=(3, 9, 9, 3)), tf.float32)
    got = GraphDefFunction(graph_def).evaluate(x, names)
    want = import_reference(graph_def, names)(x)
    assert {n.op for n in graph_def.node} >= {"ConcatV2", "AddV2", "LRN", "AvgPool", "MatMul", "Identity"}
    for name in names:
        np.testing.assert_allclose(got[name].numpy(), want[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_unsupported_op_and_unknown_node_are_named():
    graph_def = _tf2_graph_def()
    softmax = next(n for n in graph_def.node if n.op == "Softmax")
    softmax.op = "Sigmoid"
    graph = GraphDefFunction(graph_def)
    with pytest.raises(ValueError, match=r"node 'Softmax' has op 'Sigmoid'"):
        graph.check(["Identity"])
    graph.check(["Relu"])  # unaffected parts still run
    with pytest.raises(KeyError, match="no node 'nope'"):
        graph.check(["nope"])
    with pytest.raises(ValueError, match="no Placeholder named 'image'"):
        GraphDefFunction(graph_def, input_name="image")


def test_read_graph_def_rejects_other_files(tmp_path):
    path = tmp_path / "x.pb"
    path.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(ValueError, match="not a binary TensorFlow GraphDef"):
        read_graph_def(path)


def _redirect_reference(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Float64 statement of the rule, example by example."""
    out = np.empty_like(dy)
    for i in range(x.shape[0]):
        plain = np.where(x[i] > 0, dy[i], 0.0)
        out[i] = plain if np.any(plain != 0) else np.where((x[i] <= 0) & (dy[i] > 0), 0.0, dy[i])
    return out


def test_redirected_relu_forward_and_gradient():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5, 7, 3))
    x[1] = -np.abs(x[1])  # a dead example: plain ReLU passes no gradient at all
    x[2] = np.abs(x[2])  # all alive
    dy = rng.normal(size=x.shape)
    dy[3][x[3] > 0] = 0.0  # alive units get no upstream gradient: also redirected
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = relu_gradients.apply(xt, "relu", relu_redirect=True)
    grad = tape.gradient(y, xt, output_gradients=tf.constant(dy, tf.float32)).numpy()
    np.testing.assert_array_equal(y.numpy(), tf.nn.relu(xt).numpy())
    np.testing.assert_array_equal(grad, _redirect_reference(x.astype(np.float32), dy.astype(np.float32)))
    assert np.any(grad[1] != 0) and np.all(grad[1][dy[1] > 0] == 0)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        plain = tf.nn.relu(xt)
    plain_grad = tape.gradient(plain, xt, output_gradients=tf.constant(dy, tf.float32)).numpy()
    np.testing.assert_array_equal(grad[[0, 2]], plain_grad[[0, 2]])
