"""The paper's figures from a run directory, rendered with matplotlib (no browser), as PNG and SVG.

Inputs are the run directory's published files only (``classes.json``, ``ag/``, ``feature-vis/``), so the
figures can be redrawn for any finished run: attribution graphs (paper Fig. 1/7), the tench study
(section 8.1), a two-class comparison (Fig. 9) and the class embedding per layer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from feature_vis.outputs import channel_path  # noqa: E402
from summit_tf import atomic  # noqa: E402
from summit_tf.examples.patches import patch_path  # noqa: E402
from summit_tf.graph import drawing  # noqa: E402

COLOURS = {"a": "#d9480f", "b": "#1c7ed6", "both": "#5f3dc4", "edge": drawing.EDGE_COLOUR}


def feature_vis_image(run_dir: Path, layer: str, channel: int) -> np.ndarray | None:
    path = channel_path(run_dir, layer, channel)
    return np.asarray(Image.open(path).convert("RGB")) if path.exists() else None


def dataset_examples(run_dir: Path, layer: str, channel: int, n: int) -> list[np.ndarray]:
    paths = [Path(patch_path(str(run_dir), layer, channel, i)) for i in range(n)]
    return [np.asarray(Image.open(path).convert("RGB")) for path in paths if path.exists()]


def _image_of(run_dir: Path) -> drawing.ImageOf:
    return lambda layer, channel: feature_vis_image(run_dir, layer, channel)


def load_graph(run_dir: Path, class_id: int) -> dict[str, list[dict]]:
    path = run_dir / "ag" / f"ag-{class_id}.json"
    if not path.exists():
        raise FileNotFoundError(f"no attribution graph for class {class_id}: {path}")
    return json.loads(path.read_text())


def class_names(run_dir: Path) -> dict[int, str]:
    doc = json.loads((run_dir / "classes.json").read_text())
    return {c["target_class"]: c["name"].split(",")[0] for c in doc["classes"]}


def _layers(run_dir: Path) -> list[str]:
    return json.loads((run_dir / "classes.json").read_text())["meta"]["layers"]


def _save(fig: plt.Figure, out_base: Path) -> list[Path]:
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = out_base.with_suffix(f".{ext}")
        with atomic.writing(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def attribution_graph_figure(run_dir: Path, class_id: int, out_base: Path) -> list[Path]:
    """One class's attribution graph: feature-vis nodes sized by count, edge width by influence."""
    layers = _layers(run_dir)
    title = f"Attribution graph: {class_names(run_dir).get(class_id, class_id)} (class {class_id})"
    fig = drawing.draw_graph(load_graph(run_dir, class_id), _image_of(run_dir), layers, title)
    return _save(fig, out_base)


def comparison_figure(run_dir: Path, class_a: int, class_b: int, out_base: Path) -> list[Path]:
    """Union of two classes' graphs: shared channels/edges in one colour, each class's own in its own."""
    layers = _layers(run_dir)
    na, ea, ca = drawing.graph_parts(load_graph(run_dir, class_a), layers)
    nb, eb, cb = drawing.graph_parts(load_graph(run_dir, class_b), layers)
    nodes = {layer: list(dict.fromkeys(na[layer] + nb[layer])) for layer in layers}
    sa = {(layer, c) for layer in layers for c in na[layer]}
    sb = {(layer, c) for layer in layers for c in nb[layer]}
    colour = {k: COLOURS["both"] if k in sa and k in sb else COLOURS["a"] if k in sa else COLOURS["b"]
              for k in sa | sb}
    wa = {e[:4]: e[4] for e in ea}
    wb = {e[:4]: e[4] for e in eb}
    edges = []
    for key in dict.fromkeys(list(wa) + list(wb)):
        side = "both" if key in wa and key in wb else "a" if key in wa else "b"
        edges.append((*key, max(wa.get(key, 0.0), wb.get(key, 0.0)), COLOURS[side]))
    counts = {k: max(ca.get(k, 0.0), cb.get(k, 0.0)) for k in sa | sb}
    widest = max((len(v) for v in nodes.values()), default=1)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * widest + 2), 0.9 * len(layers) + 1.5))
    drawing.draw_parts(ax, layers, nodes, edges, colour, counts, _image_of(run_dir))
    names = class_names(run_dir)
    shared = len(sa & sb)
    ax.set_title(f"{names.get(class_a, class_a)} (orange) vs {names.get(class_b, class_b)} (blue): "
                 f"{shared} shared channels (purple)")
    return _save(fig, out_base)


def class_study_figure(run_dir: Path, class_id: int, out_base: Path, per_layer: int = 3,
                       examples: int = 4, layers: Sequence[str] | None = None) -> list[Path]:
    """Top graph channels per layer with their feature vis and dataset examples (the tench study)."""
    all_layers = _layers(run_dir)
    layers = list(layers) if layers else all_layers[-6:]
    graph = load_graph(run_dir, class_id)
    rows = []
    for layer in reversed(layers):
        top = sorted(graph.get(layer, []), key=lambda n: -n["count"])[:per_layer]
        rows.extend((layer, n["channel"], n["count"]) for n in top)
    cols = 1 + examples
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols, 1.3 * len(rows)), squeeze=False)
    for r, (layer, ch, count) in enumerate(rows):
        tiles = [feature_vis_image(run_dir, layer, ch), *dataset_examples(run_dir, layer, ch, examples)]
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(tiles) and tiles[c] is not None:
                ax.imshow(tiles[c])
        axes[r][0].set_title(f"{layer}:{ch} ({count})", fontsize=6, loc="left")
    name = class_names(run_dir).get(class_id, class_id)
    fig.suptitle(f"{name}: top channels, feature vis + dataset examples", fontsize=9)
    fig.subplots_adjust(top=1 - 0.9 / (1.3 * len(rows)), hspace=0.35)  # keep the title close on tall grids
    return _save(fig, out_base)


def embedding_figure(run_dir: Path, out_base: Path) -> list[Path]:
    """Class embedding per layer (small multiples); labels when there are few classes."""
    doc = json.loads((run_dir / "classes.json").read_text())
    layers = doc["meta"]["layers"]
    cols = min(4, len(layers))
    rows = -(-len(layers) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(layers):
            ax.axis("off")
            continue
        layer = layers[i]
        xy = np.array([c["embed"][layer] for c in doc["classes"]], dtype=float)
        acc = np.array([c["topOneAcc"] for c in doc["classes"]], dtype=float)
        ax.scatter(xy[:, 0], xy[:, 1], c=acc, cmap="viridis", vmin=0, vmax=1, s=14)
        if len(doc["classes"]) <= 30:
            for c, (x, y) in zip(doc["classes"], xy, strict=True):
                ax.text(x, y, c["name"].split(",")[0], fontsize=5)
        ax.set_title(layer, fontsize=8)
    fig.suptitle("Class embedding per layer (colour: top-1 accuracy)", fontsize=10)
    return _save(fig, out_base)
