"""``python -m benchmarks.device --smoke``: the device benchmark's whole code path on tiny sizes, so the
command never rots; its JSON must hold every row with consistent figures. It runs as its own process: the
mirrored row splits the CPU into two logical devices, which TensorFlow allows only before it starts."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from toy import toy_model

from benchmarks import aggregate as agg_bench
from benchmarks import device, host_scatter
from summit_tf.aggregation import plan as run_plan
from summit_tf.aggregation import step as run_step
from summit_tf.aggregation.config import AggregateConfig

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_writes_every_row(tmp_path):
    out = tmp_path / "results" / "smoke.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.device", "--smoke", f"--out={out}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["device"] in printed
    assert [p.name for p in out.parent.iterdir()] == ["smoke.json"]  # atomic: no temporary left

    rows = result["aggregation"]
    assert {(r["model"], r["batch"], r["xla"]) for r in rows} == {
        ("mobilenet_v1", 2, False), (device.INCEPTION, 2, False)}
    assert [r["links"] for r in rows] == [1, 0]  # smoke: MobileNetV1's first link, A only for InceptionV1
    for r in rows:
        assert r["forward_images_per_s"] > 0 and r["aggregate_images_per_s"] > 0
        assert math.isclose(r["ratio"], r["aggregate_images_per_s"] / r["forward_images_per_s"])

    fv = result["feature_vis"]
    assert math.isclose(fv["speedup"], fv["batched_channels_per_s"] / fv["one_at_a_time_channels_per_s"])
    assert math.isclose(fv["all_inception_channels_minutes"], 5484 / fv["batched_channels_per_s"] / 60)
    pipeline = result["input_pipeline"]
    assert pipeline["images_per_s"] > 0 and pipeline["one_thread_images_per_s"] > 0
    mirrored = result["mirrored"]
    assert mirrored["status"] == "measured" and "no scaling figure" in mirrored["note"]
    (scaled,) = mirrored["rows"]
    assert scaled["model"] == device.INCEPTION and scaled["devices"] == 2 and scaled["per_device_batch"] == 2
    assert scaled["one_device_images_per_s"] > 0 and scaled["mirrored_images_per_s"] > 0
    assert math.isclose(scaled["efficiency"],
                        scaled["mirrored_images_per_s"] / (2 * scaled["one_device_images_per_s"]))
    assert "mirrored scaling: measured" in printed

    host = {r["model"]: r for r in result["host_accumulators"]}
    assert set(host) == {"mobilenet_v1", device.INCEPTION}
    for r in host.values():
        assert r["one_core_indices_per_s"] > 0 and r["all_cores_indices_per_s"] > 0
        assert r["device_images_per_s"] == max(a["aggregate_images_per_s"] for a in rows
                                               if a["model"] == r["model"])
        assert r["passes"] == 1 and r["budget_bytes"] is None  # a CPU: no device memory budget
    # MobileNetV1's first link: 64 outputs x top-5 inputs per image, plus the image count and A's channels
    assert host["mobilenet_v1"]["indices_per_image"] > 1 + 64 * 5

    inception = next(r for r in rows if r["model"] == device.INCEPTION)
    projection = result["projection"]
    compute = 1_281_167 / inception["aggregate_images_per_s"] / 60
    data = 1_281_167 / result["input_pipeline"]["images_per_s"] / 60
    assert math.isclose(projection["minutes"], max(compute, data))
    assert projection["bound"] == ("compute" if compute >= data else "input")
    assert projection["all_layers"] is False and "not a real projection" in printed
    # every row measured under its own load, printed beside it
    loads = [r["load"] for r in [*rows, fv, pipeline, scaled, *host.values()]]
    assert all(re.fullmatch(r"load [\d.]+ -> [\d.]+", load) for load in loads)
    assert all(load in printed for load in loads)


def test_bad_flag_exits_2(capsys):
    assert device.main(["device", "--no_such_flag"]) == 2
    assert "error:" in capsys.readouterr().err


def test_host_scatter_counts_the_steps_indices():
    """Indices per image = every +1 the engine's step adds (image count, A, I) over the same batches."""
    model = toy_model(size=17, seed=3)
    cfg = AggregateConfig(model="toy", data="random", out="-")
    batches = agg_bench.make_batches(model.input_size, 3, 2, seed=1)
    measured = host_scatter.host_scatter(model, cfg, batches, repeats=1)
    plan = run_plan.make_plan(model, cfg, sorted({int(c) for _, y in batches for c in y}))
    acc = run_step.Accumulators(model, plan)
    step = run_step.make_step(model, plan, acc, cfg)
    for images, labels in batches:
        step(images, tf.constant(labels))
    added = sum(int(np.sum(v.numpy())) for name, v in acc.vars.items()
                if name == "count" or name.startswith(("A/", "I/")))
    assert measured["indices_per_image"] == added / 6
    assert measured["counters"] == 1 + 3 + 2 and measured["cores"] >= 1
    # the largest counter: a link's 16 (sep3) outputs x top-5 per image
    assert measured["largest_counter_share"] == 16 * 5 / measured["indices_per_image"]


def test_compare_host_with_passes():
    host = {"indices_per_image": 1000.0, "one_core_indices_per_s": 1e6, "all_cores_indices_per_s": 2e6}
    images = 1_200_000
    # 4,000 images/s need 4e6 indices/s: 4 cores of scatter; the host keeps up with 2,000 images/s
    r = host_scatter.compare(host, 4000.0, 10 * 2**20, 4 * 2**30, images)
    assert math.isclose(r["cores_needed"], 4.0) and math.isclose(r["index_mb_per_s"], 16.0)
    assert r["passes"] == 3  # 1,000 x 10 MiB in 4 GiB
    assert math.isclose(r["host_minutes"], images / 2000 / 60)
    assert math.isclose(r["passes_minutes"], 3 * images / 4000 / 60)
    assert r["cheaper"] == "host accumulators" and math.isclose(r["break_even_passes"], 2.0)
    one_pass = host_scatter.compare(host, 4000.0, 10 * 2**20, None, images)
    assert one_pass["passes"] == 1 and one_pass["cheaper"] == "class-group passes"
    # the engine's plan: whole classes per pass (one 6 MiB class in a 10 MiB budget), not bytes / budget
    assert host_scatter.compare(host, 4000.0, 6 * 2**20, 10 * 2**20, images)["passes"] == 1000
