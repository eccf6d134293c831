"""The one text grammar for channel selections and class lists, used by every tool and config.

* id lists: ``0,217,480-482`` (ranges inclusive; sorted, duplicates dropped);
* channel selections: ``LAYER:1,2,5-7;LAYER:0`` (a layer may name an inner space such as
  ``mixed4b/3x3_bottleneck``; the channels are what follows its last ``:``); where a tool works on one
  layer, a bare id list means that layer;
* memory sizes: ``8GiB``, ``512MiB``, ``1.5GB``, ``123456`` (bytes).

Errors are ``ValueError`` naming the argument (``what``), never a command-line flag: the CLIs pass their
flag's name as ``what``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

MAX_RANGE = 1_000_000  # a longer range is a typo, not a selection: refused before it is expanded
SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


def parse_ids(text: str, what: str = "ids") -> tuple[int, ...]:
    """``"0,217,480-482"`` -> ``(0, 217, 480, 481, 482)``; non-negative integers and ranges only."""
    ids: set[int] = set()
    for item in filter(None, (p.strip() for p in str(text).split(","))):
        lo, dash, hi = (s.strip() for s in item.partition("-"))
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"{what}: expected non-negative integers or ranges such as 0,217,480-482, "
                             f"got {item!r}")
        if dash and int(hi) < int(lo):
            raise ValueError(f"{what}: range {item!r} runs backwards")
        if dash and int(hi) - int(lo) >= MAX_RANGE:
            raise ValueError(f"{what}: range {item!r} is longer than {MAX_RANGE:,} ids")
        ids.update(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    return tuple(sorted(ids))


def parse_classes(text: str | None, what: str = "classes") -> tuple[int, ...] | None:
    """A class list; empty or None means every class (None)."""
    if text is None or not str(text).strip():
        return None
    ids = parse_ids(text, what)
    if not ids:
        raise ValueError(f"{what}: no class ids in {text!r}")
    return ids


def parse_channels(text: str | None, what: str = "channels",
                   default_layer: str | None = None) -> dict[str, tuple[int, ...]]:
    """``"a:1,3-5;b/x:0;a:2"`` -> ``{"a": (1, 2, 3, 4, 5), "b/x": (0,)}``; empty -> ``{}``.

    With ``default_layer``, a part without a layer (``"0,7,42"``) selects channels of that layer.
    """
    selection: dict[str, set[int]] = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(";"))):
        layer, sep, ids = (s.strip() for s in part.rpartition(":"))
        if not sep:
            if default_layer is None:
                raise ValueError(f"{what}: expected LAYER:1,2,5-7 (layers separated by ';'), got {part!r}")
            layer, ids = default_layer, part
        if not layer or not ids:
            raise ValueError(f"{what}: expected LAYER:1,2,5-7, got {part!r}")
        selection.setdefault(layer, set()).update(parse_ids(ids, f"{what} of {layer}"))
    return {layer: tuple(sorted(ids)) for layer, ids in selection.items()}


def format_channels(selection: Mapping[str, Sequence[int]]) -> str:
    """The canonical text of a selection (sorted layers and channels; empty layers left out), so equal
    selections compare equal as text."""
    return ";".join(f"{layer}:{','.join(map(str, sorted(set(ids))))}"
                    for layer, ids in sorted(selection.items()) if len(ids))


def parse_size(text: str, what: str = "size") -> int:
    """``"8GiB"`` -> 8589934592; units B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (of 1024), any
    case; a bare number is bytes. Must come to at least one byte."""
    match = _SIZE.fullmatch(str(text))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in SIZE_UNITS:
        raise ValueError(f"{what}: expected a size such as 8GiB, 512MiB or 1.5GB, got {text!r}")
    size = int(float(match.group(1)) * SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"{what}: must be at least one byte, got {text!r}")
    return size
