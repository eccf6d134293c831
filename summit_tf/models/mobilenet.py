"""``mobilenet_v1`` and ``mobilenet_v2``: the shared quantized MobileNets, through the TFLite adapter.

MobileNetV1 (TF-slim names): SUMMIT layers ``Conv2d_0`` and ``Conv2d_1_pointwise`` ... ``Conv2d_13_pointwise``
(default: the 13 pointwise outputs). The link into ``Conv2d_k_pointwise`` from ``Conv2d_{k-1}_pointwise``
is separable: depthwise ``k`` maps each channel to itself (one-to-one, with its bias and ReLU6), so the
link reads the depthwise stage's actual output ``Conv2d_k_depthwise`` through the pointwise 1x1 kernel.

MobileNetV2 (inverted residual blocks). A block computes expand (1x1, ReLU6) -> depthwise (ReLU6) ->
project (1x1, *linear*) and adds the block's input when shapes allow. The SUMMIT layers (28, all chosen
by default) are the post-ReLU6 outputs of every dense convolution (the stem ``Conv``, the expansions
``expanded_conv_1_expand`` ... ``expanded_conv_16_expand``, the final ``Conv_1``) and the 10 residual sums
``expanded_conv_k_add`` (:mod:`graph_links`: sums are layers). Links read the depthwise output
``expanded_conv_k_depthwise`` D_k through the projection (composed with the next expansion where no sum
lies between: ``project_k @ expand_{k+1}``), or a sum through the next expansion (1x1). A sum also has a
*skip link* from the block input: identity from the previous sum, or separable through the previous
block's projection where that block has no sum of its own.

Files come from :func:`summit_tf.assets.download.resolve` (the shared copy if present, else a cached
download).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from summit_tf.assets import download
from summit_tf.models import tflite
from summit_tf.models.base import SummitModel

ASSETS = {
    "mobilenet_v1": ("mobilenet_v1_extractor", "mobilenet_v1_head"),
    "mobilenet_v2": ("mobilenet_v2",),
}
V1_DEFAULT_LAYERS = tuple(f"Conv2d_{k}_pointwise" for k in range(1, 14))


def paths(name: str, assets_dir: str | os.PathLike | None = None,
          cache_dir: str | os.PathLike | None = None) -> list[str]:
    """The TFLite file(s) of shortcut ``name``, chained in order (see :func:`download.resolve`)."""
    if name not in ASSETS:
        raise ValueError(f"unknown MobileNet {name!r}; expected one of: {', '.join(ASSETS)}")
    return [str(download.resolve(asset, assets_dir, cache_dir)) for asset in ASSETS[name]]


def load(name: str, layers: Sequence[str] | None = None, *, assets_dir: str | os.PathLike | None = None,
         cache_dir: str | os.PathLike | None = None) -> SummitModel:
    """``mobilenet_v1`` / ``mobilenet_v2`` with TF-slim layer names (see the module docstring)."""
    program = tflite.build_program(paths(name, assets_dir, cache_dir))
    defaults = V1_DEFAULT_LAYERS if name == "mobilenet_v1" else program.candidates
    description = {
        "mobilenet_v1": "MobileNetV1 1.0/224 (quantization-aware uint8 TFLite, dequantized to float)",
        "mobilenet_v2": "MobileNetV2 1.0/224 (quantization-aware uint8 TFLite, dequantized to float)",
    }[name]
    return tflite.summit_model(program, name, layers, defaults, description=description)
