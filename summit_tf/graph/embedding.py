"""Where classes sit relative to each other, per layer: cosine similarity and a 2-D class embedding.

A class is described at a layer by its row of A (how often each channel is among its top activations),
normalized to unit length. The viewer animates every class from one layer's layout to the next, so layouts
should differ only where the data does: each layer's UMAP starts from the previous layer's layout (UMAP
``init``), and because UMAP's optimization still turns and reflects a layout freely, every layer is then
rotated/reflected onto the previous one (orthogonal Procrustes). With too few classes for UMAP's
neighbourhood graph, PCA is used instead, aligned the same way.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy.linalg import orthogonal_procrustes

log = logging.getLogger(__name__)

MIN_UMAP_CLASSES = 16


def normalized_rows(a: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    a = np.asarray(a, dtype=np.float64)
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)


def class_similarity(a: np.ndarray) -> np.ndarray:
    """``[K, K]`` cosine similarity of A rows (0 against an all-zero row), e.g. to sort a class list."""
    x = normalized_rows(a)
    return np.clip(x @ x.T, -1.0, 1.0)


def most_similar(a: np.ndarray, classes: np.ndarray, class_id: int) -> list[tuple[int, float]]:
    """All classes ``(class id, similarity)`` ordered from most to least similar to ``class_id``."""
    row = int(np.flatnonzero(np.asarray(classes) == class_id)[0])
    sim = class_similarity(a)[row]
    order = np.argsort(-sim, kind="stable")
    return [(int(classes[i]), float(sim[i])) for i in order]


def unit_square(xy: np.ndarray) -> np.ndarray:
    """Scale a layout into [0, 1]^2 keeping its aspect ratio, centred on the shorter side."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.size == 0:
        return xy.reshape(0, 2)
    lo, extent = xy.min(axis=0), np.ptp(xy, axis=0)
    span = extent.max()
    if span <= 0:
        return np.full_like(xy, 0.5)
    return (xy - lo) / span + (1.0 - extent / span) / 2.0


def align(layout: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``layout`` rotated or reflected about its centre to lie closest (least squares) to ``target``
    (orthogonal Procrustes): a 2-D layout's orientation is arbitrary, the viewer's layer animation is not."""
    centre = layout.mean(axis=0)
    rotation, _ = orthogonal_procrustes(layout - centre, target - target.mean(axis=0))
    return (layout - centre) @ rotation + centre


def _pca(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    out = np.zeros((x.shape[0], 2))
    k = min(2, s.size)
    out[:, :k] = u[:, :k] * s[:k]
    return out


def _umap(x: np.ndarray, init: np.ndarray | str, seed: int) -> np.ndarray:
    import umap  # imported here: umap-learn is slow to import (numba, optional TensorFlow)

    reducer = umap.UMAP(n_components=2, metric="cosine", n_neighbors=min(15, x.shape[0] - 1),
                        random_state=seed, init=init, min_dist=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral-init notices
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def embed_classes(activation: dict[str, np.ndarray], layers: list[str], seed: int = 0,
                  min_umap_classes: int = MIN_UMAP_CLASSES) -> dict[str, np.ndarray]:
    """``{layer: [K, 2]}`` coordinates in [0, 1], each layer initialized from the previous one.

    ``activation[layer]`` is ``[K, C]`` (excluded channels already removed or zero). Deterministic for a
    given ``seed``.
    """
    k = next(iter(activation.values())).shape[0] if activation else 0
    use_umap = k >= min_umap_classes
    if not use_umap:
        log.info("class embedding: %d classes < %d, using PCA instead of UMAP", k, min_umap_classes)
    out: dict[str, np.ndarray] = {}
    previous: np.ndarray | None = None
    for layer in layers:
        x = normalized_rows(activation[layer])
        if k <= 1:
            layout = np.zeros((k, 2))
        else:
            if use_umap:
                init = "spectral" if previous is None else 10.0 * unit_square(previous)
                layout = _umap(x, init, seed)
            else:
                layout = _pca(x)
            if previous is not None:
                layout = align(layout, previous)
        previous = layout
        out[layer] = unit_square(layout)
    return out
