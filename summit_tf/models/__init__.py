"""Model adapters: ``load(spec)`` turns a spec string into a :class:`SummitModel`.

Specs: ``tflite:PATH[+PATH...]``, ``mobilenet_v1``, ``mobilenet_v2``, ``keras:PATH``, ``keras_app:NAME``,
``inception_v1[:PATH]``.
"""

from summit_tf.models.base import Link, SummitModel
from summit_tf.models.registry import load

__all__ = ["Link", "SummitModel", "load"]
