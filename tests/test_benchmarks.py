"""The benchmarks' own rules, checked on toy sizes: the sides of a ratio timed interleaved, the load printed
beside the figures, every device wait inside the timed window, their command lines as every tool's (private
flags, bad input exit 2), and nothing left behind."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from cli_errors import run_main
from toy import toy_model

from benchmarks import aggregate as agg_bench
from benchmarks import device, input_pipeline, machine, scaling
from benchmarks import feature_vis as fv_bench
from summit_tf.aggregation.config import AggregateConfig


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


def test_engine_timed_right_around_the_original():
    calls = []

    def side(name, seconds):
        return lambda: calls.append(name) or seconds.pop(0)

    engine = side("engine", [1.0, 3.0])
    assert agg_bench.around(engine, side("original", [50.0])) == (2.0, 50.0)
    assert calls == ["engine", "original", "engine"]


def test_projection_compares_with_the_models_layer_count():
    pipeline = {"images_per_s": 1000.0}

    def row(layers, model_layers):
        return {"model": device.INCEPTION, "aggregate_images_per_s": 100.0, "batch": 64, "xla": False,
                "layers": layers, "model_layers": model_layers}

    assert device.projection([row(10, 10)], pipeline)["all_layers"] is True
    assert device.projection([row(9, 10)], pipeline)["all_layers"] is False


@pytest.fixture(scope="module")
def toy():
    return toy_model(size=17, seed=2)


def test_feature_vis_steps_wait_for_the_device_and_interleave(toy, monkeypatch):
    waited = []
    finish = fv_bench.finish

    def spy(optimization):
        waited.append(optimization.batch)
        finish(optimization)

    monkeypatch.setattr(fv_bench, "finish", spy)
    steps = fv_bench.time_steps(toy, "conv2", (1, 3), 17, steps=2, repeats=2)
    assert set(steps) == {1, 3} and all(per_step > 0 and first > 0 for per_step, first in steps.values())
    # before each stamp: the first step, the end of the warm-up, the last step; the renders in turn
    assert waited == [1, 1, 1, 3, 3, 3, 1, 1, 1, 3, 3, 3]


def test_feature_vis_batches_interleaved(toy, monkeypatch):
    order = []
    render_vis, render = fv_bench.fv.render_vis, fv_bench.fv.ChannelRenderer.render
    monkeypatch.setattr(fv_bench.fv, "render_vis",
                        lambda *a, **k: order.append("fresh") or render_vis(*a, **k))
    monkeypatch.setattr(fv_bench.fv.ChannelRenderer, "render",
                        lambda self, *a, **k: order.append("reused") or render(self, *a, **k))
    times = fv_bench.time_batches(toy, "conv2", 2, 17, steps=2, count=2)
    assert order == ["fresh", "reused", "fresh", "reused"]
    assert [len(v) for v in times.values()] == [2, 2]


def test_feature_vis_prints_the_load(toy, monkeypatch):
    monkeypatch.setattr(fv_bench, "load", lambda spec, layers: toy)
    done = run_main("benchmarks.feature_vis", "--layer=conv2", "--batch=2", "--size=17", "--timed_steps=1",
                    "--batches=1", "--batch_steps=2", "--repeats=1")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert " -> " in out["load"] and " -> " in out["batches_of_2x2_steps"]["load"]
    assert len(re.findall(r"load [\d.]+ -> [\d.]+", done.stderr)) == 2


def test_scaling_sides_interleaved(toy, monkeypatch):
    seen = []
    interleaved = machine.interleaved
    monkeypatch.setattr(scaling.machine, "interleaved",
                        lambda parts, repeats: seen.append(list(parts)) or interleaved(parts, repeats))
    cfg = AggregateConfig(model="toy", data="random", out="-")
    row = scaling.scaling(toy, "toy", cfg, scaling.devices("CPU")[:1], 2, 1, 2)
    assert seen == [["one", "many"]]
    assert row["one_device_images_per_s"] > 0 and row["mirrored_images_per_s"] > 0


def test_input_pipeline_settings_interleaved(shared, monkeypatch):
    order = []
    pipeline_pass = input_pipeline.pipeline_pass

    def spy(folder, image_size, threads, ratio):
        one = pipeline_pass(folder, image_size, threads, ratio)
        return lambda: order.append((threads, ratio)) or one()

    monkeypatch.setattr(input_pipeline, "pipeline_pass", spy)
    rates = input_pipeline.report(4, 40, 30, 32, threads=(1, None), ratios=(1,), repeats=2)
    assert order == [(1, 1), (None, 1)] * 2
    assert set(rates) == {"threads=1 ratio=1", "threads=all ratio=1"}
