"""The viewer's HTTP server: one run directory, read-only (command line: ``python -m summit_tf.serve``).

The app lives at ``/`` and the run's files (``classes.json``, ``ag/``, ``feature-vis/``) under ``/run/``;
``/run/manifest.json`` is what the run holds, read off the directory (:mod:`manifest`). Only GET and HEAD
are answered; any path that would leave the static folder or the run directory (``..``, encoded variants,
absolute paths, symlinks pointing outside) is a 404 and nothing outside is opened. Text (JSON, JS, CSS,
HTML, SVG) goes gzip-compressed to clients that accept it: a pre-compressed ``NAME.gz`` beside the file
when it is at least as new, else compressed once and kept in memory (a 1,000-class run's JSON shrinks
3-8x, and classes.json is what the first screen waits for).
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import shutil
import threading
from collections import OrderedDict
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from summit_tf.viewer import manifest

STATIC_DIR = Path(__file__).resolve().parent / "static"
RUN_PREFIX = "run"
ALLOWED_METHODS = ("GET", "HEAD")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]"}
COMPRESSIBLE = {".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt", ".md"}
GZIP_LEVEL = 6
GZIP_CACHE_BYTES = 256 << 20  # compressed bytes kept in memory, least recently used dropped first
GZIP_MAX_SOURCE = 256 << 20  # larger files go uncompressed rather than through memory

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}


def content_type(path: Path) -> str:
    """A fixed table rather than ``mimetypes``: the platform's table differs between machines (.js, .json)."""
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def _safe_join(root: Path, parts: list[str]) -> Path | None:
    """``root/parts`` if it is an existing file inside ``root`` after resolving symlinks, else None."""
    if any(not p or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        return None  # empty segments (//, absolute paths), dot-files, '..', Windows separators, NULs
    try:
        candidate = root.joinpath(*parts).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
    except (OSError, ValueError):
        return None
    return candidate


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``gzip;q=0`` refuses it)."""
    for item in (header or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


class GzipCache:
    """Compressed copies of served files, keyed by path, size and modification time."""

    def __init__(self, budget: int = GZIP_CACHE_BYTES) -> None:
        self.budget = budget
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, stat: os.stat_result, handle) -> bytes:
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = gzip.compress(handle.read(), compresslevel=GZIP_LEVEL, mtime=0)
        with self._lock:
            self._items[key] = data
            used = sum(len(v) for v in self._items.values())
            while used > self.budget and len(self._items) > 1:
                used -= len(self._items.popitem(last=False)[1])
        return data


def resolve_request(target: str, static_dir: Path, run_dir: Path) -> Path | None:
    """Map a request target (``/run/ag/ag-3.json?x=1``) to a file, or None for anything not servable.

    ``static_dir`` and ``run_dir`` must already be resolved. The path is percent-decoded exactly once, so
    ``%2e%2e`` is ``..`` (rejected) and ``%252e%252e`` is the literal name ``%2e%2e`` (not found).
    """
    try:
        path = unquote(urlsplit(target).path, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    if not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    if parts == [""]:
        parts = ["index.html"]
    elif parts[-1] == "" and len(parts) > 1:
        parts[-1] = "index.html"
    if parts[0] == RUN_PREFIX:
        return _safe_join(run_dir, parts[1:]) if len(parts) > 1 else None
    return _safe_join(static_dir, parts)


class ViewerHandler(BaseHTTPRequestHandler):
    """Read-only handler; the server object carries ``static_dir``, ``run_dir`` and ``access_log``."""

    server: ViewerServer
    server_version = "summit-tf-viewer"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def __getattr__(self, name: str):
        """Every other method (POST, PUT, DELETE, PROPFIND, ...) is a 405, not http.server's 501."""
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self) -> None:
        self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, extra={"Allow": ", ".join(ALLOWED_METHODS)})

    def _send_error(self, status: HTTPStatus, extra: dict[str, str] | None = None) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _host_allowed(self) -> bool:
        """On a loopback address, answer only requests addressed to it (defeats DNS rebinding)."""
        if not self.server.loopback:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_NAMES

    def _serve(self, send_body: bool) -> None:
        if not self._host_allowed():
            self._send_error(HTTPStatus.FORBIDDEN)
            return
        if urlsplit(self.path).path == f"/{RUN_PREFIX}/{manifest.NAME}":
            body = json.dumps(self.server.manifest.get(), separators=(",", ":")).encode()
            self._send_bytes(Path(manifest.NAME), body, send_body)
            return
        path = resolve_request(self.path, self.server.static_dir, self.server.run_dir)
        if path is None:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        gz = accepts_gzip(self.headers.get("Accept-Encoding")) and path.suffix.lower() in COMPRESSIBLE
        if gz:
            path_gz = path.with_name(path.name + ".gz")
            try:
                fresh = path_gz.is_file() and path_gz.resolve() == path_gz \
                    and path_gz.stat().st_mtime_ns >= path.stat().st_mtime_ns
            except OSError:
                fresh = False
            if fresh:  # the export's pre-compressed copy (resolve() above: no symlink leaves the folder)
                self._send_file(path_gz, content_type(path), send_body, encoding="gzip")
                return
        self._send_file(path, content_type(path), send_body, encoding="gzip" if gz else None)

    def _headers(self, kind: str, length: int, encoding: str | None, mtime: float | None) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        if mtime is not None:
            self.send_header("Last-Modified", formatdate(mtime, usegmt=True))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()

    def _send_bytes(self, path: Path, body: bytes, send_body: bool) -> None:
        if accepts_gzip(self.headers.get("Accept-Encoding")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
            self._headers(content_type(path), len(body), "gzip", None)
        else:
            self._headers(content_type(path), len(body), None, None)
        if send_body:
            self._write(body)

    def _send_file(self, path: Path, kind: str, send_body: bool, encoding: str | None) -> None:
        """``path`` as it is, or gzip-compressed when ``encoding`` asks (and it is not a .gz already)."""
        try:
            handle = path.open("rb")
        except OSError:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        with handle:
            stat = os.fstat(handle.fileno())  # the size of what is sent, even if the file is replaced
            if encoding and path.suffix != ".gz":
                if stat.st_size > GZIP_MAX_SOURCE:
                    encoding = None
                else:
                    body = self.server.gzip_cache.get(path, stat, handle)
                    self._headers(kind, len(body), encoding, stat.st_mtime)
                    if send_body:
                        self._write(body)
                    return
            self._headers(kind, stat.st_size, encoding, stat.st_mtime)
            if send_body:
                try:
                    shutil.copyfileobj(handle, self.wfile)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser cancelled the image (e.g. a scrubbed diversity frame)

    def _write(self, body: bytes) -> None:
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args) -> None:
        if self.server.access_log:
            super().log_message(format, *args)


class ViewerServer(ThreadingHTTPServer):
    """A threading HTTP server that knows the folders it may serve from."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], run_dir: Path, static_dir: Path = STATIC_DIR,
                 access_log: bool = False) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.static_dir = Path(static_dir).resolve()
        self.access_log = access_log
        self.manifest = manifest.ManifestCache(self.run_dir)
        self.gzip_cache = GzipCache()
        super().__init__(address, ViewerHandler)
        self.loopback = ipaddress.ip_address(self.server_address[0]).is_loopback


def make_server(run_dir: Path | str, host: str = "127.0.0.1", port: int = 8000,
                access_log: bool = False) -> ViewerServer:
    """Bind (port 0 picks a free one) and return the server; ``serve_forever()`` runs it."""
    run_dir = Path(run_dir)
    if not (run_dir / "classes.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no classes.json (is it a summit-tf run directory?)")
    return ViewerServer((host, port), run_dir, access_log=access_log)
