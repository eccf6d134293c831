"""Find or fetch the project's public assets (pretrained models, Imagenette2, InceptionV1).

``resolve(name)`` looks in three places, in order: the assets folder (:func:`summit_tf.assets.shared_dir`),
the user cache (``$SUMMIT_TF_CACHE``, else ``$XDG_CACHE_HOME/summit_tf``, else ``~/.cache/summit_tf``),
and finally the asset's public origin. Every asset has one relative path that is the same in the assets
folder, in the cache and under a mirror, so a copy of any of them serves as the others.

Downloads stream to a temporary file beside the target, are checked against a pinned SHA-256 where the
public file is known byte for byte, and are renamed into place only when complete; archives are unpacked
into a temporary folder and renamed into place, so an interrupted run never leaves a half asset behind.
``SUMMIT_TF_MIRROR=<base URL>`` (``https://...``, ``file:///path`` or a plain folder) replaces every
origin with ``<base URL>/<relative path>``: that is how tests and offline machines run.

Every location can be passed in (``assets_dir``, ``cache_dir``, ``mirror``); the environment variables
above are only the defaults. ``python -m summit_tf.download --assets=inception_v1,inception_v1_labels``
fetches assets ahead of time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from summit_tf import atomic
from summit_tf.assets import paths
from summit_tf.progress import Progress

CACHE_ENV = "SUMMIT_TF_CACHE"
MIRROR_ENV = "SUMMIT_TF_MIRROR"
_CHUNK = 1 << 20
_TIMEOUT_S = 60

_CORAL_TEST_DATA = "https://raw.githubusercontent.com/google-coral/test_data/104342d2d3480b3e66203073dac24f4e2dbb4c41"
_CORAL_EDGETPU = "https://raw.githubusercontent.com/google-coral/edgetpu/5020de9386ff370dcc1f63291a2d0f98eeb98adb"
_MODELZOO = "https://storage.googleapis.com/modelzoo"


class AssetError(FileNotFoundError):
    """An asset is missing and could not be fetched, or a fetched file is not the expected one.

    A FileNotFoundError, so command lines report it as one ``error:`` line (exit code 2;
    ``summit_tf.download`` exits 1 for an asset it could not fetch).
    """


@dataclass(frozen=True)
class Asset:
    """A public file or archive.

    ``path`` is where it lives relative to the assets folder and the cache (for an archive: the folder it
    unpacks to); ``remote`` is the downloaded file's path relative to a mirror (the archive itself);
    ``alternatives`` are other relative paths in the assets folder that serve as well (a resized copy).
    """

    name: str
    url: str
    path: str
    what: str
    sha256: str | None = None
    remote: str | None = None
    alternatives: tuple[str, ...] = ()

    @property
    def is_archive(self) -> bool:
        return self.remote is not None and self.remote != self.path

    @property
    def mirror_path(self) -> str:
        return self.remote or self.path


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "mobilenet_v1_extractor",
            f"{_CORAL_TEST_DATA}/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
            "models/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
            "MobileNetV1 1.0/224 quantized embedding extractor (Coral, Apache-2.0)",
            sha256="f409ef4f73fcbb9667841965623c5c8524aac33d41b9bf5f3667161fb4a76319",
        ),
        Asset(
            "mobilenet_v1_head",
            f"{_CORAL_EDGETPU}/test_data/tools/mobilenet_quant_v1_224_head_layers.tflite",
            "models/mobilenet_quant_v1_224_head_layers.tflite",
            "MobileNetV1 1.0/224 quantized classifier head (Coral, Apache-2.0)",
            sha256="9204a7ca41e13ce683d761ceba5b933fbe5aed76247ccdc6ae7fcd6ce568075f",
        ),
        Asset(
            "mobilenet_v2",
            f"{_CORAL_TEST_DATA}/mobilenet_v2_1.0_224_quant.tflite",
            "models/mobilenet_v2_1.0_224_quant.tflite",
            "MobileNetV2 1.0/224 quantization-aware uint8 (Coral, Apache-2.0)",
            sha256="7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
        ),
        Asset(
            "mobilenet_v2_ptq",
            f"{_CORAL_TEST_DATA}/tf2_mobilenet_v2_1.0_224_ptq.tflite",
            "models/tf2_mobilenet_v2_1.0_224_ptq.tflite",
            "MobileNetV2 1.0/224 post-training int8 (Coral, Apache-2.0)",
            sha256="5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c",
        ),
        Asset(
            "imagenette2",
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
            "datasets/imagenette2-320",
            "fast.ai Imagenette2 (10 ImageNet classes, 320 px; Apache-2.0)",
            remote="datasets/imagenette2-320.tgz",
            alternatives=("datasets/imagenette2-224",),
        ),
        Asset(
            "inception_v1",
            f"{_MODELZOO}/vision/other_models/InceptionV1.pb",
            "models/InceptionV1.pb",
            "Lucid's InceptionV1 frozen GraphDef (inception5h)",
        ),
        Asset(
            "inception_v1_labels",
            f"{_MODELZOO}/labels/ImageNet_alternate_synsets.txt",
            "models/ImageNet_alternate_synsets.txt",
            "synsets of InceptionV1's 1,008 outputs (Lucid model zoo)",
        ),
    )
}

def cache_dir(folder: str | os.PathLike | None = None) -> Path:
    """``folder`` if given, else ``$SUMMIT_TF_CACHE``, else ``$XDG_CACHE_HOME/summit_tf``, else
    ``~/.cache/summit_tf``."""
    if folder is not None:
        return Path(folder).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "summit_tf"


def source_url(asset: Asset, mirror: str | None = None) -> str:
    """The origin URL, or ``<mirror>/<relative path>`` when a mirror is given (default:
    ``$SUMMIT_TF_MIRROR``)."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    if not mirror:
        return asset.url
    if "://" not in mirror:  # a plain folder
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return f"{mirror.rstrip('/')}/{asset.mirror_path}"


def find_local(name: str, assets_dir: str | os.PathLike | None = None,
               cache: str | os.PathLike | None = None) -> Path | None:
    """The asset's path in the assets folder or the cache, or None; never downloads."""
    asset = _asset(name)
    shared = paths.shared_dir(assets_dir)
    for rel in (asset.path, *asset.alternatives):
        if (shared / rel).exists():
            return shared / rel
    cached = cache_dir(cache) / asset.path
    return cached if cached.exists() else None


def resolve(name: str, assets_dir: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
            mirror: str | None = None) -> Path:
    """Path to asset ``name``: the assets folder, else the cache, else downloaded into the cache (from
    ``mirror`` when given). ``None`` arguments take the defaults of :func:`paths.shared_dir`,
    :func:`cache_dir` and :func:`source_url`."""
    found = find_local(name, assets_dir, cache)
    if found is not None:
        return found
    asset = _asset(name)
    target = cache_dir(cache) / asset.path
    url = source_url(asset, mirror)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if asset.is_archive:
            _fetch_archive(asset, url, target)
        else:
            _fetch_file(asset, url, target)
    except (urllib.error.URLError, OSError) as err:
        raise AssetError(_offline_message(asset, url, target, err, paths.shared_dir(assets_dir))) from err
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _asset(name: str) -> Asset:
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r}; known assets: {', '.join(ASSETS)}")
    return ASSETS[name]


def _offline_message(asset: Asset, url: str, target: Path, err: BaseException, shared: Path) -> str:
    reason = getattr(err, "reason", None) or err
    return (
        f"cannot get {asset.name} ({asset.what}): downloading {url} failed ({reason}). "
        f"Download {asset.url} yourself and put it at {target} "
        f"(or under the assets folder as {shared / asset.path}), "
        f"or set {MIRROR_ENV} to a mirror holding {asset.mirror_path}."
        + (f" Unpack the archive there so that {asset.path} exists." if asset.is_archive else "")
    )


def _download(url: str, dest: Path, label: str) -> None:
    """Stream ``url`` into ``dest`` (which the caller owns and removes on failure)."""
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total = -(-int(length) // _CHUNK) if length else None
        progress = Progress(f"download {label}", total=total, unit="MiB")
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            progress.update(1)
        progress.finish()


def _fetch_file(asset: Asset, url: str, target: Path) -> None:
    with atomic.writing(target) as tmp:
        _download(url, tmp, asset.name)
        _check(asset, tmp, url)


def _check(asset: Asset, path: Path, url: str) -> None:
    if asset.sha256 is None:
        return
    got = sha256_of(path)
    if got != asset.sha256:
        raise AssetError(
            f"checksum mismatch for {asset.name} from {url}: sha256 {got}, expected {asset.sha256}; "
            "the file was not kept (a corrupt download or a wrong mirror)"
        )


def _fetch_archive(asset: Asset, url: str, target: Path) -> None:
    """Download the archive, unpack it into a temporary folder, and rename its top folder into place."""
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    archive, unpacked = workdir / "archive.tgz", workdir / "unpacked"
    try:
        _download(url, archive, asset.name)
        _check(asset, archive, url)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, EOFError) as e:  # truncated or not an archive: the asset is still missing
            raise AssetError(f"archive {url} could not be unpacked ({e}); nothing was kept") from None
        top = unpacked / target.name
        if not top.is_dir():
            entries = sorted(p.name for p in unpacked.iterdir())
            raise AssetError(f"archive {url} has no top folder {target.name!r} (it holds {entries[:5]})")
        try:
            os.replace(top, target)
        except OSError:
            if not target.is_dir():  # else another process unpacked it first: keep theirs
                raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
