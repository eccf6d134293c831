"""Sprite sheets: all channel visualizations of a layer in one image, plus a JSON index of the grid.

A browser loads one sheet per layer instead of hundreds of small files; the index says where each
channel's tile is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from feature_vis import outputs

BACKGROUND = 255


def sprite_sheet(tiles: np.ndarray, columns: int | None = None) -> tuple[np.ndarray, int]:
    """Tile ``[N, S, S, 3]`` uint8 images row-major into one sheet; returns (sheet, columns).

    ``columns`` defaults to ``ceil(sqrt(N))`` (a near-square sheet); empty cells are white.
    """
    count, size = tiles.shape[0], tiles.shape[1]
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    sheet = np.full((rows, columns, size, size, 3), BACKGROUND, np.uint8)
    sheet.reshape(rows * columns, size, size, 3)[:count] = tiles
    return sheet.transpose(0, 2, 1, 3, 4).reshape(rows * size, columns * size, 3), columns


def sprite_index(layer: str, channels: Sequence[int], size: int, columns: int, image_name: str) -> dict:
    """Grid position (row, col and pixel x, y of the top-left corner) of every channel's tile."""
    positions = {}
    for i, ch in enumerate(channels):
        row, col = divmod(i, columns)
        positions[str(ch)] = {"row": row, "col": col, "x": col * size, "y": row * size}
    return {
        "layer": layer,
        "image": image_name,
        "tile_size": size,
        "columns": columns,
        "rows": max(1, math.ceil(len(channels) / columns)),
        "channels": [int(c) for c in channels],
        "positions": positions,
    }


def write_layer_sprite(out_dir: str | Path, layer: str, num_channels: int) -> Path | None:
    """Sheet of every channel image of ``layer`` found under ``out_dir`` (in channel order), with index.

    Returns the sheet's path, or None when the layer has no channel image yet.
    """
    found = [(ch, outputs.channel_path(out_dir, layer, ch)) for ch in range(num_channels)]
    found = [(ch, path) for ch, path in found if path.exists()]
    if not found:
        return None
    tiles = []
    for _, path in found:
        with Image.open(path) as image:
            tiles.append(np.asarray(image.convert("RGB")))
    size = max(t.shape[0] for t in tiles)
    tiles = [t if t.shape[:2] == (size, size) else np.asarray(Image.fromarray(t).resize((size, size)))
             for t in tiles]
    sheet, columns = sprite_sheet(np.stack(tiles))
    image_path, index_path = outputs.sprite_paths(out_dir, layer)
    outputs.save_jpeg(image_path, sheet)
    channels = [ch for ch, _ in found]
    outputs.write_json(index_path, sprite_index(layer, channels, size, columns, image_path.name))
    return image_path
