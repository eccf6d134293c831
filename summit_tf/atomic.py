"""Atomic file writes: the one way every writer of the project puts a file in place.

Readers (the viewer, a web server, the next pipeline stage, a resumed run) must never see half a file,
and a crash must not leave a truncated output that looks finished. So a file is written under a
temporary name in the target's own folder (a rename is atomic only within one file system), flushed to
disk, given mode 0644 (``mkstemp`` makes 0600, which a web server run as another user cannot read) and
renamed over the target. On any failure the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILE_MODE = 0o644


@contextmanager
def writing(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` for the caller to write; on success it is flushed to disk
    and renamed onto ``target``, on any exception removed. Missing parent folders are created.

    >>> with writing("run/aggregates.h5") as tmp:
    ...     h5py.File(tmp, "w").close()
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically; returns the target's path."""
    with writing(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; returns the target's path."""
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: object, **dump_options: object) -> Path:
    """Write ``obj`` as JSON to ``target`` atomically (``dump_options`` go to :func:`json.dumps`)."""
    return write_text(target, json.dumps(obj, **dump_options))
