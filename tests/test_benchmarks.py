"""The benchmarks' own rules, checked on toy sizes: the sides of a ratio timed interleaved, the load printed
beside the figures, every device wait inside the timed window, their command lines as every tool's (private
flags, bad input exit 2), and nothing left behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_errors import assert_one_error_line, run_main
from toy import toy_model

from benchmarks import aggregate as agg_bench
from benchmarks import device, influence_kernels, input_pipeline, machine, scaling, viewer
from benchmarks import feature_vis as fv_bench
from summit_tf.aggregation.config import AggregateConfig


def test_interleaved_calls_each_part_once_per_round():
    calls = []
    parts = {name: (lambda name=name: calls.append(name) or len(calls)) for name in ("a", "b")}
    assert machine.interleaved(parts, 3) == {"a": [1, 3, 5], "b": [2, 4, 6]}
    assert calls == ["a", "b"] * 3


def test_since_gives_the_load_before_and_now():
    assert machine.since("load 12.5").startswith("load 12.5 -> ")


PEAK_SCRIPT = """
import numpy as np
from benchmarks import machine
machine.reset_peak_rss()
base = machine.rss_mib()
block = np.ones(128 * 2**20 // 8)  # 128 MiB, touched
grown = machine.peak_rss_mib() - base
del block
machine.reset_peak_rss()
print(grown, machine.peak_rss_mib() - base)
"""


def test_peak_rss_starts_again_after_a_reset():
    """In a process of its own: the suite's process holds gigabytes and threads that move its size."""
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    grown, after_reset = map(float, done.stdout.split())
    assert grown >= 120 and after_reset < 30


@pytest.mark.parametrize("module", ["graph", "store", "influence_kernels", "viewer", "architectures"])
def test_command_line_as_every_tool(module):
    name = f"benchmarks.{module}"
    bad = run_main(name, "--no_such_flag")
    assert bad.returncode == 2
    assert_one_error_line(bad.stderr, "no_such_flag")
    shown = run_main(name, "--help")
    assert shown.returncode == 0 and f"python -m {name}" in shown.stdout


@pytest.mark.parametrize("module,flag,contains", [
    ("architectures", "--models=ResNet50,NoSuchNet", "NoSuchNet"),
    ("influence_kernels", "--only=mixed4b/5x5,nothing", "--only"),
])
def test_bad_input_exits_2(module, flag, contains):
    bad = run_main(f"benchmarks.{module}", flag)
    assert bad.returncode == 2
    assert_one_error_line(bad.stderr, contains)


def test_influence_kernels_table_without_the_conv(monkeypatch):
    """A failed conv subprocess leaves the other rows without a ratio; memory is measured in processes that
    give freed memory back; the load frames the table."""
    def fake_run(cmd, env=None, **kwargs):
        method = cmd[3].rpartition(",")[2]
        if method == "conv":
            return subprocess.CompletedProcess(cmd, -9, "", "")  # killed: nothing on stderr
        if "--memory=True" in cmd:
            assert env["TF_ENABLE_ONEDNN_OPTS"] == "0" and env["MALLOC_MMAP_THRESHOLD_"]
            figures = {"extra_mb": 3.0, "first_call_extra_mb": 40.0}
        else:
            assert env is None
            figures = {"ms": 2.0}
        return subprocess.CompletedProcess(cmd, 0, json.dumps(figures), "")

    monkeypatch.setattr(influence_kernels.subprocess, "run", fake_run)
    done = run_main("benchmarks.influence_kernels", "--reps=1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("load ") and " -> " in lines[-1]
    assert "conv               failed: exit code -9" in done.stdout
    assert done.stdout.count("(no conv)  peak extra      3 MB (first call   40 MB)") == \
        3 * (len(influence_kernels.METHODS) - 1)


def test_influence_kernels_memory_row_runs():
    """Smoke: the memory row's figures exist (their values are the benchmark's to report)."""
    result = influence_kernels._memory_one("mixed4b/5x5", "conv")
    assert set(result) == {"extra_mb", "first_call_extra_mb"}


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


def test_viewer_repeats_load_the_page_afresh():
    """The page rewrites its fragment: going to the URL again would not reload it."""
    class Loaded(Exception):
        pass

    class Page:
        def __init__(self):
            self.visits = []

        def goto(self, url, **kwargs):
            self.visits.append(url)

        def wait_for_function(self, *args, **kwargs):
            raise Loaded

    page = Page()
    with pytest.raises(Loaded):
        viewer.interactions(page, "http://127.0.0.1:1/#class=0", ["a"])
    assert page.visits == ["about:blank", "http://127.0.0.1:1/#class=0"]


def test_viewer_sides_interleaved(monkeypatch):
    order = []
    monkeypatch.setattr(viewer, "first_load", lambda page, url: order.append(("load", url)) or {
        "first_render_ms": 1.0, "transferred_mb": 1.0, "classes_json": "x"})
    monkeypatch.setattr(viewer, "interactions", lambda page, url, layers: order.append(("use", url)) or {
        "switch_ms": 2.0})
    sides = {name: viewer.Side(None, name, [], baseline=True) for name in ("a", "b")}
    results = viewer.measure(sides, repeats=2, throttle=0)
    assert order == [("load", "a"), ("load", "b")] * 2 + [("use", "a"), ("use", "b")] * 2
    assert results["b"] == {"first_render_ms": 1.0, "transferred_mb": 1.0, "classes_json": "x",
                            "switch_ms": 2.0}


def _tiny_run(run):
    (run / "details").mkdir(parents=True)
    (run / "ag").mkdir()
    (run / "classes.json").write_text(json.dumps({"meta": {"format": 2, "layers": ["l0"]},
                                                  "classes": [{"target_class": 0}]}))
    (run / "details" / "class-0.json").write_text(json.dumps({"topChannels": {"l0": [1]}}))
    (run / "ag" / "ag-0.json").write_text("new")


def test_legacy_copy_links_the_graphs_again(tmp_path):
    run, out = tmp_path / "run", tmp_path / "format1"
    _tiny_run(run)
    (out / "ag").mkdir(parents=True)
    (out / "ag" / "ag-1.json").write_text("stale")
    viewer.legacy_copy(run, out)
    assert sorted(p.name for p in (out / "ag").iterdir()) == ["ag-0.json"]
    assert (out / "ag" / "ag-0.json").read_text() == "new"
    doc = json.loads((out / "classes.json").read_text())
    assert doc["classes"] == [{"target_class": 0, "topChannels": {"l0": [1]}}] and "format" not in doc["meta"]


def test_viewer_leaves_nothing_beside_the_run(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _tiny_run(run)
    measured = {}

    def fake_measure(runs, chromium, repeats, throttle):
        for name, (path, static) in runs.items():
            assert (path / "classes.json").is_file() and (static is None or (static / "index.html").is_file())
            measured[name] = path
        return {name: {"first_render_ms": 1.0} for name in runs}

    monkeypatch.setattr(viewer, "measure_in_chromium", fake_measure)
    done = run_main("benchmarks.viewer", f"--run_dir={run}", "--baseline=HEAD")
    assert done.returncode == 0, done.stderr
    assert list(measured) == ["format 2", "format 1", "HEAD, fmt 1"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the format-1 copy and the baseline removed
    assert "the sides measured interleaved, load " in done.stdout and " -> " in done.stdout


def test_unknown_baseline_revision_is_a_user_error(tmp_path):
    with pytest.raises(ValueError, match="--baseline: git archive no-such-rev failed"):
        viewer.baseline_app("no-such-rev", tmp_path)
