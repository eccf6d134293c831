"""What the machine is doing while a benchmark runs: every figure is printed beside the load it was
measured under (a ratio taken while other jobs slow one side is not a result)."""

from __future__ import annotations

import os


def load() -> str:
    """The one-minute load average, as the benchmarks print it."""
    return f"load {os.getloadavg()[0]:.1f}"


def rss_mib() -> float:
    """This process's resident set size, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
