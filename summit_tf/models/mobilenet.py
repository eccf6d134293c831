"""``mobilenet_v1`` and ``mobilenet_v2``: the shared quantized MobileNets, through the TFLite adapter.

MobileNetV1 (TF-slim names): SUMMIT layers ``Conv2d_0`` and ``Conv2d_1_pointwise`` ... ``Conv2d_13_pointwise``
(default: the 13 pointwise outputs). The link into ``Conv2d_k_pointwise`` from ``Conv2d_{k-1}_pointwise``
is separable: depthwise ``k`` maps each channel to itself (one-to-one, with its bias and ReLU6), so the
link reads the depthwise stage's actual output ``Conv2d_k_depthwise`` through the pointwise 1x1 kernel.

MobileNetV2 (inverted residual blocks). A block computes expand (1x1, ReLU6) -> depthwise (ReLU6) ->
project (1x1, *linear*) and adds the block's input when shapes allow. The projection outputs and the
residual sums are linear, so between two ReLU6 outputs the only non-linear one-to-one stage is the
depthwise. The SUMMIT layers are therefore the post-ReLU6 outputs of every dense convolution: the stem
``Conv``, the expansions ``expanded_conv_1_expand`` ... ``expanded_conv_16_expand`` and the final
``Conv_1`` (18 layers, all chosen by default). The link into expansion k+1 reads the depthwise output
``expanded_conv_k_depthwise`` D_k through the composed 1x1 kernel ``project_k @ expand_{k+1}``: the
exact linear piece from D_k to the expansion's pre-activation (biases aside). The residual skip adds the
*previous* blocks' projections, i.e. paths from older layers: it is not part of any link between
consecutive layers (SUMMIT's graph has no skip edges), so influences count D_k's contribution only.
Choosing the projections instead would make every link a chain with a ReLU6 inside, not one linear piece.

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
