"""The aggregates file: SUMMIT's per-class counts in HDF5, the contract every later stage reads.

Layout (version 2, sparse influence; the default)::

    /                    attrs format, version, model, config (JSON), num_images, num_skipped, created
    /classes/index       int32 [K]   ImageNet class ids present, ascending
    /classes/synset      str [K];  /classes/name str [K];  /classes/count int64 [K]
    /layers              str [L]     SUMMIT layers in network order
    /A/<layer>           int32 [K, C]           activation counts (attr channels)
    /I/<link key>/       group, attrs name, src, dst, kind, dst_offset, stride, shape (K, Cout, Cin)
        class_start      int64 [K + 1]   where each class's entries start in inputs/counts
        row_nnz          uint16|int32 [K, Cout]   non-zero entries of each output channel's row
        inputs           uint16|int32 [nnz]       input channel i of each entry, ascending within a row
        counts           int32 [nnz]              the count I[k, j, i] (> 0)
    /predictions/correct int64 [K];  /predictions/prob_hist int64 [K, 20]

Version 1 (``layout="dense"``, still read) stores ``/I/<link key>`` as one dataset int32 [K, Cout, Cin]
chunked one class per chunk. Influence counts are mostly zero (SUMMIT keeps the top k of hundreds of inputs
per image), so the sparse layout is smaller, faster to write and faster to read per class (BUILD_NOTES:
"Sparse influence layout"). Both read back as ``I[name][k] -> int32 [Cout, Cin]``.

Link names may contain ``/`` (``mixed4b/3x3``); their key replaces it with ``__``. Everything is chunked
and gzip-compressed so a reader touches only the classes it needs. Writes go to a temporary file in the
target folder and are renamed into place.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from summit_tf import atomic, imagenet

FORMAT = "summit-tf/aggregates"
VERSIONS = {"sparse": 2, "dense": 1}  # layout -> file version; sparse is written by default
PROB_BINS = 20
SPARSE_CHUNK = 1 << 15  # entries per chunk of inputs/counts: a class of a large link spans a few chunks


def link_key(name: str) -> str:
    """HDF5 dataset name of a link (``/`` is a group separator there)."""
    return name.replace("/", "__")


@dataclass(frozen=True)
class LinkInfo:
    """Where an influence matrix comes from: channel spaces, kind and placement in the dst layer."""

    name: str
    src: str
    dst: str
    kind: str
    dst_offset: int
    stride: int


@dataclass
class Aggregates:
    """Per-class counts of one run. ``I`` values may be h5py datasets (read lazily, ``I[name][k]``)."""

    model: str
    config: dict
    classes: np.ndarray
    class_count: np.ndarray
    layers: list[str]
    A: dict[str, np.ndarray]
    links: dict[str, LinkInfo]
    I: Mapping[str, np.ndarray]
    correct: np.ndarray
    prob_hist: np.ndarray
    num_images: int = 0
    num_skipped: int = 0
    created: str = ""
    _file: h5py.File | None = field(default=None, repr=False)

    @property
    def channels(self) -> dict[str, int]:
        return {layer: int(self.A[layer].shape[1]) for layer in self.layers}

    @property
    def filename(self) -> str | None:
        """The HDF5 file the counts are read from; None for aggregates held in memory."""
        return self._file.filename if self._file is not None else None

    def slot(self, class_id: int) -> int:
        """Row of ``class_id`` in every per-class array."""
        hits = np.flatnonzero(self.classes == class_id)
        if hits.size == 0:
            raise KeyError(f"class {class_id} is not in this run (classes: {self.classes.tolist()[:20]}...)")
        return int(hits[0])

    def influence(self, link: str, class_id: int) -> np.ndarray:
        """``[Cout, Cin]`` influence counts of one class for one link."""
        return np.asarray(self.I[link][self.slot(class_id)])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Aggregates:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _str_array(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=h5py.string_dtype())


def save(path: str | os.PathLike, agg: Aggregates, *, layout: str = "sparse") -> None:
    """Write ``agg`` atomically to ``path`` (temporary file in the same folder, then rename).

    ``layout``: ``"sparse"`` (version 2, the default) or ``"dense"`` (version 1, for readers of the older
    format).
    """
    if layout not in VERSIONS:
        raise ValueError(f"layout must be one of {sorted(VERSIONS)}, got {layout!r}")
    with atomic.writing(path) as tmp:
        _write(str(tmp), agg, layout)


def _index_dtype(limit: int) -> np.dtype:
    """The smallest of uint16/int32 that holds values up to ``limit``."""
    return np.dtype(np.uint16) if limit <= np.iinfo(np.uint16).max else np.dtype(np.int32)


def _write_dense(group: h5py.Group, name: str, counts: Mapping, k: int) -> h5py.Dataset:
    shape = tuple(counts.shape)
    ds = group.create_dataset(
        link_key(name), shape=shape, dtype=np.int32, chunks=(1, *shape[1:]) if k else None,
        # Level 1: on these sparse counts 1.8x faster to write than the default 4 and no slower
        # to read, for files 16 % larger (benchmarked on InceptionV1-sized classes).
        compression="gzip", compression_opts=1, shuffle=True,
    )
    for row in range(k):  # one class at a time: bounded memory for lazily read inputs
        ds[row] = np.asarray(counts[row], dtype=np.int32)
    return ds


def _write_sparse(group: h5py.Group, name: str, counts: Mapping, k: int) -> h5py.Group:
    """One class at a time: the class's non-zero entries, row by row, appended to growing datasets."""
    _, cout, cin = (int(n) for n in counts.shape)
    g = group.create_group(link_key(name))
    g.attrs["shape"] = np.array([k, cout, cin], dtype=np.int64)
    packed = dict(compression="gzip", compression_opts=1, shuffle=True)
    row_nnz = g.create_dataset("row_nnz", shape=(k, cout), dtype=_index_dtype(cin),
                               chunks=(1, cout) if k else None, **packed)
    inputs = g.create_dataset("inputs", shape=(0,), maxshape=(None,), dtype=_index_dtype(cin - 1),
                              chunks=(SPARSE_CHUNK,), **packed)
    values = g.create_dataset("counts", shape=(0,), maxshape=(None,), dtype=np.int32,
                              chunks=(SPARSE_CHUNK,), **packed)
    start = np.zeros(k + 1, dtype=np.int64)
    for row in range(k):
        dense = np.asarray(counts[row], dtype=np.int32)
        if dense.shape != (cout, cin):
            raise ValueError(f"influence {name}: class row {row} has shape {dense.shape}, expected "
                             f"{(cout, cin)}")
        if (dense < 0).any():
            raise ValueError(f"influence {name}: negative counts in class row {row}")
        nonzero = dense != 0
        row_nnz[row] = nonzero.sum(axis=1)
        j, i = np.nonzero(nonzero)  # row-major: rows ascending, inputs ascending within a row
        start[row + 1] = start[row] + j.size
        if j.size:
            inputs.resize((start[row + 1],))
            values.resize((start[row + 1],))
            inputs[start[row]:] = i
            values[start[row]:] = dense[j, i]
    g["class_start"] = start
    return g


def _write(filename: str, agg: Aggregates, layout: str) -> None:
    classes = np.asarray(agg.classes, dtype=np.int32)
    k = int(classes.size)
    with h5py.File(filename, "w") as f:
        f.attrs.update(
            format=FORMAT,
            version=VERSIONS[layout],
            model=agg.model,
            config=json.dumps(agg.config, sort_keys=True),
            num_images=int(agg.num_images),
            num_skipped=int(agg.num_skipped),
            created=agg.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )
        g = f.create_group("classes")
        g["index"] = classes
        g["synset"] = _str_array([imagenet.synsets()[c] for c in classes])
        g["name"] = _str_array([imagenet.names()[c] for c in classes])
        g["count"] = np.asarray(agg.class_count, dtype=np.int64)
        f["layers"] = _str_array(list(agg.layers))
        ga = f.create_group("A")
        for layer in agg.layers:
            a = np.asarray(agg.A[layer], dtype=np.int32)
            ds = ga.create_dataset(layer, data=a, chunks=(1, a.shape[1]) if k else None, compression="gzip")
            ds.attrs["channels"] = a.shape[1]
        gi = f.create_group("I")
        write_link = _write_sparse if layout == "sparse" else _write_dense
        for name, info in agg.links.items():
            node = write_link(gi, name, agg.I[name], k)
            node.attrs.update(
                name=info.name, src=info.src, dst=info.dst, kind=info.kind,
                dst_offset=int(info.dst_offset), stride=int(info.stride),
            )
        gp = f.create_group("predictions")
        gp["correct"] = np.asarray(agg.correct, dtype=np.int64)
        gp["prob_hist"] = np.asarray(agg.prob_hist, dtype=np.int64).reshape(k, PROB_BINS)


class SparseCounts:
    """A version-2 link's ``[K, Cout, Cin]`` counts, read one class at a time as a dense int32 array."""

    def __init__(self, group: h5py.Group) -> None:
        self.shape = tuple(int(n) for n in group.attrs["shape"])
        self.dtype = np.dtype(np.int32)
        self._start = group["class_start"][()]
        self._row_nnz, self._inputs, self._counts = group["row_nnz"], group["inputs"], group["counts"]
        if self._start.shape != (self.shape[0] + 1,) or self._row_nnz.shape != self.shape[:2]:
            raise ValueError(f"{group.file.filename}: influence {group.name} is inconsistent "
                             f"(class_start {self._start.shape}, row_nnz {self._row_nnz.shape}, "
                             f"shape {self.shape})")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, row: int) -> np.ndarray:
        k, cout, cin = self.shape
        row = int(row)
        if not -k <= row < k:
            raise IndexError(f"class row {row} out of range for {k} classes")
        row %= k
        lo, hi = int(self._start[row]), int(self._start[row + 1])
        out = np.zeros((cout, cin), dtype=np.int32)
        if hi > lo:
            rows = np.repeat(np.arange(cout), self._row_nnz[row].astype(np.int64))
            if rows.size != hi - lo:
                raise ValueError(f"{self._inputs.file.filename}: influence {self._inputs.parent.name} class "
                                 f"row {row}: {rows.size} row entries but {hi - lo} stored")
            out[rows, self._inputs[lo:hi].astype(np.int64)] = self._counts[lo:hi]
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        full = np.stack([self[row] for row in range(self.shape[0])]) if self.shape[0] else \
            np.zeros(self.shape, dtype=np.int32)
        return full if dtype is None else full.astype(dtype)


def load(path: str | os.PathLike) -> Aggregates:
    """Open an aggregates file: A and predictions in memory, influence matrices read lazily.

    Reads versions 1 and 2. Use as a context manager (or call ``close()``) so the HDF5 file is released.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"aggregates file not found: {path}")
    f = h5py.File(path, "r")
    try:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file (format={f.attrs.get('format')!r})")
        version = int(f.attrs["version"])
        if version not in VERSIONS.values():
            raise ValueError(f"{path}: unsupported version {version} (this reader: "
                             f"{', '.join(map(str, sorted(VERSIONS.values())))}); a newer summit-tf wrote it")
        layers = [s.decode() if isinstance(s, bytes) else s for s in f["layers"][()]]
        links = {}
        influence = {}
        for node in f["I"].values():
            a = node.attrs
            info = LinkInfo(str(a["name"]), str(a["src"]), str(a["dst"]), str(a["kind"]),
                            int(a["dst_offset"]), int(a["stride"]))
            links[info.name] = info
            influence[info.name] = SparseCounts(node) if isinstance(node, h5py.Group) else node
        return Aggregates(
            model=str(f.attrs["model"]),
            config=json.loads(f.attrs["config"]),
            classes=f["classes/index"][()],
            class_count=f["classes/count"][()],
            layers=layers,
            A={layer: f["A"][layer][()] for layer in layers},
            links=links,
            I=influence,
            correct=f["predictions/correct"][()],
            prob_hist=f["predictions/prob_hist"][()],
            num_images=int(f.attrs["num_images"]),
            num_skipped=int(f.attrs["num_skipped"]),
            created=str(f.attrs["created"]),
            _file=f,
        )
    except BaseException:
        f.close()
        raise
