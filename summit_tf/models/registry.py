"""Parse a model spec string and dispatch to the adapter that builds it."""

from __future__ import annotations

import os
from collections.abc import Sequence

from summit_tf.models.base import SummitModel

SPEC_HELP = (
    "tflite:PATH[+PATH...] | mobilenet_v1 | mobilenet_v2 | keras:PATH | keras_app:NAME | inception_v1[:PATH]"
)


def load(spec: str, layers: Sequence[str] | None = None, summit_compat: bool = False, *,
         assets_dir: str | os.PathLike | None = None,
         cache_dir: str | os.PathLike | None = None) -> SummitModel:
    """Build the adapter for ``spec``; ``layers`` restricts the SUMMIT layers (network order is kept).

    ``summit_compat`` asks adapters that know the original SUMMIT code's choices (InceptionV1) to
    reproduce them; others ignore it. ``assets_dir``/``cache_dir`` say where the named pretrained models
    (``mobilenet_v1``, ``mobilenet_v2``, ``inception_v1``) are found or downloaded to (default: see
    :func:`summit_tf.assets.download.resolve`).
    """
    kind, _, arg = spec.partition(":")
    if kind == "tflite":
        from summit_tf.models import tflite

        if not arg:
            raise ValueError(f"spec {spec!r}: tflite needs a path, e.g. tflite:model.tflite")
        return tflite.load(arg.split("+"), layers=layers, spec=spec)
    if kind in ("mobilenet_v1", "mobilenet_v2") and not arg:
        from summit_tf.models import mobilenet

        return mobilenet.load(kind, layers=layers, assets_dir=assets_dir, cache_dir=cache_dir)
    if kind == "keras" and arg:
        from summit_tf.models import keras_model

        return keras_model.load_file(arg, layers=layers, spec=spec)
    if kind == "keras_app" and arg:
        from summit_tf.models import keras_model

        return keras_model.load_application(arg, layers=layers, spec=spec)
    if kind == "inception_v1":
        from summit_tf.models import inception_v1

        return inception_v1.load(arg or None, layers=layers, summit_compat=summit_compat,
                                 assets_dir=assets_dir, cache_dir=cache_dir)
    raise ValueError(f"unknown model spec {spec!r}; expected one of: {SPEC_HELP}")
