"""Image sources that are lists of files: ``folder:DIR`` and ``labels:FILE``.

The list (paths and class indices) is small even for ImageNet train (1.28 M short strings), so filters and
sharding run on it in NumPy before any image is read, and the stream length is known exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from summit_tf import imagenet

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".gif")
SPLIT_NAMES = ("train", "val", "validation", "test")


def _images_in(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)]
    return [str(folder / name) for name in sorted(names)]


def list_folder(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``DIR/<synset>/*.JPEG``, or ``DIR/{train,val,...}/<synset>/...`` (splits in that order, all included).

    Order: split, then synset (= class order), then file name. Returns ``(paths, labels)``.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"folder:{root}: not a directory (expected DIR/<synset>/*.JPEG or "
                         f"DIR/train/<synset>/...)")
    table = imagenet.synset_to_index()
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    splits = [p for p in subdirs if p.name in SPLIT_NAMES]
    if splits and len(splits) == len(subdirs):
        class_dirs = [c for split in sorted(splits, key=lambda p: SPLIT_NAMES.index(p.name))
                      for c in sorted(split.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    else:
        class_dirs = subdirs
    unknown = sorted({c.name for c in class_dirs if c.name not in table})
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ValueError(f"folder:{root}: sub-folders must be ImageNet synsets (e.g. n01440764) or "
                         f"{'/'.join(SPLIT_NAMES)} splits holding them; not synsets: {shown}")
    paths: list[str] = []
    labels: list[int] = []
    for class_dir in class_dirs:
        files = _images_in(class_dir)
        paths.extend(files)
        labels.extend([table[class_dir.name]] * len(files))
    if not paths:
        raise ValueError(f"folder:{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in synset sub-folders")
    return np.asarray(paths, dtype=object), np.asarray(labels, dtype=np.int32)


def read_labels_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Lines ``relative/path.JPEG, LABEL`` (LABEL 0..999; paths relative to the file's folder), file order."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"labels:{path}: file not found (expected lines 'relative/path.JPEG, LABEL')")
    paths: list[str] = []
    labels: list[int] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, label = line.rpartition(",")
        if not sep:
            name, _, label = line.rpartition(" ")
        try:
            value = int(label)
        except ValueError:
            value = -1
        if not name.strip() or not 0 <= value < imagenet.NUM_CLASSES:
            raise ValueError(f"labels:{path}:{number}: expected 'relative/path.JPEG, LABEL' with "
                             f"LABEL 0..999, got {line!r}")
        paths.append(str(path.parent / name.strip()))
        labels.append(value)
    if not paths:
        raise ValueError(f"labels:{path}: no 'relative/path.JPEG, LABEL' lines")
    if not os.path.isfile(paths[0]):
        raise ValueError(f"labels:{path}: image {paths[0]} not found "
                         f"(paths are relative to the file's folder)")
    return np.asarray(paths, dtype=object), np.asarray(labels, dtype=np.int32)


def select(labels: np.ndarray, classes: Sequence[int] | None, max_per_class: int | None,
           max_images: int | None) -> np.ndarray:
    """Positions kept by the filters, in stream order: the first ``max_per_class`` of each kept class,
    then the first ``max_images`` of those."""
    keep = np.ones(len(labels), dtype=bool)
    if classes is not None:
        keep &= np.isin(labels, np.asarray(classes))
    if max_per_class is not None:
        kept = np.flatnonzero(keep)
        order = np.argsort(labels[kept], kind="stable")
        sorted_labels = labels[kept][order]
        first = np.searchsorted(sorted_labels, sorted_labels, side="left")
        rank = np.empty(len(kept), dtype=np.int64)
        rank[order] = np.arange(len(kept)) - first
        keep[kept[rank >= max_per_class]] = False
    positions = np.flatnonzero(keep)
    if max_images is not None:
        positions = positions[:max_images]
    return positions
