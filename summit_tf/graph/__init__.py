"""Attribution graphs from aggregates: full graph (build), PageRank, pruning (prune), the viewer's JSON
(viewer_json) and a whole run's outputs (generate).

Python API: :func:`attribution_graph` (one class: igraph Graph + SUMMIT JSON), :class:`GraphConfig`,
:func:`compare` (set algebra of two classes), :func:`class_similarity` and :func:`embed_classes`.
Command line: ``python -m summit_tf.graph`` (also ``summit-graph``).
"""

from summit_tf.graph.algebra import compare
from summit_tf.graph.attribution import AttributionGraph, GraphConfig, attribution_graph
from summit_tf.graph.embedding import class_similarity, embed_classes

__all__ = ["AttributionGraph", "GraphConfig", "attribution_graph", "class_similarity", "compare",
           "embed_classes", "run"]


def run() -> None:
    """Console entry point ``summit-graph`` (absl flags are defined only when the CLI is used)."""
    from summit_tf.graph.__main__ import run as cli

    cli()
