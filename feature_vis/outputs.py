"""Where feature visualizations go (SUMMIT's published file names), how they are written, and which
channels a run's graphs hold.

Layout under ``DIR/feature-vis/``: ``channel/<layer>-<ch>-channel.jpg``,
``diversity-<d>/<layer>-<ch>-diversity-<d>.jpg`` and ``sprites/<layer>-channel.{jpg,json}``. Layer names
containing ``/`` are written with ``_`` so that every image stays one file in its folder.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from summit_tf import atomic

FEATURE_VIS = "feature-vis"
JPEG_QUALITY = 95


def file_layer(layer: str) -> str:
    return layer.replace("/", "_")


def channel_path(out_dir: str | Path, layer: str, channel: int) -> Path:
    return Path(out_dir) / FEATURE_VIS / "channel" / f"{file_layer(layer)}-{channel}-channel.jpg"


def diversity_path(out_dir: str | Path, layer: str, channel: int, index: int) -> Path:
    name = f"{file_layer(layer)}-{channel}-diversity-{index}.jpg"
    return Path(out_dir) / FEATURE_VIS / f"diversity-{index}" / name


def sprite_paths(out_dir: str | Path, layer: str) -> tuple[Path, Path]:
    """The sprite sheet JPEG and its index JSON for one layer."""
    base = Path(out_dir) / FEATURE_VIS / "sprites" / f"{file_layer(layer)}-channel"
    return base.with_suffix(".jpg"), base.with_suffix(".json")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 pixels (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)


def save_jpeg(path: str | Path, image: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Save an ``[H, W, 3]`` image (uint8, or floats in [0, 1]) as JPEG, atomically."""
    pixels = image if image.dtype == np.uint8 else to_uint8(image)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    atomic.write_bytes(path, buffer.getvalue())


def write_json(path: str | Path, payload: object) -> None:
    """Write JSON atomically (indented: sprite indices are read by people too)."""
    atomic.write_json(path, payload, indent=1)


def graph_channels(export_dir: str | Path) -> dict[str, list[int]]:
    """Channels that appear as nodes in ``export_dir/ag/ag-*.json`` (SUMMIT's attribution-graph format)."""
    files = sorted((Path(export_dir) / "ag").glob("ag-*.json"))
    if not files:
        raise FileNotFoundError(f"no attribution graphs ag/ag-*.json under {export_dir}")
    selection: dict[str, set[int]] = {}
    for file in files:
        try:
            graph = json.loads(file.read_text())
            for layer, nodes in graph.items():
                selection.setdefault(layer, set()).update(int(node["channel"]) for node in nodes)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{file}: not a SUMMIT attribution graph ({err})") from err
    return {layer: sorted(chs) for layer, chs in selection.items()}


def existing(paths: Iterable[Path]) -> bool:
    return all(p.exists() for p in paths)
