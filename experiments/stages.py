"""Cached pipeline stages: a stage runs again only when its config or an upstream stage changed.

Each stage's fingerprint hashes its own config with the fingerprints of the stages it depends on, and is
recorded in ``RUN_DIR/stages.json`` after the stage finishes; a rerun with the same fingerprint and all
outputs present is skipped. The manifest is rewritten atomically before and after every stage, so an
interrupted pipeline resumes at the first stage that did not finish.

What a stage leaves on disk belongs to the settings it was made with (recorded as ``files`` before the
stage starts). A stage about to run with other settings first removes its ``clears`` (files of classes or
channels the new run may not write again would otherwise stay beside the new ones); with the same settings
(an interrupted attempt) it keeps them and is told to resume. Stages whose files depend only on their own
config (``files_from_own_config``: a channel's feature visualization, its dataset examples) keep them when
only an upstream stage changed, and add what is new.

A stage left out by ``only`` hands its downstream stages the fingerprint of what is on disk (its last
finished run), not of settings it was not run with.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from summit_tf import atomic


@dataclass
class Stage:
    """One step of a run: ``fn(resume)`` must produce every path in ``outputs`` (relative to the run dir);
    ``resume`` is True when an interrupted attempt with the same settings left its files. ``clears``:
    paths or glob patterns (relative) removed before a run with other settings."""

    name: str
    config: dict
    outputs: list[str]
    fn: Callable[[bool], None]
    after: list[str] = field(default_factory=list)
    clears: list[str] = field(default_factory=list)
    files_from_own_config: bool = False


def _fingerprint(config: dict, upstream: Sequence[str]) -> str:
    text = json.dumps({"config": config, "upstream": list(upstream)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _remove(run_dir: Path, patterns: Sequence[str]) -> None:
    for pattern in patterns:
        for path in sorted(run_dir.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def run_stages(run_dir: Path, stages: Sequence[Stage], only: Sequence[str] | None = None) -> dict[str, str]:
    """Run ``stages`` in order; ``only`` restricts which may run (the others must already be cached).

    Returns each stage's status: ``ran``, ``cached`` or ``skipped`` (not selected).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / "stages.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    known = {s.name for s in stages}
    if only:
        unknown = sorted(set(only) - known)
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(s.name for s in stages)}")
    prints: dict[str, str] = {}
    status: dict[str, str] = {}
    for stage in stages:
        fp = _fingerprint(stage.config, [prints[a] for a in stage.after if a in prints])
        record = manifest.get(stage.name, {})
        done = record.get("fingerprint") == fp and all((run_dir / o).exists() for o in stage.outputs)
        if done:
            prints[stage.name] = fp
            status[stage.name] = "cached"
            print(f"[{stage.name}] cached ({fp})", file=sys.stderr)
            continue
        if only and stage.name not in only:
            prints[stage.name] = record.get("fingerprint", fp)
            status[stage.name] = "skipped"
            if "fingerprint" in record:
                print(f"[{stage.name}] not selected and out of date: later stages read its previous outputs",
                      file=sys.stderr)
            elif record:
                print(f"[{stage.name}] not selected and unfinished (interrupted): later stages may miss its "
                      "outputs", file=sys.stderr)
            continue
        prints[stage.name] = fp
        files = _fingerprint(stage.config, []) if stage.files_from_own_config else fp
        resume = record.get("files") == files
        if not resume:
            _remove(run_dir, stage.clears)
        manifest[stage.name] = {"files": files}  # no fingerprint: not finished
        atomic.write_json(manifest_path, manifest, indent=1, sort_keys=True)
        print(f"[{stage.name}] {'resuming' if resume else 'running'}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        stage.fn(resume)
        missing = [o for o in stage.outputs if not (run_dir / o).exists()]
        if missing:
            raise RuntimeError(f"stage {stage.name} did not produce {missing}")
        manifest[stage.name] = {"files": files, "fingerprint": fp, "seconds": round(time.monotonic() - t0, 1),
                                "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic.write_json(manifest_path, manifest, indent=1, sort_keys=True)
        status[stage.name] = "ran"
    return status
