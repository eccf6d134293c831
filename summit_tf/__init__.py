"""summit-tf: per-class activation and attribution summaries of CNNs (SUMMIT, VAST 2019) in TensorFlow 2.

Data flows one way, one folder a stage: ``data`` -> ``models`` -> ``aggregation`` -> ``store`` (the HDF5
contract) -> ``graph`` -> ``examples`` / ``viewer``; ``feature_vis`` (a package beside this one) stands on
``models`` alone. The public names below are imported on first use, so that ``import summit_tf`` and the
command lines' ``--help`` stay free of TensorFlow.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if sys.argv[:1] == ["-m"]:  # ``python -m summit_tf.<tool>``: runpy imports this package first, argv[0] "-m"
    from summit_tf.cli import quiet_tensorflow

    quiet_tensorflow()

__version__ = "0.1.0"

_PUBLIC = {
    "load_model": ("summit_tf.models", "load"),
    "SummitModel": ("summit_tf.models", "SummitModel"),
    "load_data": ("summit_tf.data", "load"),
    "AggregateConfig": ("summit_tf.aggregation", "AggregateConfig"),
    "run_aggregation": ("summit_tf.aggregation", "aggregate"),
    "merge_aggregates": ("summit_tf.aggregation", "merge"),
    "Aggregates": ("summit_tf.store", "Aggregates"),
    "load_aggregates": ("summit_tf.store", "load"),
    "GraphConfig": ("summit_tf.graph", "GraphConfig"),
    "AttributionGraph": ("summit_tf.graph", "AttributionGraph"),
    "attribution_graph": ("summit_tf.graph", "attribution_graph"),
    "compare": ("summit_tf.graph", "compare"),
    "draw_graph": ("summit_tf.graph.drawing", "draw_graph"),
    "fetch_asset": ("summit_tf.assets.download", "resolve"),
    "ExamplesConfig": ("summit_tf.examples", "ExamplesConfig"),
    "dataset_examples": ("summit_tf.examples", "run"),
}

# Names of command modules (aggregate, merge, serve, ...) are not reused here: importing a submodule
# rebinds its name on the package.
__all__ = ["AggregateConfig", "Aggregates", "AttributionGraph", "ExamplesConfig", "GraphConfig",
           "SummitModel", "attribution_graph", "compare", "dataset_examples", "draw_graph", "fetch_asset",
           "load_aggregates", "load_data", "load_model", "merge_aggregates", "run_aggregation"]

if TYPE_CHECKING:
    from summit_tf.aggregation import AggregateConfig
    from summit_tf.aggregation import aggregate as run_aggregation
    from summit_tf.aggregation import merge as merge_aggregates
    from summit_tf.assets.download import resolve as fetch_asset
    from summit_tf.data import load as load_data
    from summit_tf.examples import ExamplesConfig
    from summit_tf.examples import run as dataset_examples
    from summit_tf.graph import AttributionGraph, GraphConfig, attribution_graph, compare
    from summit_tf.graph.drawing import draw_graph
    from summit_tf.models import SummitModel
    from summit_tf.models import load as load_model
    from summit_tf.store import Aggregates
    from summit_tf.store import load as load_aggregates


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'summit_tf' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
