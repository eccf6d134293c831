"""Parse a model spec string and dispatch to the adapter that builds it."""

from __future__ import annotations

from collections.abc import Sequence

from summit_tf.models.base import SummitModel

SPEC_HELP = (
    "tflite:PATH[+PATH...] | mobilenet_v1 | mobilenet_v2 | keras:PATH | keras_app:NAME | inception_v1[:PATH]"
)


def load(spec: str, layers: Sequence[str] | None = None, summit_compat: bool = False) -> SummitModel:
    """Build the adapter for ``spec``; ``layers`` restricts the SUMMIT layers (network order is kept).

    ``summit_compat`` asks adapters that know the original SUMMIT code's choices (InceptionV1) to
    reproduce them; others ignore it.
    """
    kind, _, arg = spec.partition(":")
    if kind == "tflite":
        from summit_tf.models import tflite

        if not arg:
            raise ValueError(f"spec {spec!r}: tflite needs a path, e.g. tflite:model.tflite")
        return tflite.load(arg.split("+"), layers=layers, spec=spec)
    if kind in ("mobilenet_v1", "mobilenet_v2") and not arg:
        from summit_tf.models import mobilenet

        return mobilenet.load(kind, layers=layers)
    if kind == "keras" and arg:
        from summit_tf.models import keras_model

        return keras_model.load_file(arg, layers=layers, spec=spec)
    if kind == "keras_app" and arg:
        from summit_tf.models import keras_model

        return keras_model.load_application(arg, layers=layers, spec=spec)
    if kind == "inception_v1":
        from summit_tf.models import inception_v1

        return inception_v1.load(arg or None, layers=layers, summit_compat=summit_compat)
    raise ValueError(f"unknown model spec {spec!r}; expected one of: {SPEC_HELP}")
