"""summit_tf.download: assets folder -> cache -> (mirrored) download, checksums, archives, offline errors."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from absl import flags
from cli_errors import assert_module_exits_2, assert_one_error_line

from summit_tf import download as download_cli
from summit_tf.assets import download


@pytest.fixture
def places(isolated_assets):
    """No network origin is ever reachable here (unroutable URLs)."""
    return isolated_assets


def _fake_asset(monkeypatch, name: str, **changes) -> download.Asset:
    asset = replace(download.ASSETS[name], **changes)
    monkeypatch.setitem(download.ASSETS, name, asset)
    return asset


def _put(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_mirror_download_round_trip_with_checksum(places, monkeypatch):
    shared, cache, mirror = places
    data = b"not really a tflite model\n" * 1000
    asset = _fake_asset(monkeypatch, "mobilenet_v2", sha256=hashlib.sha256(data).hexdigest())
    _put(mirror, asset.path, data)
    path = download.resolve("mobilenet_v2")
    assert path == cache / asset.path
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind
    # A second call uses the cache: the mirror copy may disappear.
    (mirror / asset.path).unlink()
    assert download.resolve("mobilenet_v2") == path


def test_locations_passed_in_win_over_the_environment(places, tmp_path, monkeypatch):
    """Libraries take explicit folders; the environment (here: empty folders) is only the default."""
    mine_shared, mine_cache, mine_mirror = (tmp_path / n for n in ("my-shared", "my-cache", "my-mirror"))
    in_shared = _put(mine_shared, download.ASSETS["inception_v1_labels"].path, b"n01440764\n")
    assert download.resolve("inception_v1_labels", assets_dir=mine_shared) == in_shared
    assert download.find_local("inception_v1_labels") is None  # the environment's folders stay empty
    _put(mine_mirror, download.ASSETS["inception_v1"].path, b"graph")
    got = download.resolve("inception_v1", cache=mine_cache, mirror=mine_mirror.as_uri())
    assert got == mine_cache / download.ASSETS["inception_v1"].path and got.read_bytes() == b"graph"
    assert not any(places[1].iterdir())


def test_mirror_may_be_a_plain_folder(places, monkeypatch):
    shared, cache, mirror = places
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    _put(mirror, download.ASSETS["inception_v1"].path, b"graph")
    assert download.resolve("inception_v1").read_bytes() == b"graph"


def test_checksum_mismatch_keeps_nothing(places, monkeypatch):
    shared, cache, mirror = places
    asset = _fake_asset(monkeypatch, "mobilenet_v1_head", sha256="0" * 64)
    _put(mirror, asset.path, b"tampered")
    with pytest.raises(download.AssetError, match="checksum mismatch for mobilenet_v1_head"):
        download.resolve("mobilenet_v1_head")
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_assets_folder_wins_over_cache_and_mirror(places):
    shared, cache, mirror = places
    rel = download.ASSETS["inception_v1_labels"].path
    in_shared = _put(shared, rel, b"shared\n")
    _put(cache, rel, b"cache\n")
    _put(mirror, rel, b"mirror\n")
    assert download.resolve("inception_v1_labels") == in_shared
    in_shared.unlink()
    assert download.resolve("inception_v1_labels").read_bytes() == b"cache\n"


def test_shared_imagenette_224_copy_is_used(places):
    shared = places[0]
    (shared / "datasets" / "imagenette2-224" / "train").mkdir(parents=True)
    assert download.resolve("imagenette2") == shared / "datasets" / "imagenette2-224"


def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archive_is_extracted_into_place(places, monkeypatch):
    shared, cache, mirror = places
    files = {
        "imagenette2-320/train/n01440764/a.JPEG": b"jpeg-a",
        "imagenette2-320/val/n03000684/b.JPEG": b"jpeg-b",
        "imagenette2-320/noisy_imagenette.csv": b"path,label\n",
    }
    archive = _tgz(files)
    asset = _fake_asset(monkeypatch, "imagenette2", sha256=hashlib.sha256(archive).hexdigest())
    _put(mirror, asset.remote, archive)
    path = download.resolve("imagenette2")
    assert path == cache / "datasets" / "imagenette2-320"
    for name, data in files.items():
        assert (cache / "datasets" / name).read_bytes() == data
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["imagenette2-320"]


def test_archive_without_expected_top_folder_fails_cleanly(places, monkeypatch):
    shared, cache, mirror = places
    asset = _fake_asset(monkeypatch, "imagenette2")
    _put(mirror, asset.remote, _tgz({"other/x.txt": b"x"}))
    with pytest.raises(download.AssetError, match="no top folder 'imagenette2-320'"):
        download.resolve("imagenette2")
    assert list((cache / "datasets").iterdir()) == []


def test_truncated_archive_is_an_asset_error_and_keeps_nothing(places, monkeypatch):
    shared, cache, mirror = places
    asset = _fake_asset(monkeypatch, "imagenette2")  # no pinned checksum: the unpacking finds the damage
    _put(mirror, asset.remote, _tgz({"imagenette2-320/x.txt": b"x" * 5000})[:60])
    with pytest.raises(download.AssetError, match="could not be unpacked"):
        download.resolve("imagenette2")
    assert list((cache / "datasets").iterdir()) == []


def test_offline_error_says_what_and_where(places):
    shared, cache, mirror = places
    with pytest.raises(download.AssetError) as err:
        download.resolve("inception_v1")
    message = str(err.value)
    assert "storage.googleapis.com/modelzoo/vision/other_models/InceptionV1.pb" in message
    assert str(cache / "models" / "InceptionV1.pb") in message
    assert download.MIRROR_ENV in message


def test_unknown_asset_names_the_known_ones():
    with pytest.raises(KeyError, match="inception_v1_labels"):
        download.resolve("resnet")


def test_origin_urls_are_pinned_public_files():
    for asset in download.ASSETS.values():
        assert asset.url.startswith("https://"), asset.name
        if "raw.githubusercontent.com" in asset.url:
            assert len(asset.url.split("/")[5]) == 40, f"{asset.name}: pin a full commit"
            assert asset.sha256 is not None


def test_shared_models_match_pinned_checksums(shared):
    """The shared models are the public Coral files byte for byte (so the pins are right)."""
    for asset in download.ASSETS.values():
        if asset.sha256 and (shared / asset.path).is_file():
            assert download.sha256_of(shared / asset.path) == asset.sha256, asset.name


def test_cli_rejects_unknown_asset():
    run = subprocess.run(
        [sys.executable, "-m", "summit_tf.download", "--assets=nope"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "unknown asset(s) ['nope']" in run.stderr
    assert "Traceback" not in run.stderr


def test_cli_bad_flags_exit_2_with_one_error_line(capsys):
    assert "assets" not in flags.FLAGS  # importing defined no global absl flag
    assert download_cli.main(["download", "--assets"]) == 2  # a string flag without its value
    assert_one_error_line(capsys.readouterr().err, "--assets")
    assert download_cli.main(["download", "stray"]) == 2
    assert_one_error_line(capsys.readouterr().err, "stray")
    assert_module_exits_2("summit_tf.download", "--asset=inception_v1", contains="asset")
