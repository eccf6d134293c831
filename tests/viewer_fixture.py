"""A run directory for the viewer tests: ``classes.json``, ``ag/ag-<class>.json`` and ``feature-vis/`` images.

Synthesized here, following the pinned data contract, so the viewer tests run in seconds without a model;
``make_run_dir`` is the one place to switch to a real pipeline run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

LAYERS = ["conv_pw_3", "conv_pw_5", "conv_pw_7", "conv_pw_9", "conv_pw_11", "conv_pw_13"]
CHANNELS = {"conv_pw_3": 128, "conv_pw_5": 256, "conv_pw_7": 512, "conv_pw_9": 512, "conv_pw_11": 512,
            "conv_pw_13": 1024}
CLASSES = [(0, "n01440764", "tench"), (217, "n02102040", "English springer"),
           (270, "n02114548", "white wolf"), (294, "n02132136", "brown bear"),
           (295, "n02133161", "American black bear"), (482, "n02979186", "cassette player"),
           (491, "n03000684", "chain saw"), (497, "n03028079", "church"), (566, "n03394916", "French horn"),
           (569, "n03417042", "garbage truck"), (571, "n03425413", "gas pump"),
           (574, "n03445777", "golf ball"), (701, "n03888257", "parachute")]
PROB_BINS = 20
POOL = 10  # channels per layer that graphs draw from, so classes share channels as real ones do
IMAGE_PX = 64


def _graph(rng: np.random.Generator, pools: dict[str, np.ndarray], n_images: int,
           shared_with: dict | None) -> dict:
    """One attribution graph in SUMMIT's published format (last layer first)."""
    kept: dict[str, list[dict]] = {}
    for depth, layer in enumerate(LAYERS):
        size = 7 if layer == LAYERS[-1] else int(rng.integers(3, 6))
        chosen = list(rng.choice(pools[layer], size=size, replace=False))
        if shared_with is not None:  # a sibling class keeps about half of its sibling's channels
            theirs = [n["channel"] for n in shared_with[layer]]
            chosen = list(dict.fromkeys(theirs[: max(1, len(theirs) // 2)] + chosen))[:size]
        nodes = []
        for channel in chosen:
            prev = []
            if depth > 0:
                below = kept[LAYERS[depth - 1]]
                fan_in = int(rng.integers(1, min(3, len(below)) + 1))
                picks = rng.choice(len(below), size=fan_in, replace=False)
                prev = [{"prev_channel": below[i]["channel"], "inf": int(rng.integers(5, 400))}
                        for i in picks]
                prev.sort(key=lambda e: -e["inf"])
            nodes.append({
                "channel": int(channel), "count": int(rng.integers(2, n_images + 1)), "layer": layer,
                "pagerank": float(rng.uniform(1e-4, 1e-2)), "prev_channels": prev,
                "attr_channels": [{"prev_channel": str(e["prev_channel"]), "inf": e["inf"]}
                                  for e in prev[:3]],
            })
        nodes.sort(key=lambda n: -n["count"])
        kept[layer] = nodes
    return {layer: kept[layer] for layer in reversed(LAYERS)}


def _pattern(seed: int, variant: int) -> Image.Image:
    """A colourful striped texture standing in for a feature visualization or a dataset patch."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:IMAGE_PX, 0:IMAGE_PX] / IMAGE_PX
    angle, freq = rng.uniform(0, np.pi), rng.uniform(3, 9)
    phase = variant * 0.9
    wave = np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + phase)
    base, accent = rng.uniform(0.15, 0.95, 3), rng.uniform(0.15, 0.95, 3)
    mix = (0.5 + 0.5 * wave)[..., None]
    pixels = (255 * (mix * base + (1 - mix) * accent)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _write_images(root: Path, used: set[tuple[str, int]]) -> None:
    for layer, channel in sorted(used):
        seed = LAYERS.index(layer) * 10_000 + channel
        stem = f"{layer}-{channel}"
        _pattern(seed, 0).save(root / "channel" / f"{stem}-channel.jpg", quality=85)
        for d in range(4):
            _pattern(seed, d + 1).save(root / f"diversity-{d}" / f"{stem}-diversity-{d}.jpg", quality=85)
        for i in range(10):
            _pattern(seed * 31 + i + 7, i).save(root / "dataset-p" / f"{stem}-dataset-p-{i}.jpg", quality=80)


def make_run_dir(path: Path) -> Path:
    """Write a complete run directory under ``path`` and return it."""
    path = Path(path)
    rng = np.random.default_rng(7)
    pools = {layer: np.sort(rng.choice(CHANNELS[layer], size=POOL, replace=False)) for layer in LAYERS}
    (path / "ag").mkdir(parents=True, exist_ok=True)
    fv = path / "feature-vis"
    for sub in ["channel", "dataset-p", *(f"diversity-{d}" for d in range(4))]:
        (fv / sub).mkdir(parents=True, exist_ok=True)

    graphs: dict[int, dict] = {}
    classes, used = [], set()
    walk = {c[0]: rng.uniform(0.1, 0.9, 2) for c in CLASSES}
    for target, synset, name in CLASSES:
        n_images = int(rng.integers(30, 60))
        sibling = graphs.get(294) if target == 295 else None
        graph = _graph(rng, pools, n_images, sibling)
        graphs[target] = graph
        (path / "ag" / f"ag-{target}.json").write_text(json.dumps(graph))
        used |= {(n["layer"], n["channel"]) for nodes in graph.values() for n in nodes}

        correct = int(rng.integers(n_images // 3, n_images + 1))
        probs = rng.beta(1 + 4 * correct / n_images, 1.5, n_images)
        hist = np.bincount(np.minimum((probs * PROB_BINS).astype(int), PROB_BINS - 1), minlength=PROB_BINS)
        top, embed = {}, {}
        for layer in LAYERS:
            extra = rng.choice(CHANNELS[layer], size=6, replace=False)
            counts = {int(n["channel"]): int(n["count"]) for n in graph[layer]}
            for ch in extra:
                counts.setdefault(int(ch), int(rng.integers(1, n_images)))
            top[layer] = sorted(([c, k] for c, k in counts.items()), key=lambda e: (-e[1], e[0]))
            walk[target] = np.clip(walk[target] + rng.normal(0, 0.18, 2), 0.0, 1.0)
            embed[layer] = [round(float(v), 4) for v in walk[target]]
        classes.append({
            "target_class": target, "synset": synset, "name": name, "numOfInstances": n_images,
            "topOneAcc": correct / n_images, "topOneAccCount": correct, "probHist": [int(v) for v in hist],
            "topChannels": top, "embed": embed,
        })

    meta = {
        "model": "MobileNetV1 (synthetic test run)", "dataset": "Imagenette2 (synthetic)",
        "num_images": sum(c["numOfInstances"] for c in classes), "num_classes": len(classes),
        "layers": LAYERS, "channels": CHANNELS, "config": {"tau": 0.03, "top_k": 5},
        "graph_config": {"node_mass": 0.075, "relax_step": 0.005, "damping": 0.85}, "prob_bins": PROB_BINS,
    }
    (path / "classes.json").write_text(json.dumps({"meta": meta, "classes": classes}))
    _write_images(fv, used)
    return path
