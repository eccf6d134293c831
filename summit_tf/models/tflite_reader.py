"""Read a TFLite flatbuffer into plain Python objects with dequantized float constants.

Uses the schema module that ships inside TensorFlow (``tensorflow.lite.python.schema_py_generated``,
which needs the ``flatbuffers`` package), so the reader follows TF's own schema version; this is why
TensorFlow is pinned (BUILD_NOTES.md). Quantized constants become float: weights ``(q - zero_point) *
scale`` (per channel along ``quantized_dimension`` when the scale is a vector, as in int8 per-channel
models), int32 biases ``q * scale``. Integer constants without quantization (shapes, axes) stay integer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    from tensorflow.lite.python import schema_py_generated as schema
except ImportError as err:  # pragma: no cover - depends on the installed TensorFlow
    raise ImportError(
        "reading TFLite files needs TensorFlow's schema module tensorflow.lite.python.schema_py_generated "
        "and the flatbuffers package (pip install flatbuffers)"
    ) from err

_NUMPY_TYPES = {
    schema.TensorType.FLOAT32: np.float32,
    schema.TensorType.FLOAT16: np.float16,
    schema.TensorType.FLOAT64: np.float64,
    schema.TensorType.INT32: np.int32,
    schema.TensorType.INT64: np.int64,
    schema.TensorType.INT16: np.int16,
    schema.TensorType.UINT8: np.uint8,
    schema.TensorType.INT8: np.int8,
    schema.TensorType.BOOL: np.bool_,
}
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


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


def _quantization(tensor: Any) -> Quantization | None:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], dtype=np.int64)
    return Quantization(np.asarray(q.scale, dtype=np.float64), zero, int(q.quantizedDimension))


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
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    if not model.subgraphs:
        raise ValueError(f"{path}: the model has no subgraph")
    graph = model.subgraphs[0]
    tensors = []
    for index, t in enumerate(graph.tensors):
        if t.type not in _NUMPY_TYPES:
            raise ValueError(f"{path}: tensor {index} has unsupported type {t.type}")
        dtype = np.dtype(_NUMPY_TYPES[t.type])
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        quant = _quantization(t)
        buffer = model.buffers[t.buffer]
        raw = buffer.data if buffer.data is not None and len(buffer.data) else None
        if raw is None and buffer.offset > 1:  # large models keep constants after the flatbuffer
            raw = data[buffer.offset:buffer.offset + buffer.size]
        value = _constant(raw, dtype, shape, quant) if raw is not None else None
        tensors.append(Tensor(index, t.name.decode(errors="replace"), shape, dtype, quant, value))
    operators = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        kind = _OP_NAMES.get(builtin, f"builtin {builtin}")
        if kind == "CUSTOM":
            kind = f"CUSTOM {code.customCode.decode(errors='replace')}"
        options = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        operators.append(Operator(kind, [int(i) for i in op.inputs], [int(i) for i in op.outputs], options))
    inputs, outputs = [int(i) for i in graph.inputs], [int(i) for i in graph.outputs]
    return Graph(str(path), tensors, operators, inputs, outputs)
