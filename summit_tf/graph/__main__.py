"""Attribution graphs, class embedding and comparisons for a run, as the viewer's JSON files.

    python -m summit_tf.graph --aggregates=run.h5 --out_dir=DIR [--classes=0,270] [--compare=294,295]

Writes ``DIR/ag/ag-<class>.json`` per class, ``DIR/classes.json`` for all classes of the run (what the
viewer's first screen needs), ``DIR/details/class-<class>.json`` per class (top channels and similarity
rows, loaded by the viewer on demand) and ``DIR/compare/<a>-<b>.json`` per ``--compare`` pair; ag and
details files an earlier run left for other classes are removed. Bad input exits with code 2 and one line
on stderr.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from absl import flags

from summit_tf import spec_grammar, store
from summit_tf.cli import entry_point, require, run_command
from summit_tf.graph import embedding, pagerank
from summit_tf.graph.attribution import GraphConfig
from summit_tf.graph.generate import generate

FLAGS = flags.FlagValues()  # private: importing this module never touches absl's global flags

flags.DEFINE_string("aggregates", None, "aggregates HDF5 file (summit-aggregate output)", flag_values=FLAGS)
flags.DEFINE_string("out_dir", None, "output folder", flag_values=FLAGS)
flags.DEFINE_list("classes", [], "class ids and ranges to build graphs for, e.g. 0,217,480-482 (default: "
                  "all classes of the run)",
                  flag_values=FLAGS)
flags.DEFINE_float("node_mass", 0.075, "per-layer share of PageRank mass the kept nodes hold",
                   flag_values=FLAGS)
flags.DEFINE_float("relax_step", 0.005, "mass added to a layer (and the one below) lacking a kept edge down",
                   flag_values=FLAGS)
flags.DEFINE_bool("directed", False, "directed PageRank (channel -> its inputs), not undirected",
                  flag_values=FLAGS)
flags.DEFINE_float("damping", 0.85, "PageRank damping factor", flag_values=FLAGS)
flags.DEFINE_enum("pagerank_method", "linear", list(pagerank.PAGERANK_METHODS),
                  "linear: exact sparse solve (conjugate gradients; fast); igraph: igraph's ARPACK",
                  flag_values=FLAGS)
flags.DEFINE_integer("attr_k", 3, "attr_channels per node (strongest direct inputs)", flag_values=FLAGS)
flags.DEFINE_multi_string("compare", [], "a,b: write the set algebra of classes a and b (repeatable)",
                          flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the class embedding", flag_values=FLAGS)
flags.DEFINE_integer("workers", 1, "processes building class graphs in parallel (0: one per CPU core)",
                     flag_values=FLAGS)
flags.DEFINE_integer("umap_min_classes", embedding.MIN_UMAP_CLASSES, "fewer classes than this: PCA embedding",
                     flag_values=FLAGS)


def _known(ids: tuple[int, ...], known: set[int], what: str) -> list[int]:
    missing = sorted(set(ids) - known)
    if missing:
        raise ValueError(f"{what}: class {missing[0]} is not in the aggregates "
                         f"(run has {len(known)} classes)")
    return list(ids)


def _pairs(values: list[str], known: set[int]) -> list[tuple[int, int]]:
    pairs = []
    for v in values:
        ids = [int(p) if p.strip().isdigit() else -1 for p in v.split(",")]
        if len(ids) != 2 or min(ids) < 0:
            raise ValueError(f"--compare expects two class ids 'a,b', got {v!r}")
        _known(tuple(ids), known, "--compare")
        pairs.append((ids[0], ids[1]))
    return pairs


def main(argv: Sequence[str]) -> int:
    """Run the CLI on ``argv`` (program name first); returns the exit code."""
    def body() -> None:
        require(FLAGS, "aggregates", "out_dir")
        if FLAGS.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {FLAGS.workers}")
        config = GraphConfig(node_mass=FLAGS.node_mass, relax_step=FLAGS.relax_step,
                             directed=FLAGS.directed, damping=FLAGS.damping, attr_k=FLAGS.attr_k,
                             pagerank_method=FLAGS.pagerank_method)
        try:
            agg = store.load(FLAGS.aggregates)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"cannot read aggregates: {e}") from None
        with agg:
            known = set(agg.classes.tolist())
            wanted = spec_grammar.parse_classes(",".join(FLAGS.classes), "--classes")
            classes = _known(wanted, known, "--classes") if wanted else sorted(known)
            pairs = _pairs(FLAGS.compare, known)
            generate(agg, FLAGS.out_dir, classes, pairs, config, FLAGS.seed, FLAGS.umap_min_classes,
                     FLAGS.workers or os.cpu_count() or 1)

    return run_command(FLAGS, argv, __doc__ or "", body)


run = entry_point(main)  # console script and ``python -m``


if __name__ == "__main__":
    run()
