"""Cached pipeline stages: a stage runs again only when its config or an upstream stage changed.

Each stage's fingerprint hashes its own config with the fingerprints of the stages it depends on, and is
recorded in ``RUN_DIR/stages.json`` after the stage finishes; a rerun with the same fingerprint and all
outputs present is skipped. The manifest is rewritten atomically after every stage, so an interrupted
pipeline resumes at the first stage that did not finish.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from summit_tf import atomic


@dataclass
class Stage:
    """One step of a run: ``fn()`` must produce every path in ``outputs`` (relative to the run dir)."""

    name: str
    config: dict
    outputs: list[str]
    fn: Callable[[], None]
    after: list[str] = field(default_factory=list)


def _fingerprint(config: dict, upstream: Sequence[str]) -> str:
    text = json.dumps({"config": config, "upstream": list(upstream)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
        prints[stage.name] = fp
        done = manifest.get(stage.name, {}).get("fingerprint") == fp and all(
            (run_dir / o).exists() for o in stage.outputs
        )
        if done:
            status[stage.name] = "cached"
            print(f"[{stage.name}] cached ({fp})", file=sys.stderr)
            continue
        if only and stage.name not in only:
            status[stage.name] = "skipped"
            continue
        print(f"[{stage.name}] running", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        stage.fn()
        missing = [o for o in stage.outputs if not (run_dir / o).exists()]
        if missing:
            raise RuntimeError(f"stage {stage.name} did not produce {missing}")
        manifest[stage.name] = {"fingerprint": fp, "seconds": round(time.monotonic() - t0, 1),
                                "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic.write_json(manifest_path, manifest, indent=1, sort_keys=True)
        status[stage.name] = "ran"
    return status
