"""What a run directory holds, so the viewer never asks for a file that is not there.

A run is made in stages (graphs, dataset examples, feature visualizations) and any of them may be missing
or partial. Rather than each stage keeping a list up to date, the manifest is read off the directory itself
(one ``os.scandir`` per folder; ~75,000 image names of a 1,000-class InceptionV1 run in well under a
second): the server answers ``/run/manifest.json`` with it, re-scanning when a folder changes, and
``export_site`` writes it into the site. So runs made before the manifest existed are read the same way::

    {"version": 1,
     "graphs": [class ids with ag/ag-<class>.json],
     "details": [class ids with details/class-<class>.json],
     "images": {file layer: [[channel, has channel image (0/1), diversity images, dataset examples], ...]},
     "faithfulness": whether faithfulness.json (``experiments.faithfulness``: each graph ablated) is there}

Diversity images and dataset examples are counted from index 0 up to the first gap, as the viewer names
them by index. ``file layer`` is the layer as it appears in file names (``/`` written as ``_``).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

VERSION = 1
NAME = "manifest.json"
FEATURE_VIS = "feature-vis"
# experiments.faithfulness.SUMMARY_FILE (the viewer does not import experiments)
FAITHFULNESS = "faithfulness.json"
_GRAPH = re.compile(r"ag-(\d+)\.json")
_DETAILS = re.compile(r"class-(\d+)\.json")
_CHANNEL = re.compile(r"(.+)-(\d+)-channel\.jpg")
_DIVERSITY = re.compile(r"(.+)-(\d+)-diversity-(\d+)\.jpg")
_DATASET = re.compile(r"(.+)-(\d+)-dataset-p-(\d+)\.jpg")
_DIVERSITY_DIR = re.compile(r"diversity-(\d+)")


def _names(folder: Path) -> list[str]:
    """Names of the regular files in ``folder`` (none if it is missing); dot files are never served."""
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if not e.name.startswith(".") and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _ids(folder: Path, pattern: re.Pattern) -> list[int]:
    return sorted(int(m[1]) for name in _names(folder) if (m := pattern.fullmatch(name)))


def _runs(indices: set[int]) -> int:
    """How many of 0, 1, 2, ... are in ``indices`` before the first gap."""
    n = 0
    while n in indices:
        n += 1
    return n


def _diversity_folders(fv: Path) -> list[Path]:
    try:
        with os.scandir(fv) as entries:
            return sorted(Path(e.path) for e in entries if _DIVERSITY_DIR.fullmatch(e.name) and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def watched_folders(run_dir: Path) -> list[Path]:
    """The folders whose listings make the manifest (their modification times tell when to re-scan)."""
    fv = run_dir / FEATURE_VIS
    return [run_dir, run_dir / "ag", run_dir / "details", fv, fv / "channel", fv / "dataset-p",
            *_diversity_folders(fv)]


def scan(run_dir: str | os.PathLike) -> dict:
    """The manifest of ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    fv = run_dir / FEATURE_VIS
    channel: set[tuple[str, int]] = set()
    diversity: dict[tuple[str, int], set[int]] = defaultdict(set)
    dataset: dict[tuple[str, int], set[int]] = defaultdict(set)
    for name in _names(fv / "channel"):
        if m := _CHANNEL.fullmatch(name):
            channel.add((m[1], int(m[2])))
    for folder in _diversity_folders(fv):
        index = int(_DIVERSITY_DIR.fullmatch(folder.name)[1])
        for name in _names(folder):
            if (m := _DIVERSITY.fullmatch(name)) and int(m[3]) == index:
                diversity[m[1], int(m[2])].add(index)
    for name in _names(fv / "dataset-p"):
        if m := _DATASET.fullmatch(name):
            dataset[m[1], int(m[2])].add(int(m[3]))
    images: dict[str, list[list[int]]] = defaultdict(list)
    for layer, ch in sorted(channel | set(diversity) | set(dataset)):
        images[layer].append([ch, int((layer, ch) in channel), _runs(diversity.get((layer, ch), set())),
                              _runs(dataset.get((layer, ch), set()))])
    return {"version": VERSION, "graphs": _ids(run_dir / "ag", _GRAPH),
            "details": _ids(run_dir / "details", _DETAILS), "images": dict(images),
            "faithfulness": (run_dir / FAITHFULNESS).is_file()}


class ManifestCache:
    """The manifest of one run, scanned again only when one of its folders has changed."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._key: tuple | None = None
        self._doc: dict | None = None

    def _stamp(self) -> tuple:
        stamps = []
        for folder in watched_folders(self.run_dir):
            try:
                stamps.append((str(folder), folder.stat().st_mtime_ns))
            except OSError:
                stamps.append((str(folder), None))
        return tuple(stamps)

    def get(self) -> dict:
        key = self._stamp()
        if key != self._key or self._doc is None:
            self._doc, self._key = scan(self.run_dir), key
        return self._doc
