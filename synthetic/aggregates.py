"""Synthetic aggregates with InceptionV1's shape, for benchmarks and scale tests of the graph stage.

Every SUMMIT layer is an Inception block (1x1, 3x3 through a bottleneck, 5x5 through a bottleneck, pool
projection); influence rows have about ``degree`` non-zero inputs, as SUMMIT's top-5-per-image counts do
(the published full graphs have ~245k edges for 5,484 channels). Counts never exceed the class's image
count. Influence rows are generated on demand, one class at a time, so a 1,000-class run can be written to
HDF5 in bounded memory.
"""

from __future__ import annotations

import numpy as np

from summit_tf.store import Aggregates, LinkInfo

# (layer, 1x1, 3x3, 5x5, pool projection, 3x3 bottleneck, 5x5 bottleneck): Lucid's InceptionV1.
INCEPTION_V1 = (
    ("mixed3a", 64, 128, 32, 32, 96, 16),
    ("mixed3b", 128, 192, 96, 64, 128, 32),
    ("mixed4a", 192, 204, 48, 64, 96, 16),
    ("mixed4b", 160, 224, 64, 64, 112, 24),
    ("mixed4c", 128, 256, 64, 64, 128, 24),
    ("mixed4d", 112, 288, 64, 64, 144, 32),
    ("mixed4e", 256, 320, 128, 128, 160, 32),
    ("mixed5a", 256, 320, 128, 128, 160, 32),
    ("mixed5b", 384, 384, 128, 128, 192, 48),
)


class LazyCounts:
    """``[K, Cout, Cin]`` influence counts whose class rows are generated when indexed."""

    def __init__(self, shape: tuple[int, int, int], seed: int, images: np.ndarray, degree: int) -> None:
        self.shape = shape
        self.seed, self.images, self.degree = seed, images, degree

    def __getitem__(self, row: int) -> np.ndarray:
        _, cout, cin = self.shape
        rng = np.random.default_rng([self.seed, int(row)])
        n = int(self.images[row])
        k = min(cin, self.degree)
        # Per output channel: k distinct inputs, counts decaying like SUMMIT's top-5-per-image tallies.
        picks = np.argpartition(rng.random((cout, cin)), k - 1, axis=1)[:, :k] if k < cin else \
            np.broadcast_to(np.arange(cin), (cout, cin))
        counts = np.ceil(n * rng.beta(0.6, 2.5, size=(cout, k))).astype(np.int32)
        out = np.zeros((cout, cin), dtype=np.int32)
        np.put_along_axis(out, picks, np.minimum(counts, n), axis=1)
        return out

    def __len__(self) -> int:
        return self.shape[0]


def inception_like(num_classes: int = 4, seed: int = 0, images: int = 1300, degree: int = 47,
                   blocks: tuple = INCEPTION_V1) -> Aggregates:
    """Aggregates of ``num_classes`` classes (ImageNet ids 0..K-1) over InceptionV1-shaped layers."""
    rng = np.random.default_rng(seed)
    classes = np.arange(num_classes, dtype=np.int32)
    count = rng.integers(images // 2, images + 1, size=num_classes)
    layers = [b[0] for b in blocks]
    A, links, I = {}, {}, {}
    for index, (layer, n1, n3, n5, npool, b3, b5) in enumerate(blocks):
        width = n1 + n3 + n5 + npool
        a = np.ceil(count[:, None] * rng.beta(0.3, 4.0, size=(num_classes, width))).astype(np.int32)
        a[rng.random((num_classes, width)) < 0.6] = 0
        A[layer] = np.minimum(a, count[:, None]).astype(np.int32)
        if index == 0:
            continue
        prev = layers[index - 1]
        cin = sum(blocks[index - 1][1:5])
        specs = [
            (f"{layer}/1x1", prev, layer, 0, n1, cin, "1x1"),
            (f"{layer}/3x3_bottleneck", prev, f"{layer}/3x3_bottleneck", 0, b3, cin, "1x1"),
            (f"{layer}/3x3", f"{layer}/3x3_bottleneck", layer, n1, n3, b3, "conv"),
            (f"{layer}/5x5_bottleneck", prev, f"{layer}/5x5_bottleneck", 0, b5, cin, "1x1"),
            (f"{layer}/5x5", f"{layer}/5x5_bottleneck", layer, n1 + n3, n5, b5, "conv"),
            (f"{layer}/pool_reduce", prev, layer, n1 + n3 + n5, npool, cin, "1x1"),
        ]
        for name, src, dst, offset, cout, c_in, kind in specs:
            links[name] = LinkInfo(name, src, dst, kind, offset, 1)
            I[name] = LazyCounts((num_classes, cout, c_in), int(rng.integers(2**31)), count, degree)
    correct = (count * rng.uniform(0.4, 1.0, size=num_classes)).astype(np.int64)
    prob_hist = np.zeros((num_classes, 20), dtype=np.int64)
    prob_hist[:, -1] = correct
    prob_hist[:, 0] = count - correct
    return Aggregates(
        model="synthetic:inception_v1", config={"data": "synthetic", "exclude_channels": {}},
        classes=classes, class_count=count.astype(np.int64), layers=layers, A=A, links=links, I=I,
        correct=correct, prob_hist=prob_hist.astype(np.int64), num_images=int(count.sum()),
    )


def from_counts(channels: dict[str, int], A: dict[str, np.ndarray], links: dict[str, tuple],
                classes: list[int] | None = None, count: list[int] | None = None,
                config: dict | None = None) -> Aggregates:
    """Hand-made aggregates: ``links[name] = (src, dst, dst_offset, counts [K, Cout, Cin])``.

    ``channels`` lists the SUMMIT layers in network order; inner spaces are any other ``src``/``dst``.
    Image counts default to the largest count anywhere in the class's arrays.
    """
    A = {layer: np.asarray(a, dtype=np.int32).reshape(-1, channels[layer]) for layer, a in A.items()}
    k = next(iter(A.values())).shape[0]
    classes = list(range(k)) if classes is None else classes
    I, infos = {}, {}
    for name, (src, dst, offset, counts) in links.items():
        I[name] = np.asarray(counts, dtype=np.int32).reshape(k, *np.shape(counts)[-2:])
        infos[name] = LinkInfo(name, src, dst, "conv", int(offset), 1)
    if count is None:
        tops = [a.max(axis=1) for a in A.values()] + [i.reshape(k, -1).max(axis=1) for i in I.values()]
        count = np.max(np.stack(tops), axis=0).tolist()
    count = np.asarray(count, dtype=np.int64)
    return Aggregates(
        model="hand-made", config=dict(config or {}), classes=np.asarray(classes, dtype=np.int32),
        class_count=count, layers=list(channels), A=A, links=infos, I=I,
        correct=count // 2, prob_hist=np.zeros((k, 20), dtype=np.int64), num_images=int(count.sum()),
    )
