"""Files the viewer reads: ``ag/ag-<class>.json`` (SUMMIT's format), ``classes.json``,
``details/class-<class>.json``, ``compare/*.json``.

``classes.json`` holds only what the viewer's first screen needs (compact JSON; ~1.3 MB for 1,000
InceptionV1 classes, where the top channels inline made it 24.5 MB)::

    {"meta": {"model", "dataset", "num_images", "num_classes", "layers" (network order),
              "channels": {layer: int}, "config" (aggregation), "graph_config", "prob_bins": 20,
              "format": 2, "similarity_scale": 10000},
     "classes": [{"target_class", "synset", "name", "numOfInstances", "topOneAcc", "topOneAccCount",
                  "probHist": [20 ints], "embed": {layer: [x, y]} (4 decimals),
                  "graph": {...} (only for classes whose graph was built)}]}

``details/class-<class>.json``, loaded when the class is selected::

    {"target_class", "topChannels": {layer: [[channel, count], ...]},
     "similarity": {layer: [cosine to each class of classes.json, in its order, x similarity_scale]}}

``topChannels`` lists the non-zero A entries (excluded channels left out), largest count first; the
similarity is the cosine of two classes' A rows (excluded channels left out), rounded to 1e-4. Format 1
(no ``meta.format``) had ``topChannels`` inline in ``classes.json`` and no details files; the viewer still
reads it. SUMMIT's own ``imagenet.json`` used the same key names with other shapes (``topChannels`` as
``[{ch, ct}]``, ``embed`` as ``{x, y}``, per-image probabilities ``accs``); these files keep the shapes above.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from summit_tf import atomic, imagenet
from summit_tf.graph.attribution import AttributionGraph, GraphConfig
from summit_tf.graph.build import Structure
from summit_tf.graph.embedding import class_similarity
from summit_tf.store import PROB_BINS, Aggregates

FORMAT = 2
SIMILARITY_SCALE = 10_000
EMBED_DECIMALS = 4
COMPACT = {"separators": (",", ":")}  # json.dumps options: no spaces (classes.json is the first download)


def ag_path(out_dir: str | os.PathLike, class_id: int) -> Path:
    return Path(out_dir) / "ag" / f"ag-{class_id}.json"


def write_ag(out_dir: str | os.PathLike, ag: AttributionGraph) -> Path:
    return atomic.write_json(ag_path(out_dir, ag.class_id), ag.to_json())


def details_path(out_dir: str | os.PathLike, class_id: int) -> Path:
    return Path(out_dir) / "details" / f"class-{class_id}.json"


def compare_path(out_dir: str | os.PathLike, a: int, b: int) -> Path:
    return Path(out_dir) / "compare" / f"{a}-{b}.json"


def remove_stale(out_dir: str | os.PathLike, graphs: Iterable[int], details: Iterable[int]) -> list[Path]:
    """Remove the ag and details files of classes other than ``graphs`` and ``details`` (what an earlier
    run over other classes or settings left), so the folder, and so the viewer's manifest, matches the
    ``classes.json`` written next. Returns the removed paths."""
    keep = {ag_path(out_dir, c) for c in graphs} | {details_path(out_dir, c) for c in details}
    stale = [path for folder, pattern in (("ag", "ag-*.json"), ("details", "class-*.json"))
             for path in sorted(Path(out_dir, folder).glob(pattern)) if path not in keep]
    for path in stale:
        path.unlink()
    return stale


def dataset_name(config: dict) -> str:
    """The data a run counted: its data spec, or that of every input of a merged file when they agree
    (else "")."""
    for key in ("dataset", "data"):
        if isinstance(config.get(key), str):
            return config[key]
    names = {dataset_name(sel) for sel in config.get("merged_from") or []}
    return names.pop() if len(names) == 1 else ""


def top_channels(row: np.ndarray, keep: np.ndarray) -> list[list[int]]:
    """``[[channel, count], ...]``: non-zero counts of kept channels, largest first (ties: lower channel)."""
    row = np.where(keep, np.asarray(row, dtype=np.int64), 0)
    order = np.argsort(-row, kind="stable")
    order = order[row[order] > 0]
    return [[int(c), int(row[c])] for c in order]


def graph_stats(ag: AttributionGraph) -> dict:
    """Kept nodes and edges (skip edges included), the full graph's edges, how the selection went."""
    return {"nodes": int(ag.selection.kept.sum()),
            "edges": int(ag.selection.edges.sum()) + int(ag.kept_skips.sum()),
            "full_edges": ag.full.num_edges + int(ag.full.skip_weight.size),
            "relax_rounds": ag.selection.relax_rounds,
            "node_mass": ag.selection.masses, "disconnected": ag.selection.disconnected}


def classes_json(agg: Aggregates, st: Structure, embed: dict[str, np.ndarray], config: GraphConfig,
                 stats: dict[int, dict] | None = None) -> dict:
    """The ``classes.json`` document for every class of the run (see the module docstring)."""
    stats = stats or {}
    records = []
    for slot, class_id in enumerate(agg.classes.tolist()):
        n = int(agg.class_count[slot])
        correct = int(agg.correct[slot])
        record = {
            "target_class": class_id,
            "synset": imagenet.synsets()[class_id],
            "name": imagenet.short_name(class_id),
            "numOfInstances": n,
            "topOneAcc": correct / n if n else 0.0,
            "topOneAccCount": correct,
            "probHist": [int(x) for x in np.asarray(agg.prob_hist[slot]).tolist()],
            "embed": {layer: [round(float(v), EMBED_DECIMALS) for v in embed[layer][slot]]
                      for layer in st.layers},
        }
        if class_id in stats:
            record["graph"] = stats[class_id]
        records.append(record)
    meta = {
        "model": agg.model,
        "dataset": dataset_name(agg.config),
        "num_images": int(agg.num_images),
        "num_classes": int(len(agg.classes)),
        "layers": list(st.layers),
        "channels": {layer: int(st.channels[layer]) for layer in st.layers},
        "config": agg.config,
        "graph_config": {k: v for k, v in config.to_dict().items()},
        "prob_bins": PROB_BINS,
        "format": FORMAT,
        "similarity_scale": SIMILARITY_SCALE,
    }
    return {"meta": meta, "classes": records}


def class_details(agg: Aggregates, st: Structure) -> Iterator[tuple[int, dict]]:
    """``(class_id, details document)`` for every class of the run (see the module docstring)."""
    keep = {layer: st.vertex[layer] >= 0 for layer in st.layers}
    scaled = {layer: np.rint(SIMILARITY_SCALE * class_similarity(np.asarray(agg.A[layer]) * keep[layer]))
              .astype(np.int64) for layer in st.layers}
    for slot, class_id in enumerate(agg.classes.tolist()):
        yield class_id, {
            "target_class": class_id,
            "topChannels": {layer: top_channels(agg.A[layer][slot], keep[layer]) for layer in st.layers},
            "similarity": {layer: scaled[layer][slot].tolist() for layer in st.layers},
        }
