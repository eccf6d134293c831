"""Serve the interactive SUMMIT viewer over one run directory, read-only, on the local machine.

``python -m summit_tf.serve --run_dir=DIR [--port=8000] [--host=127.0.0.1]``

The app lives at ``/`` and the run's files (``classes.json``, ``ag/``, ``feature-vis/``) under ``/run/``.
Only GET and HEAD are answered; any path that would leave the static folder or the run directory (``..``,
encoded variants, absolute paths, symlinks pointing outside) is a 404 and nothing outside is opened.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import sys
import threading
import webbrowser
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from absl import flags

from summit_tf.cli import fail, parse, quiet_tensorflow

STATIC_DIR = Path(__file__).resolve().parent / "viewer" / "static"
RUN_PREFIX = "run"
ALLOWED_METHODS = ("GET", "HEAD")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]"}

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
        path = resolve_request(self.path, self.server.static_dir, self.server.run_dir)
        if path is None:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        try:
            handle = path.open("rb")
        except OSError:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        with handle:
            stat = os.fstat(handle.fileno())  # the size of what is sent, even if the file is replaced
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(stat.st_size))
            self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if send_body:
                try:
                    shutil.copyfileobj(handle, self.wfile)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser cancelled the image (e.g. a scrubbed diversity frame)

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
        super().__init__(address, ViewerHandler)
        self.loopback = ipaddress.ip_address(self.server_address[0]).is_loopback


def make_server(run_dir: Path | str, host: str = "127.0.0.1", port: int = 8000,
                access_log: bool = False) -> ViewerServer:
    """Bind (port 0 picks a free one) and return the server; ``serve_forever()`` runs it."""
    run_dir = Path(run_dir)
    if not (run_dir / "classes.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no classes.json (is it a summit-tf run directory?)")
    return ViewerServer((host, port), run_dir, access_log=access_log)


FLAGS = flags.FlagValues()
flags.DEFINE_string("run_dir", None, "run directory (classes.json, ag/, feature-vis/)", flag_values=FLAGS)
flags.DEFINE_integer("port", 8000, "TCP port (0 picks a free one).", flag_values=FLAGS)
flags.DEFINE_string("host", "127.0.0.1", "interface to bind; the default keeps the viewer local",
                    flag_values=FLAGS)
flags.DEFINE_bool("open", False, "Open the viewer in the default web browser.", flag_values=FLAGS)
flags.DEFINE_bool("access_log", False, "Log every request on stderr.", flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Run the CLI on ``argv`` (program name first) until Ctrl-C; returns the exit code."""
    parsed = parse(FLAGS, argv, __doc__ or "")
    if isinstance(parsed, int):
        return parsed
    if not FLAGS.run_dir:
        return fail("--run_dir is required")
    if not 0 <= FLAGS.port <= 65535:
        return fail(f"--port must be in 0..65535, got {FLAGS.port}")
    try:
        server = make_server(FLAGS.run_dir, FLAGS.host, FLAGS.port, FLAGS.access_log)
    except FileNotFoundError as exc:
        return fail(str(exc))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return fail(f"port {FLAGS.port} on {FLAGS.host} is busy; pick another with --port")
        return fail(f"cannot listen on {FLAGS.host}:{FLAGS.port}: {exc.strerror or exc}")
    host, port = server.server_address[:2]
    url = f"http://{'localhost' if server.loopback else host}:{port}/"
    if not server.loopback:
        print(f"warning: listening on {host}: other machines can read this run", file=sys.stderr)
    print(f"summit-tf viewer for {server.run_dir} at {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    if FLAGS.open:
        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``summit-serve``)."""
    quiet_tensorflow()
    sys.exit(main(sys.argv if argv is None else argv))


if __name__ == "__main__":
    run()
