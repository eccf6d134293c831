"""Stage caching: unchanged stages are skipped, a config change reruns it and everything downstream."""

import pytest

from experiments.stages import Stage, run_stages


def _pipeline(run_dir, calls, a_config):
    def make(name, out):
        def fn():
            calls.append(name)
            (run_dir / out).write_text(name)
        return fn

    return [
        Stage("a", a_config, ["a.txt"], make("a", "a.txt")),
        Stage("b", {"x": 1}, ["b.txt"], make("b", "b.txt"), after=["a"]),
        Stage("c", {"y": 2}, ["c.txt"], make("c", "c.txt")),
    ]


def test_cache_and_invalidation(tmp_path):
    calls = []
    assert set(run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 1})).values()) == {"ran"}
    assert calls == ["a", "b", "c"]
    calls.clear()
    assert set(run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 1})).values()) == {"cached"}
    assert calls == []
    status = run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 2}))
    assert calls == ["a", "b"] and status["c"] == "cached"
    (tmp_path / "c.txt").unlink()
    calls.clear()
    run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 2}))
    assert calls == ["c"]


def test_only_and_unknown(tmp_path):
    calls = []
    status = run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 1}), only=["c"])
    assert calls == ["c"] and status["a"] == "skipped"
    with pytest.raises(ValueError, match="unknown stage"):
        run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 1}), only=["zzz"])


def test_stage_must_produce_outputs(tmp_path):
    with pytest.raises(RuntimeError, match="did not produce"):
        run_stages(tmp_path, [Stage("a", {}, ["never.txt"], lambda: None)])
