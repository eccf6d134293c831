"""A tiny TFDS dataset built locally (TFDS cannot download here): random images, synset-named classes."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

SYNSETS = ["n01440764", "n02102040", "n03888257"]  # ImageNet classes 0, 217, 701
SPLIT_SIZES = {"train": 7, "test": 5}


def split_images(split: str) -> list[tuple[np.ndarray, int]]:
    """The (image, class-name index) pairs of a split, by example key."""
    rng = np.random.default_rng(SPLIT_SIZES[split])
    return [(rng.integers(0, 256, (13 + i, 17, 3), dtype=np.uint8), i % len(SYNSETS))
            for i in range(SPLIT_SIZES[split])]


class TinySummitImages(tfds.core.GeneratorBasedBuilder):
    """Registered as ``tiny_summit_images``."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(names=SYNSETS),
            "key": np.int64,
        }))

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split):
        for key, (image, label) in enumerate(split_images(split)):
            yield key, {"image": image, "label": label, "key": key}


def prepare(data_dir: str) -> None:
    TinySummitImages(data_dir=data_dir).download_and_prepare()
