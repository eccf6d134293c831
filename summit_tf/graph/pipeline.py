"""A whole run's graph outputs: one ag file per class, classes.json, comparisons (no flags, for scripts)."""

from __future__ import annotations

import logging

from summit_tf import store
from summit_tf.graph import algebra, build, embedding, export
from summit_tf.graph.attribution import GraphConfig, attribution_graph
from summit_tf.progress import Progress

log = logging.getLogger(__name__)


def generate(agg: store.Aggregates, out_dir: str, classes: list[int], pairs: list[tuple[int, int]],
             config: GraphConfig, seed: int, umap_min_classes: int) -> None:
    """Write every output file for ``classes`` (graphs) and ``pairs`` (comparisons)."""
    st = build.structure(agg)
    needed = {c for pair in pairs for c in pair}
    kept_graphs, stats = {}, {}
    progress = Progress("attribution graphs", total=len(classes), unit="classes")
    for class_id in classes:
        ag = attribution_graph(agg, class_id, config, st)
        export.write_ag(out_dir, ag)
        stats[class_id] = export.graph_stats(ag)
        if class_id in needed:
            kept_graphs[class_id] = ag
        progress.update()
    progress.finish()
    for class_id in sorted(needed - set(kept_graphs)):
        kept_graphs[class_id] = attribution_graph(agg, class_id, config, st)
    for a, b in pairs:
        doc = algebra.compare(kept_graphs[a], kept_graphs[b])
        path = export.write_json(export.compare_path(out_dir, a, b), doc)
        log.info("wrote %s", path)
    activation = {layer: agg.A[layer] * (st.vertex[layer] >= 0) for layer in st.layers}
    embed = embedding.embed_classes(activation, st.layers, seed=seed, min_umap_classes=umap_min_classes)
    path = export.write_json(f"{out_dir}/classes.json", export.classes_json(agg, st, embed, config, stats))
    log.info("wrote %s", path)
