"""The viewer and one run as a static site that any web server can host (command line:
``python -m summit_tf.export_site``).

SITE gets the app (``index.html``, ``js/``, ``css/``, ``vendor/``) and the run under ``SITE/run/``: only
what the viewer reads (``classes.json``, ``ag/*.json``, ``details/*.json``, ``feature-vis/**`` images) and
the run's ``manifest.json`` (what it holds, so the viewer asks for no missing file), never aggregates or
files reached through symlinks that leave the run. Every text file also gets a gzip copy ``NAME.gz`` for
servers that send pre-compressed files (nginx ``gzip_static``, Caddy ``precompressed``, our own server).
The app uses relative paths, so the site works from any sub-path. The site is built next to SITE and
swapped in: a failed export never leaves half a site.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

from summit_tf.progress import Progress
from summit_tf.viewer import manifest
from summit_tf.viewer.server import COMPRESSIBLE, STATIC_DIR

MARKER = ".summit-tf-site"
RUN_FILES = {"": ("classes.json", manifest.FAITHFULNESS), "ag": ("*.json",), "details": ("*.json",),
             "feature-vis": ("**/*.jpg", "**/*.jpeg", "**/*.png")}


def _run_files(run_dir: Path) -> list[Path]:
    """Files of the run the viewer reads, resolved and checked to lie inside the run directory."""
    files: set[Path] = set()
    for sub, patterns in RUN_FILES.items():
        base = run_dir / sub
        for pattern in patterns:
            for path in base.glob(pattern):
                rel = path.relative_to(run_dir)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                real = path.resolve()
                if real.is_file() and real.is_relative_to(run_dir):
                    files.add(rel)
    return sorted(files)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise FileExistsError(f"{out} exists and is not a site exported by summit_tf.export_site; "
                              "choose a new --out folder")


def export_site(run_dir: Path | str, out: Path | str) -> int:
    """Write the static site to ``out`` (replacing an earlier export there); return the files written."""
    run_dir = Path(run_dir).resolve()
    out = Path(out).absolute()
    if not (run_dir / "classes.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no classes.json (is it a summit-tf run directory?)")
    _check_out(out)
    files = _run_files(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        shutil.copytree(STATIC_DIR, staging, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".*", "__pycache__"))
        copied = sum(1 for p in staging.rglob("*") if p.is_file())
        progress = Progress("export", total=len(files), unit="files")
        for rel in files:
            target = staging / "run" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / rel, target)
            progress.update()
        progress.finish()
        listing = json.dumps(manifest.scan(run_dir), separators=(",", ":"))
        (staging / "run" / manifest.NAME).write_text(listing)
        texts = [p for p in staging.rglob("*") if p.is_file() and p.suffix.lower() in COMPRESSIBLE]
        for path in texts:  # written after the originals, so never older than them
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), 9, mtime=0))
        (staging / MARKER).write_text("Static site written by summit_tf.export_site; safe to replace.\n")
        staging.chmod(0o755)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}-old-{os.getpid()}")
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return copied + len(files) + 1 + len(texts)
