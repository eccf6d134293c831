"""Comparing HDF5 files written by different routes to the same counts."""

from __future__ import annotations

import h5py
import numpy as np


def contents(path):
    """Every dataset and attribute of an HDF5 file."""
    found = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                     else None)
        found.update({f"@{k}": v for k, v in f.attrs.items()})
    return found


def assert_same_file(a, b):
    """Identical but for the time of writing."""
    x, y = contents(a), contents(b)
    assert x.pop("@created") and y.pop("@created")
    assert x.keys() == y.keys()
    for key in x:
        assert np.array_equal(x[key], y[key]), key
