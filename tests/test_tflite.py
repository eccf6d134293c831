"""TFLite adapter: dequantization, op semantics against tf.lite.Interpreter, links, ReLU redirect, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from summit_tf.data.listing import read_labels_file
from summit_tf.data.preprocess import decode_and_resize
from summit_tf.models import registry, relu_gradients, tflite, tflite_reader

VAL_LABELS = ("datasets", "ilsvrc2012-val-1300", "labels.txt")


# ----------------------------------------------------------------------------------------------- helpers
def val_batches(shared, count: int, batch: int):
    """The first ``count`` shared val images (centre crop, 224 px, [0, 1]) with labels, in batches."""
    paths, labels = read_labels_file(shared.joinpath(*VAL_LABELS))
    paths, labels = list(paths[:count]), labels[:count]
    images = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda p: decode_and_resize(tf.io.read_file(p), 224, "center_crop"), num_parallel_calls=2)
    labels_ds = tf.data.Dataset.from_tensor_slices(labels)
    return tf.data.Dataset.zip(images, labels_ds).batch(batch).prefetch(1)


class Reference:
    """tf.lite.Interpreter on uint8 pixels, the way the quantized models run on device.

    Batched where the model allows it (a fixed-shape RESHAPE does not: then one image at a time).
    """

    def __init__(self, path: str, batch: int, preserve: bool = False, input_name: str | None = None):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.interpreter = tf.lite.Interpreter(str(path), num_threads=2,
                                                   experimental_preserve_all_tensors=preserve)
        details = self.interpreter.get_input_details()
        detail = next(d for d in details if d["name"] == input_name) if input_name else details[0]
        self.input_index = detail["index"]
        self.batch = batch
        try:
            self.interpreter.resize_tensor_input(self.input_index, [batch, *detail["shape"][1:]])
            self.interpreter.allocate_tensors()
        except RuntimeError:
            self.batch = 1
            self.interpreter.resize_tensor_input(self.input_index, [1, *detail["shape"][1:]])
            self.interpreter.allocate_tensors()

    def run_raw(self, inputs: np.ndarray) -> np.ndarray:
        """The model's output for inputs already in its input type, in chunks of the batch it accepts."""
        output = self.interpreter.get_output_details()[0]["index"]
        outs = []
        for start in range(0, len(inputs), self.batch):
            self.interpreter.set_tensor(self.input_index, inputs[start:start + self.batch])
            self.interpreter.invoke()
            outs.append(self.interpreter.get_tensor(output).copy())
        return np.concatenate(outs)

    def run(self, images: np.ndarray) -> np.ndarray:
        return self.run_raw(np.round(np.asarray(images) * 255.0).astype(np.uint8))

    def tensor(self, name: str) -> np.ndarray:
        """Dequantized activation whose TFLite name (before the first ';') is ``name``."""
        for detail in self.interpreter.get_tensor_details():
            if detail["name"].split(";")[0] == name:
                scale = detail["quantization_parameters"]["scales"]
                zero = detail["quantization_parameters"]["zero_points"]
                raw = self.interpreter.get_tensor(detail["index"]).astype(np.float64)
                return (raw - zero[0]) * scale[0] if len(scale) else raw
        raise KeyError(name)


def accuracy_and_agreement(shared, model, reference: Reference, count: int,
                           batch: int) -> tuple[float, float]:
    """Top-1 of ``model`` and its top-1 agreement with the interpreter on the first ``count`` val images."""
    correct = agree = total = 0
    for images, labels in val_batches(shared, count, batch):
        ours = np.argmax(model.features(images)["logits"].numpy(), axis=1)
        theirs = np.argmax(reference.run(images.numpy()), axis=1)
        correct += int((ours == model.class_to_output[labels.numpy()]).sum())
        agree += int((ours == theirs).sum())
        total += len(ours)
    return correct / total, agree / total


def reference_constants(path: str) -> dict[int, np.ndarray]:
    """Every quantized constant, dequantized with NumPy from the interpreter's raw values (float64)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(str(path))
    interpreter.allocate_tensors()
    out = {}
    for detail in interpreter.get_tensor_details():
        q = detail["quantization_parameters"]
        try:
            raw = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue
        if not len(q["scales"]) or raw.dtype == np.float32:
            continue
        shape = [1] * raw.ndim
        if len(q["scales"]) > 1:
            shape[q["quantized_dimension"]] = -1
        scale = np.asarray(q["scales"], np.float64).reshape(shape)
        zero = np.asarray(q["zero_points"], np.float64).reshape(shape)
        out[detail["index"]] = (raw.astype(np.float64) - zero) * scale
    return out


def small_keras_model():
    """Conv (SAME, stride 2), depthwise + linear 1x1 + residual add, padded VALID conv, max/avg pools,
    concat, mean, dense, softmax: every op the adapter maps, in 5 k parameters."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((33, 33, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    a = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    a = keras.layers.Conv2D(8, 1)(a)
    x2 = keras.layers.ReLU()(keras.layers.Add()([a, x]))
    b = keras.layers.Conv2D(6, 3, padding="valid", activation="relu")(keras.layers.ZeroPadding2D(1)(x2))
    c = keras.layers.Conv2D(6, 1, activation="relu")(keras.layers.MaxPooling2D(3, 1, padding="same")(x2))
    x3 = keras.layers.Concatenate()([b, c])
    x4 = keras.layers.Conv2D(10, 3, strides=2, padding="same", activation="relu6")(x3)
    x4 = keras.layers.AveragePooling2D(2, padding="same")(x4)
    g = keras.layers.GlobalAveragePooling2D()(x4)
    return keras.Model(inp, keras.layers.Dense(7, activation="softmax")(g))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The small model as float TFLite and as uint8-in / int8 per-channel TFLite."""
    model = small_keras_model()
    folder = tmp_path_factory.mktemp("tflite")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    float_path = folder / "small_float.tflite"
    float_path.write_bytes(converter.convert())

    rng = np.random.default_rng(0)

    def representative():
        for _ in range(16):
            yield [rng.uniform(0, 1, (1, 33, 33, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    int8_path = folder / "small_int8.tflite"
    int8_path.write_bytes(converter.convert())
    return model, str(float_path), str(int8_path)


# ----------------------------------------------------------------------------------------------- unit
def test_dequantize_per_tensor_and_per_channel():
    rng = np.random.default_rng(1)
    q = rng.integers(-128, 128, (5, 3, 3, 7)).astype(np.int8)
    scale, zero = rng.uniform(1e-3, 1e-1, 7), rng.integers(-3, 4, 7)
    per_channel = tflite_reader.Quantization(scale, zero, 3).dequantize(q)
    expected = (q.astype(np.float64) - zero[None, None, None, :]) * scale[None, None, None, :]
    np.testing.assert_allclose(per_channel, expected, rtol=1e-12)
    per_tensor = tflite_reader.Quantization(scale[:1], zero[:1], 0).dequantize(q)
    np.testing.assert_allclose(per_tensor, (q.astype(np.float64) - zero[0]) * scale[0], rtol=1e-12)


def lucid_redirect(x: np.ndarray, dy: np.ndarray, upper: float | None) -> np.ndarray:
    """Lucid's redirected ReLU/ReLU6 gradient (``lucid/misc/redirected_relu_grad.py``), from its table:
    ``0 <= x <= upper`` passes ``dy``; below 0 only ``dy`` that pushes x up passes, above ``upper`` only
    ``dy`` that pushes it down (gradient descent: x moves by ``-dy``). An image takes that gradient only
    where its plain gradient is zero everywhere, otherwise the plain one."""
    upper = np.inf if upper is None else upper
    live = (x >= 0) & (x <= upper)
    moves_in = ((x < 0) & (dy < 0)) | ((x > upper) & (dy > 0))
    plain, redirected = dy * live, dy * (live | moves_in)
    blocked = ~np.any(plain != 0, axis=tuple(range(1, x.ndim)))
    return np.where(blocked.reshape(-1, *[1] * (x.ndim - 1)), redirected, plain)


def redirect_gradients(x: np.ndarray, dy: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """d(sum(apply(x) * dy))/dx with and without the redirect; the forward pass is the same."""
    xt, dyt = tf.constant(x, tf.float32), tf.constant(dy, tf.float32)
    grads = []
    for redirect in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = relu_gradients.apply(xt, kind, relu_redirect=redirect)
            loss = tf.reduce_sum(y * dyt)
        grads.append(tape.gradient(loss, xt).numpy())
        np.testing.assert_array_equal(y.numpy(), relu_gradients.apply(xt, kind).numpy())
    return grads[0], grads[1]


@pytest.mark.parametrize("kind,upper", [("relu", None), ("relu6", 6.0)])
def test_relu_redirect_gradient_matches_reference(kind, upper):
    rng = np.random.default_rng(2)
    x = rng.normal(2.0, 5.0, (4, 5, 3, 7))
    x[1] = -np.abs(x[1]) - 0.1  # an image whose units are all clamped below: only redirected gradient
    if upper is not None:
        x[2] = np.abs(x[2]) + upper + 0.1  # all clamped above
    dy = rng.normal(0.0, 1.0, x.shape)
    grad, plain = redirect_gradients(x, dy, kind)
    np.testing.assert_allclose(grad, lucid_redirect(x, dy, upper), rtol=1e-6, atol=1e-7)
    assert np.abs(grad[1]).sum() > 0 and np.abs(plain[1]).sum() == 0


@pytest.mark.parametrize("kind,upper", [("relu", None), ("relu6", 6.0)])
def test_relu6_redirect_on_both_bounds(kind, upper):
    """Inputs over [-3, 9] (both ReLU6 bounds), gradients of both signs: image 0 entirely below 0,
    image 1 entirely above 6, image 2 mixed (its plain gradient is not zero, so it is kept)."""
    rng = np.random.default_rng(12)
    x = rng.uniform(-3.0, 9.0, (3, 7, 5, 4))
    x[0] = rng.uniform(-3.0, -0.05, x.shape[1:])
    x[1] = rng.uniform(6.05, 9.0, x.shape[1:])
    dy = rng.normal(0.0, 1.0, x.shape)
    grad, plain = redirect_gradients(x, dy, kind)
    np.testing.assert_allclose(grad, lucid_redirect(x, dy, upper), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(plain, dy * (x > 0) * (x < (upper or np.inf)), rtol=1e-6, atol=1e-7)
    # below 0: only the gradient that raises x (negative, under descent) passes
    assert not plain[0].any() and np.array_equal(grad[0] != 0, dy[0] < 0)
    np.testing.assert_array_equal(grad[2], plain[2])
    if upper is None:  # ReLU: above 6 is live
        np.testing.assert_array_equal(grad[1], plain[1])
        assert plain[1].all()
    else:  # ReLU6 above 6: only the gradient that lowers x (positive) passes
        assert not plain[1].any() and np.array_equal(grad[1] != 0, dy[1] > 0)


# ----------------------------------------------------------------------------------------------- reader
REAL_MODELS = (
    "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", "mobilenet_quant_v1_224_head_layers.tflite",
    "mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite",
)


def schema_reference(path) -> tflite_reader.Graph:
    """The graph as TF's own schema module reads it (flatbuffers object API): the independent reference
    for the reader, which parses with the ``tflite`` package instead. Constants are dequantized with the
    same :class:`tflite_reader.Quantization` (its formula has its own test above)."""
    schema = pytest.importorskip("tensorflow.lite.python.schema_py_generated")
    data = Path(path).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    types = {getattr(schema.TensorType, n): np.dtype(n.lower()) for n in
             ("FLOAT32", "FLOAT16", "FLOAT64", "INT32", "INT64", "INT16", "UINT8", "INT8", "BOOL")}
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    tensors = []
    for index, t in enumerate(graph.tensors):
        q = t.quantization
        quant = None
        if q is not None and q.scale is not None and len(q.scale):
            zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], np.int64)
            quant = tflite_reader.Quantization(np.asarray(q.scale, np.float64), zero, q.quantizedDimension)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        buffer = model.buffers[t.buffer]
        raw = bytes(buffer.data) if buffer.data is not None and len(buffer.data) else None
        if raw is None and buffer.offset > 1:
            raw = data[buffer.offset:buffer.offset + buffer.size]
        value = None
        if raw is not None:
            value = np.frombuffer(raw, types[t.type]).reshape(shape)
            if quant is not None and value.dtype.kind in "iu":
                value = quant.dequantize(value).astype(np.float32)
            elif value.dtype.kind == "f":
                value = value.astype(np.float32)
        tensors.append(tflite_reader.Tensor(index, t.name.decode(), shape, types[t.type], quant, value))
    operators = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        options = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        kind = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        operators.append(tflite_reader.Operator(kind, list(op.inputs), list(op.outputs), options))
    return tflite_reader.Graph(str(path), tensors, operators, list(graph.inputs), list(graph.outputs))


def assert_same_value(ours, theirs, what: str) -> None:
    """Equal type, dtype, shape and bits (arrays), or equal type and value (scalars)."""
    assert type(ours) is type(theirs), what
    if isinstance(theirs, np.ndarray):
        assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), what
        assert ours.tobytes() == theirs.tobytes(), what
    else:
        assert ours == theirs, what


def assert_same_graph(ours: tflite_reader.Graph, theirs: tflite_reader.Graph) -> None:
    assert (ours.inputs, ours.outputs) == (theirs.inputs, theirs.outputs)
    assert len(ours.tensors) == len(theirs.tensors) and len(ours.operators) == len(theirs.operators)
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        what = f"{ours.path} tensor {b.index} {b.name}"
        assert (a.index, a.name, a.shape, a.dtype) == (b.index, b.name, b.shape, b.dtype), what
        assert (a.quantization is None) == (b.quantization is None), what
        if b.quantization is not None:
            for field in ("scale", "zero_point", "dimension"):
                assert_same_value(getattr(a.quantization, field), getattr(b.quantization, field), what)
        assert (a.value is None) == (b.value is None), what
        if b.value is not None:
            assert_same_value(a.value, b.value, what)
    for i, (a, b) in enumerate(zip(ours.operators, theirs.operators, strict=True)):
        what = f"{ours.path} operator {i} {b.kind}"
        assert (a.kind, a.inputs, a.outputs) == (b.kind, b.inputs, b.outputs), what
        assert a.options.keys() == b.options.keys(), what
        for key, value in b.options.items():
            assert_same_value(a.options[key], value, f"{what} option {key}")


def test_option_keys_of_every_builtin_options_table_match_the_object_api():
    """Keys derived from the generated accessors equal the attributes of TF's object API classes, also
    for the options of operators none of the test models has."""
    import tflite as package

    schema = pytest.importorskip("tensorflow.lite.python.schema_py_generated")
    tables = [k for k, v in vars(package.BuiltinOptions).items() if not k.startswith("_") and v]
    assert len(tables) > 100
    for name in tables:
        expected = list(vars(getattr(schema, f"{name}T")()))
        assert [key for key, _ in tflite_reader._option_fields(getattr(package, name))] == expected, name


@pytest.mark.parametrize("name", REAL_MODELS)
def test_reader_matches_tf_schema_module_on_real_models(shared, name):
    path = shared / "models" / name
    ours = tflite_reader.read(path)
    assert_same_graph(ours, schema_reference(path))
    assert any(t.is_constant for t in ours.tensors) and any(op.options for op in ours.operators)


def test_reader_matches_tf_schema_module_on_small_models(converted):
    _, float_path, int8_path = converted
    for path in (float_path, int8_path):
        assert_same_graph(tflite_reader.read(path), schema_reference(path))


def test_reader_reads_constants_stored_after_the_flatbuffer(tmp_path, converted):
    """Large models keep buffers after the flatbuffer (``Buffer.offset``/``size``): same constants."""
    schema = pytest.importorskip("tensorflow.lite.python.schema_py_generated")
    keras_model, float_path, _ = converted
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter._experimental_use_buffer_offset = True
    path = tmp_path / "offset.tflite"
    path.write_bytes(converter.convert())
    ours = tflite_reader.read(path)
    assert_same_graph(ours, schema_reference(path))
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(path.read_bytes(), 0))
    assert any(b.offset > 1 for b in model.buffers)
    plain = {t.name: t.value for t in tflite_reader.read(float_path).tensors if t.is_constant}
    offset = {t.name: t.value for t in ours.tensors if t.is_constant}
    assert plain.keys() == offset.keys() and len(plain) >= 10
    for name, value in plain.items():
        assert_same_value(offset[name], value, name)


# ----------------------------------------------------------------------------------------------- synthetic
def test_float_tflite_matches_keras_and_interpreter(converted):
    keras_model, float_path, _ = converted
    model = tflite.load([float_path])
    assert model.value_range == tflite.FLOAT_INPUT_RANGE
    assert model.layers == ["concatenate_1"]  # a network with concatenations: its blocks by default
    images = tf.random.stateless_uniform([3, 33, 33, 3], seed=[4, 5])
    feats = model.features(images)
    x = images.numpy() * 2.0 - 1.0
    expected = keras_model(x).numpy()
    np.testing.assert_allclose(tf.nn.softmax(feats["logits"]).numpy(), expected, atol=2e-6)
    out = Reference(float_path, 3).run_raw(x.astype(np.float32))
    np.testing.assert_allclose(tf.nn.softmax(feats["logits"]).numpy(), out, atol=2e-6)
    assert model.class_to_output.tolist() == [-1] * 1000  # 7 outputs are not ImageNet


def test_float16_weights_tflite_matches_keras_with_float16_weights(tmp_path, converted):
    """float16 weights reach each op through a DEQUANTIZE of a constant: folded into the constant, the
    model is the Keras model with its weights rounded to float16."""
    keras_model, float_path, _ = converted
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    path = tmp_path / "small_float16.tflite"
    path.write_bytes(converter.convert())
    assert "DEQUANTIZE" in {op.kind for op in tflite_reader.read(path).operators}
    model = tflite.load([str(path)])
    assert model.layers == tflite.load([float_path]).layers
    rounded = keras_model.__class__.from_config(keras_model.get_config())
    rounded.set_weights([w.astype(np.float16).astype(np.float32) for w in keras_model.get_weights()])
    images = tf.random.stateless_uniform([3, 33, 33, 3], seed=[6, 7])
    expected = rounded(images.numpy() * 2.0 - 1.0).numpy()
    np.testing.assert_allclose(tf.nn.softmax(model.features(images)["logits"]).numpy(), expected, atol=2e-6)
    assert np.abs(expected - keras_model(images.numpy() * 2.0 - 1.0).numpy()).max() > 2e-6  # rounding shows


def test_links_reproduce_their_layer(converted):
    _, float_path, _ = converted
    program = tflite.build_program([float_path])
    assert program.candidates == ["conv2d_1", "re_lu_1", "conv2d_3_1", "conv2d_2_1", "concatenate_1",
                                  "conv2d_4_1"]
    model = tflite.summit_model(program, "t", ["conv2d_1", "re_lu_1", "concatenate_1", "conv2d_4_1"], [])
    by_name = {link.name: link for link in model.links}
    # re_lu_1 = relu(1x1(depthwise(conv2d_1)) + conv2d_1): two pieces from one layer, hence no link;
    # the concat's max-pool branch is not linear either.
    assert set(by_name) == {"concatenate_1/conv2d_2_1", "conv2d_4_1"}
    assert by_name["conv2d_4_1"].kind == "conv" and by_name["conv2d_4_1"].stride == 2
    branch = by_name["concatenate_1/conv2d_2_1"]
    assert (branch.src, branch.dst, branch.dst_offset) == ("re_lu_1", "concatenate_1", 0)
    # TF 2.21's converter folds the explicit zero pad into a SAME conv; TF 2.17's keeps the PAD op, and the
    # link then reads the padded tensor with VALID padding. Both are exact (checked below).
    assert branch.kind == "conv"
    assert (branch.padding, branch.input == branch.src) in {("SAME", True), ("VALID", False)}
    nodes = {n.key: n for n in program.nodes}
    feats = model.features(tf.random.stateless_uniform([2, 33, 33, 3], seed=[6, 7]))
    for link, dst_node in ((branch, nodes["conv2d_2_1"]), (by_name["conv2d_4_1"], nodes["conv2d_4_1"])):
        x = feats[link.input].numpy().astype(np.float64)
        pre = tf.nn.conv2d(x, link.kernel.astype(np.float64), link.stride, link.padding).numpy()
        out = relu_gradients.apply(tf.constant(pre + dst_node.bias), dst_node.activation).numpy()
        actual = feats[link.dst].numpy()[..., link.dst_offset:link.dst_offset + link.cout]
        assert np.abs(out - actual).max() <= 1e-5 * np.abs(actual).max()


def test_pre_activations_are_the_tensors_before_each_activation(converted):
    """Each layer's pre-activation: a fused conv's output before its ReLU/ReLU6, the ADD before a RELU op,
    and for the concat the concat of its branches' pre-activations (Lucid's ``mixed4a_pre_relu``)."""
    _, float_path, _ = converted
    program = tflite.build_program([float_path])
    model = tflite.summit_model(program, "t", program.candidates, [])
    assert model.pre_activations == {c: f"{c}/pre_activation" for c in program.candidates}
    values = model.tensors(tf.random.stateless_uniform([2, 33, 33, 3], seed=[8, 9]), model.tensor_keys())
    nodes = {n.key: n for n in program.nodes}
    for layer in program.candidates:
        pre, post = values[f"{layer}/pre_activation"].numpy(), values[layer].numpy()
        node = nodes[layer]
        if node.op == "concat":
            branches = [values[f"{k}/pre_activation"].numpy() for k in node.inputs]
            np.testing.assert_array_equal(pre, np.concatenate(branches, axis=-1))
            np.testing.assert_array_equal(post, np.concatenate([values[k] for k in node.inputs], axis=-1))
        else:
            activated = relu_gradients.apply(tf.constant(pre), node.activation).numpy()
            np.testing.assert_array_equal(post, activated)
        assert (pre < 0).any(), layer
    # Only what a key needs runs: the first layer's pre-activation is one convolution.
    first = program.candidates[0]
    order, _ = program.needed([f"{first}/pre_activation"])
    assert [program.steps[i].out for i in order] == [first] and nodes[first].op == "conv"


def test_int8_per_channel_tflite_agrees_with_interpreter(converted):
    _, _, int8_path = converted
    model = tflite.load([int8_path])
    lo, hi = model.value_range
    assert lo == pytest.approx(0.0, abs=1e-6) and hi == pytest.approx(1.0, abs=1e-2)
    constants = reference_constants(int8_path)
    graph = tflite_reader.read(int8_path)
    checked = 0
    for index, expected in constants.items():
        tensor = graph.tensors[index]
        if tensor.is_constant:
            np.testing.assert_allclose(tensor.value, expected, rtol=1e-6, atol=1e-9)
            checked += 1
    assert checked >= 12  # 6 conv/depthwise kernels + biases, dense
    images = np.round(np.random.default_rng(3).uniform(0, 1, (16, 33, 33, 3)) * 255) / 255
    ours = tf.nn.softmax(model.features(tf.constant(images, tf.float32))["logits"]).numpy()
    theirs = Reference(int8_path, 16).run(images).astype(np.float64) / 256.0
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.95


def test_relu_redirect_through_model_gives_gradient_where_plain_gives_none(converted):
    """A channel of the ReLU6 layer conv2d_4_1 that is clamped below 0 at every position of a flat-colour
    image: its plain gradient is zero, the redirected one is not (the descent gradient of ``-mean`` is
    negative: it raises the pre-activation, which Lucid lets through)."""
    import itertools

    _, float_path, _ = converted
    model = tflite.load([float_path], layers=["conv2d_4_1"])
    key = "conv2d_4_1/pre_activation"
    levels = np.linspace(0.0, 1.0, 5)
    colours = np.array(list(itertools.product(levels, levels, levels)), np.float32)
    flat = np.broadcast_to(colours[:, None, None, :], (len(colours), 33, 33, 3))
    highest = model.tensors(tf.constant(flat), [key])[key].numpy().max(axis=(1, 2))  # [colours, C]
    image, channel = np.unravel_index(np.argmin(highest), highest.shape)
    assert highest[image, channel] < 0  # dead everywhere on that image
    images = tf.constant(flat[image:image + 1])
    grads = {}
    for redirect in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(images)
            feats = model.features(images, relu_redirect=redirect)
            loss = -tf.reduce_mean(feats["conv2d_4_1"][..., channel])
        grads[redirect] = tape.gradient(loss, images).numpy()
    assert not grads[False].any()
    assert np.isfinite(grads[True]).all() and np.abs(grads[True]).max() > 0


# ----------------------------------------------------------------------------------------------- errors
def test_errors_name_what_is_wrong(tmp_path, converted):
    _, float_path, _ = converted
    with pytest.raises(FileNotFoundError, match="nope.tflite"):
        tflite.load([str(tmp_path / "nope.tflite")])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        tflite.load([str(junk)])
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['mixed3a'\].*conv2d_1"):
        tflite.load([float_path], layers=["mixed3a"])
    with pytest.raises(ValueError, match="cannot chain"):
        tflite.load([float_path, float_path])
    with pytest.raises(ValueError, match="tflite needs a path"):
        registry.load("tflite:")
    with pytest.raises(ValueError, match="unknown model spec"):
        registry.load("tflight:x")


# ----------------------------------------------------------------------------------------------- real
def test_int8_ptq_mobilenet_v2_classifies(shared):
    path = shared / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    model = registry.load(f"tflite:{path}")
    assert len(model.layers) == 28 and model.channels["Conv2d_18_1"] == 1280  # 18 activations, 10 sums
    assert sum("/skip/" in link.name for link in model.links) == 10
    assert model.class_to_output[0] == 1 and model.input_size == 224
    top1, agree = accuracy_and_agreement(shared, model, Reference(path, 50), 100, 50)
    print(f"int8 PTQ MobileNetV2, first 100 val images: top-1 {top1:.3f}, agreement with the interpreter "
          f"{agree:.3f}")
    assert top1 >= 0.6 and agree >= 0.85
