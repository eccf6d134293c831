"""A whole run's graph outputs: one ag file per class, classes.json and one details file per class,
comparisons (no flags, for scripts).

Classes are independent, so with ``workers > 1`` they are built in that many processes, each opening the
aggregates file itself (HDF5 handles must not cross a fork; "spawn" processes start clean). One process
reads the next class's counts in a thread while it builds the current one.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from summit_tf import atomic, store
from summit_tf.graph import algebra, build, embedding, viewer_json
from summit_tf.graph.attribution import AttributionGraph, GraphConfig, attribution_graph
from summit_tf.progress import Progress

log = logging.getLogger(__name__)


def write_graph(agg: store.Aggregates, st: build.Structure, class_id: int, config: GraphConfig,
                out_dir: str, counts: dict | None = None) -> AttributionGraph:
    """Build one class's graph and write its ag file."""
    ag = attribution_graph(agg, class_id, config, st, counts)
    viewer_json.write_ag(out_dir, ag)
    return ag


_worker: tuple | None = None  # (aggregates, structure, config, out_dir) of a worker process


def _start_worker(path: str, config: GraphConfig, out_dir: str) -> None:
    global _worker
    agg = store.load(path)
    _worker = (agg, build.structure(agg), config, out_dir)


def _worker_graph(class_id: int) -> dict:
    agg, st, config, out_dir = _worker
    return viewer_json.graph_stats(write_graph(agg, st, class_id, config, out_dir))


def generate(agg: store.Aggregates, out_dir: str, classes: list[int], pairs: list[tuple[int, int]],
             config: GraphConfig, seed: int, umap_min_classes: int, workers: int = 1) -> None:
    """Write every output file for ``classes`` (graphs) and ``pairs`` (comparisons); ag and details files
    an earlier run left for other classes are removed, ``classes.json`` is written last.

    ``workers > 1`` builds the graphs in that many processes when the aggregates come from a file.
    """
    st = build.structure(agg)
    needed = {c for pair in pairs for c in pair}
    stats, graphs = {}, {}
    progress = Progress("attribution graphs", total=len(classes), unit="classes")
    workers = min(workers, len(classes))
    if workers > 1 and agg.filename is None:
        log.info("aggregates held in memory: building graphs in one process")
        workers = 1
    if workers > 1:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=spawn, initializer=_start_worker,
                                 initargs=(agg.filename, config, out_dir)) as pool:
            for class_id, stat in zip(classes, pool.map(_worker_graph, classes), strict=True):
                stats[class_id] = stat
                progress.update()
    else:
        with ThreadPoolExecutor(1) as reader:  # reads class k + 1 while class k is built
            ahead = reader.submit(build.class_counts, agg, classes[0], st) if classes else None
            for index, class_id in enumerate(classes):
                counts = ahead.result()
                if index + 1 < len(classes):
                    ahead = reader.submit(build.class_counts, agg, classes[index + 1], st)
                ag = write_graph(agg, st, class_id, config, out_dir, counts)
                stats[class_id] = viewer_json.graph_stats(ag)
                if class_id in needed:
                    graphs[class_id] = ag
                progress.update()
    progress.finish()
    for class_id in sorted(needed - set(graphs)):  # built in a worker, or not among ``classes``
        graphs[class_id] = attribution_graph(agg, class_id, config, st)
    for a, b in pairs:
        comparison = algebra.compare(graphs[a], graphs[b])
        path = atomic.write_json(viewer_json.compare_path(out_dir, a, b), comparison)
        log.info("wrote %s", path)
    activation = {layer: agg.A[layer] * (st.vertex[layer] >= 0) for layer in st.layers}
    embed = embedding.embed_classes(activation, st.layers, seed=seed, min_umap_classes=umap_min_classes)
    for class_id, details in viewer_json.class_details(agg, st):
        atomic.write_json(viewer_json.details_path(out_dir, class_id), details, **viewer_json.COMPACT)
    for path in viewer_json.remove_stale(out_dir, classes, agg.classes.tolist()):
        log.info("removed %s (not written by this run)", path)
    classes = viewer_json.classes_json(agg, st, embed, config, stats)
    path = atomic.write_json(f"{out_dir}/classes.json", classes, **viewer_json.COMPACT)
    log.info("wrote %s", path)
