"""The ILSVRC2012 class list (sorted-synset order, tench = 0) shipped with the package."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def _table() -> tuple[tuple[str, ...], tuple[str, ...]]:
    text = resources.files("summit_tf.resources").joinpath("imagenet_classes.tsv").read_text()
    synsets, names = [], []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        _, synset, name = line.split("\t")
        synsets.append(synset)
        names.append(name)
    return tuple(synsets), tuple(names)


def synsets() -> tuple[str, ...]:
    """The 1,000 synsets; position = class index."""
    return _table()[0]


def names() -> tuple[str, ...]:
    """Readable names (WordNet lemmas) of the 1,000 classes; position = class index."""
    return _table()[1]


def short_name(index: int) -> str:
    """First lemma of a class, e.g. ``tench`` for class 0."""
    return names()[index].split(",")[0].strip()


@functools.cache
def synset_to_index() -> dict[str, int]:
    return {s: i for i, s in enumerate(synsets())}


NUM_CLASSES = 1000
