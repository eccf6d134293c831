"""Where real assets (pretrained models, ImageNet images, reference files) are found.

Everything reads them through one place: the folder named by ``SUMMIT_TF_ASSETS``, by default the
``shared`` folder beside the project checkout (``../shared`` from the repository root).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SUMMIT_TF_ASSETS"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir(folder: str | os.PathLike | None = None) -> Path:
    """The assets folder: ``folder`` if given, else ``$SUMMIT_TF_ASSETS`` if set, else ``<repo>/../shared``,
    else ``./../shared``."""
    if folder is not None:
        return Path(folder).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    beside_repo = (_REPO_ROOT.parent / "shared").resolve()
    if beside_repo.is_dir():
        return beside_repo
    return (Path.cwd().parent / "shared").resolve()


def shared_path(*parts: str) -> Path:
    """A file under the assets folder, with a clear error if it is not there."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"asset {'/'.join(parts)!r} not found under {shared_dir()} (set {ENV_VAR} to the assets folder)"
        )
    return path
