"""Shared fixtures: the real assets folder (fail loudly in CI when missing) and a quiet Keras home."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="keras-home-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from summit_tf import assets  # noqa: E402


@pytest.fixture(scope="session")
def shared():
    """The real assets folder (../shared). In CI a missing folder is a failure, never a skip."""
    path = assets.shared_dir()
    if not (path / "models").is_dir():
        message = f"real assets not found at {path} (set {assets.ENV_VAR})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
