"""Shared fixtures: the real assets folder (fail loudly in CI when missing) and a quiet Keras home."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="keras-home-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from summit_tf import assets  # noqa: E402


@pytest.fixture
def isolated_assets(tmp_path, monkeypatch):
    """Empty assets folder, cache and mirror (as ``(shared, cache, mirror)``): nothing can be found."""
    from summit_tf.assets import download

    shared, cache, mirror = tmp_path / "shared", tmp_path / "cache", tmp_path / "mirror"
    for p in (shared, cache, mirror):
        p.mkdir()
    monkeypatch.setenv(assets.ENV_VAR, str(shared))
    monkeypatch.setenv(download.CACHE_ENV, str(cache))
    monkeypatch.setenv(download.MIRROR_ENV, mirror.as_uri())
    return shared, cache, mirror


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


# Three Imagenette classes (tench 0, English springer 217, parachute 701), a few images each.
SLICE_SYNSETS = ("n01440764", "n02102040", "n03888257")


@pytest.fixture(scope="session")
def small_run(shared, tmp_path_factory):
    """A real run directory: the quick start's whole pipeline (MobileNetV1, real Imagenette images) on a
    small slice, with tiny feature-vis settings. Shared by the end-to-end and the browser tests."""
    from experiments import quickstart

    data = tmp_path_factory.mktemp("imagenette-slice")
    for synset in SLICE_SYNSETS:
        (data / synset).mkdir()
        for image in sorted((shared / "datasets" / "imagenette2-224" / "val" / synset).glob("*.JPEG"))[:4]:
            (data / synset / image.name).symlink_to(image)
    out = tmp_path_factory.mktemp("run") / "quickstart"
    argv = ["quickstart", f"--data=folder:{data}", f"--out_dir={out}", "--max_images_per_class=4",
            "--batch_size=12", "--fv_steps=2", "--fv_size=48", "--fv_diversity=2", "--num_examples=3",
            "--fv_batch_channels=512",
            "--figure_classes=0", "--compare=0,217"]
    assert quickstart.main(argv) == 0
    return out
