"""What the machine is doing while a benchmark runs: every figure is printed beside the load it was
measured under (a ratio taken while other jobs slow one side is not a result), and the sides of a
comparison are timed interleaved, so that a change of load falls on both."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def load() -> str:
    """The one-minute load average, as the benchmarks print it."""
    return f"load {os.getloadavg()[0]:.1f}"


def since(before: str) -> str:
    """``before`` (a :func:`load` taken before a timed part) and the load now, after it: "load 1.0 -> 1.2"."""
    return f"{before} -> {os.getloadavg()[0]:.1f}"


def interleaved(parts: dict[K, Callable[[], T]], repeats: int) -> dict[K, list[T]]:
    """Each part's results of ``repeats`` rounds, each round calling every part once, in order."""
    results: dict[K, list[T]] = {name: [] for name in parts}
    for _ in range(repeats):
        for name, part in parts.items():
            results[name].append(part())
    return results


def rss_mib() -> float:
    """This process's resident set size, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """This process's peak resident set size since it started or since :func:`reset_peak_rss`, MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise OSError("/proc/self/status has no VmHWM")


def reset_peak_rss() -> None:
    """Start :func:`peak_rss_mib` again from the current size (Linux's clear_refs 5): a peak measured after a
    warm-up then leaves out the warm-up's own (tracing, XLA compilation)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
