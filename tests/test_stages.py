"""Stage caching: unchanged stages are skipped, a config change reruns it and everything downstream; a stage
run with other settings first removes what the last one left, an interrupted one resumes with its files."""

import pytest

from experiments.stages import Stage, run_stages


def _pipeline(run_dir, calls, a_config):
    def make(name, out):
        def fn(resume):
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
        run_stages(tmp_path, [Stage("a", {}, ["never.txt"], lambda resume: None)])


def test_a_stage_left_out_passes_on_what_is_on_disk(tmp_path):
    """b run alone after a's settings changed reads a's old output: it must not be recorded as up to date
    with a's new settings (the next full run reruns a and then b)."""
    calls = []
    run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 1}))
    calls.clear()
    status = run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 2}), only=["b"])
    assert status["a"] == "skipped" and status["b"] == "cached" and calls == []
    calls.clear()
    status = run_stages(tmp_path, _pipeline(tmp_path, calls, {"k": 2}))
    assert calls == ["a", "b"] and status["c"] == "cached"


def _writer(run_dir, seen, fail=False):
    """A stage writing one file per item of its config; ``fail``: interrupted after the first."""
    def fn(resume):
        seen.append(resume)
        (run_dir / "out").mkdir(exist_ok=True)
        for k, item in enumerate(config["items"]):
            (run_dir / "out" / f"{item}.txt").write_text(str(config["v"]))
            if fail and k == 0:
                raise KeyboardInterrupt
        (run_dir / "out.done").write_text("")
    config: dict = {}
    return config, fn


def test_other_settings_clear_the_stage_files_and_an_interrupted_run_resumes(tmp_path):
    seen = []
    config, fn = _writer(tmp_path, seen)

    def stages(items, v, own=False, upstream=0):
        config.update(items=items, v=v)
        return [Stage("up", {"u": upstream}, [], lambda resume: None),
                Stage("s", {"v": v}, ["out.done"], fn, after=["up"], clears=["out", "out.done"],
                      files_from_own_config=own)]

    run_stages(tmp_path, stages(["a", "b"], 1))
    run_stages(tmp_path, stages(["b"], 2))  # other settings: a.txt of the old run must go
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.txt"] and seen == [False, False]
    config_fail, failing = _writer(tmp_path, seen, fail=True)
    config_fail.update(items=["c", "d"], v=3)
    with pytest.raises(KeyboardInterrupt):
        run_stages(tmp_path, [Stage("up", {"u": 0}, [], lambda resume: None),
                              Stage("s", {"v": 3}, ["out.done"], failing, after=["up"], clears=["out"])])
    assert (tmp_path / "out" / "c.txt").exists() and not (tmp_path / "out" / "b.txt").exists()
    run_stages(tmp_path, stages(["c", "d"], 3))  # same settings: resumed, the finished file kept
    assert seen[-1] is True and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c.txt", "d.txt"]


def test_files_of_the_stage_own_settings_survive_an_upstream_change(tmp_path):
    seen = []
    config, fn = _writer(tmp_path, seen)
    config.update(items=["a"], v=1)

    def stages(upstream, v=1):
        return [Stage("up", {"u": upstream}, [], lambda resume: None),
                Stage("s", {"v": v}, ["out.done"], fn, after=["up"], clears=["out"],
                      files_from_own_config=True)]

    run_stages(tmp_path, stages(0))
    (tmp_path / "out" / "kept.txt").write_text("")
    assert run_stages(tmp_path, stages(1))["s"] == "ran"
    assert (tmp_path / "out" / "kept.txt").exists() and seen == [False, True]
    run_stages(tmp_path, stages(1, v=2))
    assert not (tmp_path / "out" / "kept.txt").exists() and seen[-1] is False
