"""``python -m benchmarks.device --smoke``: the device benchmark's whole code path on tiny sizes, so the
command never rots; its JSON must hold every row with consistent figures."""

from __future__ import annotations

import json
import math

from benchmarks import device


def test_smoke_writes_every_row(tmp_path, capsys):
    out = tmp_path / "results" / "smoke.json"
    assert device.main(["device", "--smoke", f"--out={out}"]) == 0
    printed = capsys.readouterr().out
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
    assert result["mirrored"]["status"].startswith(("n/a", "open"))

    inception = next(r for r in rows if r["model"] == device.INCEPTION)
    projection = result["projection"]
    compute = 1_281_167 / inception["aggregate_images_per_s"] / 60
    data = 1_281_167 / result["input_pipeline"]["images_per_s"] / 60
    assert math.isclose(projection["minutes"], max(compute, data))
    assert projection["bound"] == ("compute" if compute >= data else "input")
    assert projection["all_layers"] is False and "not a real projection" in printed


def test_bad_flag_exits_2(capsys):
    assert device.main(["device", "--no_such_flag"]) == 2
    assert "error:" in capsys.readouterr().err
