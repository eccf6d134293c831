"""Read a TFLite flatbuffer into plain Python objects with dequantized float constants.

The flatbuffer is parsed with the ``tflite`` package (the TFLite schema compiled by flatc, pure Python on
``flatbuffers``), not with TensorFlow's private ``tensorflow.lite.python.schema_py_generated``, so the
installed TensorFlow version does not matter; the schema only grows by appending, so an older package
still reads every field this module uses. Quantized constants become float: weights ``(q - zero_point) *
scale`` (per channel along ``quantized_dimension`` when the scale is a vector, as in int8 per-channel
models), int32 biases ``q * scale``. Integer constants without quantization (shapes, axes) stay integer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite

_NUMPY_TYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.FLOAT64: np.float64,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.INT16: np.int16,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.BOOL: np.bool_,
}
_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_OPTION_TABLES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and v}


@dataclass
class Quantization:
    scale: np.ndarray
    zero_point: np.ndarray
    dimension: int

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """``(q - zero_point) * scale`` in float64, broadcast along the quantized dimension."""
        shape = [1] * q.ndim
        if self.scale.size > 1:
            shape[self.dimension] = self.scale.size
        scale = self.scale.astype(np.float64).reshape(shape)
        zero = self.zero_point.astype(np.float64)
        zero = zero.reshape(shape) if zero.size > 1 else zero[0]
        return (q.astype(np.float64) - zero) * scale


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    quantization: Quantization | None
    value: np.ndarray | None = None  # float32 (dequantized) or integer constant; None for activations

    @property
    def is_constant(self) -> bool:
        return self.value is not None

    def integer_range(self) -> tuple[float, float] | None:
        """Float values of the lowest and highest integer code (the range an input accepts)."""
        if self.quantization is None or not np.issubdtype(self.dtype, np.integer):
            return None
        info = np.iinfo(self.dtype)
        low, high = self.quantization.dequantize(np.array([info.min, info.max]))
        return float(low), float(high)


@dataclass
class Operator:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    path: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


def _vector(table: Any, name: str) -> np.ndarray | None:
    """Vector field ``name`` of a flatbuffer table as a NumPy array; None when the field is absent."""
    return None if getattr(table, f"{name}IsNone")() else getattr(table, f"{name}AsNumpy")()


def _ints(table: Any, name: str) -> list[int]:
    values = _vector(table, name)
    return [] if values is None else [int(v) for v in values]


def _quantization(tensor: Any) -> Quantization | None:
    q = tensor.Quantization()
    scale = _vector(q, "Scale") if q is not None else None
    if scale is None or len(scale) == 0:
        return None
    zero = _vector(q, "ZeroPoint")
    zero = np.asarray(zero if zero is not None else [0], dtype=np.int64)
    return Quantization(np.asarray(scale, dtype=np.float64), zero, int(q.QuantizedDimension()))


@functools.cache
def _option_fields(table_class: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """``(key, getter)`` for every field of a generated options table. flatc names a field's accessor in
    PascalCase (``StrideW``) and gives vectors ``AsNumpy``/``Length``/``IsNone`` siblings; the key is the
    camelCase name the flatbuffers object API uses (``strideW``), which :mod:`.tflite` reads."""
    methods = vars(table_class)
    fields = []
    for name, method in methods.items():
        generated = name == "Init" or name.startswith("GetRootAs") or name.endswith("BufferHasIdentifier")
        sibling = any(name.endswith(s) and name[:-len(s)] in methods for s in ("AsNumpy", "Length", "IsNone"))
        if not callable(method) or generated or sibling:
            continue
        vector = f"{name}IsNone" in methods
        getter = functools.partial(_vector, name=name) if vector else method
        fields.append((name[0].lower() + name[1:], getter))
    return tuple(fields)


def _options(op: Any) -> dict[str, Any]:
    """The operator's builtin options table as a dict (empty without options)."""
    name, table = _OPTION_TABLES.get(op.BuiltinOptionsType()), op.BuiltinOptions()
    if name is None or table is None:
        return {}
    options = getattr(tflite, name)()
    options.Init(table.Bytes, table.Pos)
    return {key: getter(options) for key, getter in _option_fields(type(options))}


def _constant(raw: bytes | np.ndarray, dtype: np.dtype, shape: tuple[int, ...],
              quant: Quantization | None) -> np.ndarray:
    q = np.frombuffer(bytes(raw), dtype=dtype).reshape(shape)
    if quant is not None and np.issubdtype(dtype, np.integer):
        return quant.dequantize(q).astype(np.float32)
    if np.issubdtype(dtype, np.floating):
        return q.astype(np.float32)
    return q.copy()


def read(path: str | Path) -> Graph:
    """Parse ``path`` (first subgraph) into a :class:`Graph`; clear errors for missing or invalid files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TFLite model {str(path)!r} not found")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
    model = tflite.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() == 0:
        raise ValueError(f"{path}: the model has no subgraph")
    graph = model.Subgraphs(0)
    tensors = []
    for index in range(graph.TensorsLength()):
        t = graph.Tensors(index)
        if t.Type() not in _NUMPY_TYPES:
            raise ValueError(f"{path}: tensor {index} has unsupported type {t.Type()}")
        dtype = np.dtype(_NUMPY_TYPES[t.Type()])
        shape = tuple(_ints(t, "Shape"))
        quant = _quantization(t)
        buffer = model.Buffers(t.Buffer())
        raw = buffer.DataAsNumpy() if buffer.DataLength() else None
        if raw is None and buffer.Offset() > 1:  # large models keep constants after the flatbuffer
            raw = data[buffer.Offset():buffer.Offset() + buffer.Size()]
        value = _constant(raw, dtype, shape, quant) if raw is not None else None
        tensors.append(Tensor(index, (t.Name() or b"").decode(errors="replace"), shape, dtype, quant, value))
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = _OP_NAMES.get(builtin, f"builtin {builtin}")
        if kind == "CUSTOM":
            kind = f"CUSTOM {(code.CustomCode() or b'').decode(errors='replace')}"
        operators.append(Operator(kind, _ints(op, "Inputs"), _ints(op, "Outputs"), _options(op)))
    return Graph(str(path), tensors, operators, _ints(graph, "Inputs"), _ints(graph, "Outputs"))
