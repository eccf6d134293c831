"""Compiled kernels that turn one link's influence counts into full-graph edges.

A full InceptionV1-sized class has ~3 M count entries and 16 two-hop products; NumPy needs large
temporaries for the max-min product and a sort per row for the top-k, which made them 70 % of a class's
time. These Numba loops touch each count once, keep the per-row work in cache, and emit the edges
(``hi`` vertex, ``lo`` vertex, count) straight into arrays, row-major: the order a dense ``flatnonzero``
gives. Channels whose vertex id is negative (excluded channels) produce no edges.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True}  # cached on disk: spawned workers do not compile again


@numba.njit(**_JIT)
def direct_edges(counts: np.ndarray, vin: np.ndarray, vout: np.ndarray) -> tuple:
    """Edges ``(vout[j], vin[i], counts[j, i])`` of every positive count between two vertices.

    Counts the edges first and allocates exactly: fresh pages cost more than a second pass here.
    """
    cout, cin = counts.shape
    if vin.size != cin or vout.size != cout:
        raise ValueError("direct_edges: counts do not match the vertex ids")
    n = 0
    for j in range(cout):
        if vout[j] >= 0:
            for i in range(cin):
                n += np.int32((counts[j, i] > 0) & (vin[i] >= 0))
    hi = np.empty(n, np.int32)
    lo = np.empty(n, np.int32)
    w = np.empty(n, np.int32)
    e = 0
    for j in range(cout):
        if vout[j] < 0:
            continue
        for i in range(cin):
            if counts[j, i] > 0 and vin[i] >= 0:
                hi[e] = vout[j]
                lo[e] = vin[i]
                w[e] = counts[j, i]
                e += 1
    return hi, lo, w


@numba.njit(**_JIT)
def _maxmin_transposed(branch: np.ndarray, inner: np.ndarray, vin: np.ndarray) -> np.ndarray:
    """``out[i, j] = max_b min(branch[j, b], inner[b, i])`` over inputs ``i`` that are vertices.

    Loops over the non-zero ``inner[b, i]`` and runs along ``j`` contiguously, so the inner loop is a
    vectorized min/max over a row of ``branch.T`` (written as conditionals: LLVM turns them into SIMD
    min/max, which Python's ``min``/``max`` builtins are not).
    """
    cout, cb = branch.shape
    cin = inner.shape[1]
    columns = np.ascontiguousarray(branch.T)
    paths = np.ascontiguousarray(inner.T)
    out = np.zeros((cin, cout), branch.dtype)
    for i in range(cin):
        if vin[i] < 0:
            continue
        for b in range(cb):
            v = paths[i, b]
            if v > 0:
                for j in range(cout):
                    x = columns[b, j]
                    x = x if x < v else v
                    out[i, j] = x if x > out[i, j] else out[i, j]
    return out


@numba.njit(**_JIT)
def _kth_largest(row: np.ndarray, k: int, top: int) -> int:
    """The ``k``-th largest value of a non-negative integer row: bisection on how many values reach it
    (each count is a vectorized pass; cheaper than sorting rows of a few hundred values)."""
    lo, hi = 1, top
    while lo < hi:
        t = (lo + hi + 1) // 2
        above = 0
        for i in range(row.size):
            above += np.int32(row[i] >= t)
        if above >= k:
            lo = t
        else:
            hi = t - 1
    return lo


@numba.njit(**_JIT)
def two_hop_edges(branch: np.ndarray, inner: np.ndarray, vin: np.ndarray, vout: np.ndarray,
                  k: int) -> tuple:
    """Edges of ``W[j, i] = max_b min(branch[j, b], inner[b, i])`` keeping per row ``j`` its ``k`` largest
    positive entries (all of them when ``k <= 0``); ties at the ``k``-th value go to the lower ``i``.

    ``branch`` and ``inner`` share one integer dtype (int16 halves the memory traffic when counts fit).
    """
    cout = branch.shape[0]
    cin = inner.shape[1]
    if inner.shape[0] != branch.shape[1] or vin.size != cin or vout.size != cout:
        raise ValueError("two_hop_edges: branch, inner and vertex ids do not match")
    w = np.ascontiguousarray(_maxmin_transposed(branch, inner, vin).T)
    width = cin if k <= 0 or k > cin else k
    hi = np.empty(cout * width, np.int32)
    lo = np.empty(cout * width, np.int32)
    weight = np.empty(cout * width, np.int32)
    e = 0
    for j in range(cout):
        if vout[j] < 0:
            continue
        row = w[j]
        positive, top = 0, 0
        for i in range(cin):
            positive += np.int32(row[i] > 0)
            top = max(top, np.int64(row[i]))
        kth, ties = 0, 0
        if positive > width:
            kth = _kth_largest(row, width, top)
            greater = 0
            for i in range(cin):
                greater += np.int32(row[i] > kth)
            ties = width - greater
        floor = max(kth, 1)
        for i in range(cin):
            x = row[i]
            if x >= floor:
                if x == kth:
                    if ties == 0:
                        continue
                    ties -= 1
                hi[e] = vout[j]
                lo[e] = vin[i]
                weight[e] = x
                e += 1
    return hi[:e], lo[:e], weight[:e]
