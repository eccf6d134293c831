"""Streaming image inputs: ``load("tfrecord:GLOB" | "folder:DIR" | "labels:FILE" | "tfds:NAME[/SPLIT]")``."""

from summit_tf.data.source import SPEC_HELP, ImageSource, list_classes, load

__all__ = ["SPEC_HELP", "ImageSource", "list_classes", "load"]
