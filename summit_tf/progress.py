"""Progress lines for long jobs: items/s and ETA, throttled, on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
    """Report ``done/total`` with rate and ETA at most every ``every`` seconds.

    ``unit`` names what is counted (``images``, ``channels``); ``total`` may be unknown (None).
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "images", every: float = 2.0,
                 stream: TextIO | None = None, start: int = 0) -> None:
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.done = start
        self._start_count = start
        self._t0 = time.monotonic()
        self._last = -float("inf")

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self._t0
        return (self.done - self._start_count) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        text = f"{self.label}: {self.done}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100.0 * self.done / self.total:.1f}%)"
        else:
            text += f" {self.unit}"
        text += f", {rate:.1f} {self.unit}/s"
        if self.total and rate > 0:
            text += f", ETA {_clock((self.total - self.done) / rate)}"
        return text

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def finish(self) -> None:
        elapsed = time.monotonic() - self._t0
        print(f"{self.line()}; done in {_clock(elapsed)}", file=self.stream, flush=True)
