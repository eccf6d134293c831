"""The benchmarks' own rules, checked on toy sizes: the sides of a ratio timed interleaved, the load printed
beside the figures, every device wait inside the timed window, their command lines as every tool's (private
flags, bad input exit 2), and nothing left behind."""

from __future__ import annotations

import numpy as np

from benchmarks import machine


def test_interleaved_calls_each_part_once_per_round():
    calls = []
    parts = {name: (lambda name=name: calls.append(name) or len(calls)) for name in ("a", "b")}
    assert machine.interleaved(parts, 3) == {"a": [1, 3, 5], "b": [2, 4, 6]}
    assert calls == ["a", "b"] * 3


def test_since_gives_the_load_before_and_now():
    assert machine.since("load 12.5").startswith("load 12.5 -> ")


def test_peak_rss_starts_again_after_a_reset():
    machine.reset_peak_rss()
    base = machine.rss_mib()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert machine.peak_rss_mib() >= base + 60
    del block
    machine.reset_peak_rss()
    assert machine.peak_rss_mib() < base + 30
