"""The viewer's HTTP server: serves the app and the run read-only, never anything outside, never a 500."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import threading
from pathlib import Path

import pytest
from cli_errors import run_main
from viewer_fixture import make_run_dir

from summit_tf.viewer import export_site, manifest
from summit_tf.viewer import server as serve

SECRET = "TOP-SECRET-OUTSIDE-THE-RUN"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A run directory with a secret file beside it and symlinks inside it that point outside."""
    base = tmp_path_factory.mktemp("viewer-server")
    run_dir = make_run_dir(base / "run")
    (base / "secret.txt").write_text(SECRET)
    (run_dir / "leak.txt").symlink_to(base / "secret.txt")
    (run_dir / "leakdir").symlink_to(base, target_is_directory=True)
    (run_dir / "ag" / "inside.json").symlink_to(run_dir / "ag" / "ag-294.json")
    (run_dir / ".hidden").write_text("dot files are not served")
    return base, run_dir


@pytest.fixture(scope="module")
def server(tree):
    _, run_dir = tree
    httpd = serve.make_server(run_dir, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def request(port: int, method: str, target: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """Send the request target byte for byte (http.client does not normalise '..' or '%2e')."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("target, kind", [
    ("/", "text/html"),
    ("/index.html", "text/html"),
    ("/js/main.js", "text/javascript"),
    ("/css/viewer.css", "text/css"),
    ("/vendor/d3.min.js", "text/javascript"),
    ("/run/classes.json", "application/json"),
    ("/run/ag/ag-294.json", "application/json"),
    ("/run/ag/inside.json", "application/json"),
    ("/run/feature-vis/dataset-p/conv_pw_3-38-dataset-p-0.jpg", "image/jpeg"),
    ("/run/classes.json?cache=1&x=%ff", "application/json"),
])
def test_serves_app_and_run_with_content_types(server, tree, target, kind):
    status, headers, body = request(server, "GET", target)
    assert status == 200
    assert headers["content-type"].startswith(kind)
    assert int(headers["content-length"]) == len(body) > 0
    assert headers["x-content-type-options"] == "nosniff"


def test_run_files_are_the_run_directory_files(server, tree):
    _, run_dir = tree
    _, _, body = request(server, "GET", "/run/ag/ag-294.json")
    assert json.loads(body) == json.loads((run_dir / "ag" / "ag-294.json").read_text())


def test_head_sends_headers_only(server):
    status, headers, body = request(server, "HEAD", "/run/classes.json")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


TRAVERSALS = [
    "/run/../secret.txt",
    "/run/../../../../etc/passwd",
    "/../secret.txt",
    "/run/%2e%2e/secret.txt",
    "/run/%2E%2E/secret.txt",
    "/run/.%2e/secret.txt",
    "/run/%2e%2e%2fsecret.txt",
    "/run/%2e%2e%5csecret.txt",
    "/run/..%2fsecret.txt",
    "/run/%252e%252e/secret.txt",
    "/run/%252e%252e%252fsecret.txt",
    "/run/ag/..%2f..%2fsecret.txt",
    "/run/..\\secret.txt",
    "/run//etc/passwd",
    "/run/%2fetc%2fpasswd",
    "//etc/passwd",
    "/%2fetc/passwd",
    "/run/leak.txt",
    "/run/leakdir/secret.txt",
    "/run/.hidden",
    "/run/secret.txt%00.json",
    "/run/ag/ag-294.json%00",
    "/js/../../../serve.py",
    "/%2e%2e/%2e%2e/serve.py",
    "/run",
    "/run/",
    "/run/ag/",
    "/nope.html",
    "etc/passwd",
    "http://127.0.0.1/run/../secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_paths_outside_are_404_and_leak_nothing(server, target):
    status, _, body = request(server, "GET", target)
    assert status == 404, target
    assert SECRET.encode() not in body and b"root:" not in body


def test_nothing_outside_is_opened(server, tree, monkeypatch):
    """Refusals happen before any open(): every file the server opens lies in the app or the run folder."""
    _, run_dir = tree
    opened = []
    real_open = Path.open

    def spy(self, *args, **kwargs):
        opened.append(Path(self).resolve())
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    for target in [*TRAVERSALS, "/run/classes.json", "/"]:
        request(server, "GET", target)
    roots = (run_dir.resolve(), serve.STATIC_DIR.resolve())
    assert len(opened) == 2
    assert all(any(p.is_relative_to(root) for root in roots) for p in opened)


@pytest.mark.parametrize("host, status", [
    ("evil.example", 403), ("evil.example:80", 403), ("127.0.0.1.evil.example", 403), ("", 403),
    ("localhost", 200), ("LOCALHOST:1234", 200), ("127.0.0.1", 200),
])
def test_foreign_host_headers_are_refused(server, host, status):
    """A page on another site that rebinds its name to 127.0.0.1 must not read the run."""
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        conn.putrequest("GET", "/run/classes.json", skip_host=True)
        if host:
            conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == status
        assert (b"target_class" in response.read()) == (status == 200)
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "BREW"])
def test_other_methods_are_405(server, method):
    status, headers, _ = request(server, method, "/run/classes.json")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("target", [
    "/?%", "/?%%%%", "/?class=%ff%fe", "/?" + "x" * 8000, "/?&&&==&", "/?class=294&layer=<script>",
    "/%", "/%zz", "/%ff%fe", "/%c0%ae%c0%ae/secret.txt", "/run/%", "/" + "a" * 5000, "/run/" + "a/" * 3000,
    "/run/ag/ag-294.json;x", "/run/ag/ag-294.json#frag", "/;",
])
def test_garbage_never_yields_500(server, target):
    status, _, _ = request(server, "GET", target)
    assert status in (200, 404), target


@pytest.mark.parametrize("data", [
    b"GET\r\n\r\n", b"\x00\x01\x02\r\n\r\n", b"GET /run/classes.json HTTP/9.9\r\n\r\n",
    b"GET  HTTP/1.1\r\n\r\n", b"GET /run/../secret.txt\r\n\r\n",
    b"GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /?\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /\xc3\xa9?\x7f HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /run/\xff/../secret.txt HTTP/1.1\r\n\r\n",
])
def test_malformed_requests_never_yield_500(server, data):
    reply = raw_request(server, data)
    assert b" 500 " not in reply.split(b"\r\n", 1)[0] + b" " and SECRET.encode() not in reply
    assert request(server, "GET", "/run/classes.json")[0] == 200  # and the server still answers


def test_cli_rejects_run_dir_without_classes_json(tmp_path):
    result = run_main("summit_tf.serve", f"--run_dir={tmp_path}")
    assert result.returncode == 2
    assert "classes.json" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("extra", [None, ["--port=abc"], ["--port=70000"], ["--nonsense=1"], ["surplus"]])
def test_cli_bad_input_is_one_line_and_exit_2(tree, extra):
    _, run_dir = tree
    args = [] if extra is None else [f"--run_dir={run_dir}", *extra]  # None: --run_dir missing
    result = run_main("summit_tf.serve", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_cli_rejects_busy_port(tree):
    _, run_dir = tree
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        result = run_main("summit_tf.serve", f"--run_dir={run_dir}", f"--port={busy.getsockname()[1]}")
    assert result.returncode == 2
    assert "busy" in result.stderr and "Traceback" not in result.stderr


def test_export_site_copies_app_and_run(tree, tmp_path):
    _, run_dir = tree
    site = tmp_path / "site"
    copied = export_site(run_dir, site)
    assert (site / "index.html").is_file() and (site / "js" / "main.js").is_file()
    assert (site / "run" / "classes.json").read_bytes() == (run_dir / "classes.json").read_bytes()
    assert (site / "run" / "ag" / "ag-294.json").is_file()
    assert (site / "run" / "feature-vis" / "channel" / "conv_pw_3-38-channel.jpg").is_file()
    # only what the viewer reads: no symlinks out of the run, no dot files, nothing outside the run
    assert not (site / "run" / "leak.txt").exists() and not (site / "run" / "leakdir").exists()
    assert not (site / "run" / ".hidden").exists()
    assert SECRET not in "".join(p.read_text(errors="ignore") for p in site.rglob("*.txt"))
    assert copied == sum(1 for p in site.rglob("*") if p.is_file()) - 1  # minus the site marker
    # a second export replaces the first
    (site / "run" / "ag" / "stale.json").write_text("{}")
    export_site(run_dir, site)
    assert not (site / "run" / "ag" / "stale.json").exists()


def test_export_site_refuses_foreign_folder(tree, tmp_path):
    _, run_dir = tree
    (tmp_path / "precious.txt").write_text("keep me")
    result = run_main("summit_tf.export_site", f"--run_dir={run_dir}", f"--out={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_export_site_cli(tree, tmp_path):
    _, run_dir = tree
    result = run_main("summit_tf.export_site", f"--run_dir={run_dir}", f"--out={tmp_path / 'site'}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "run" / "classes.json").is_file()
    bad = run_main("summit_tf.export_site", f"--run_dir={tmp_path / 'missing'}", f"--out={tmp_path / 'x'}")
    assert bad.returncode == 2 and "classes.json" in bad.stderr


@pytest.mark.parametrize("header, expected", [
    ("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.8", True), ("*", True),
    ("GZIP", True), ("gzip;q=0", False), ("gzip; q=0.000", False), ("deflate, br", False), ("", False),
    (None, False), ("gzipx", False),
])
def test_accepts_gzip(header, expected):
    assert serve.accepts_gzip(header) is expected


@pytest.mark.parametrize("target, name", [("/run/classes.json", "classes.json"), ("/js/main.js", None),
                                          ("/run/ag/ag-294.json", "ag/ag-294.json")])
def test_text_is_gzipped_when_accepted(server, tree, target, name):
    _, run_dir = tree
    raw = (run_dir / name).read_bytes() if name else (serve.STATIC_DIR / target[1:]).read_bytes()
    status, headers, body = request(server, "GET", target, {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert int(headers["content-length"]) == len(body) < len(raw)
    assert gzip.decompress(body) == raw
    for refusal in ({}, {"Accept-Encoding": "gzip;q=0"}, {"Accept-Encoding": "br"}):
        status, headers, body = request(server, "GET", target, refusal)
        assert status == 200 and "content-encoding" not in headers and body == raw
    status, headers, body = request(server, "HEAD", target, {"Accept-Encoding": "gzip"})
    assert body == b"" and headers["content-encoding"] == "gzip" and int(headers["content-length"]) > 0


def test_images_are_never_gzipped(server):
    target = "/run/feature-vis/dataset-p/conv_pw_3-38-dataset-p-0.jpg"
    _, headers, body = request(server, "GET", target, {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in headers and body[:2] == b"\xff\xd8"


def test_precompressed_copy_is_used_only_when_fresh_and_inside(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "classes.json").write_text('{"classes": [1, 2, 3]}')
    fresh = gzip.compress(b'{"from": "the .gz copy"}')
    (run_dir / "classes.json.gz").write_bytes(fresh)
    (run_dir / "ag").mkdir()
    (run_dir / "ag" / "ag-1.json").write_text('{"a": 1}')
    (tmp_path / "outside.gz").write_bytes(gzip.compress(b"outside"))
    (run_dir / "ag" / "ag-1.json.gz").symlink_to(tmp_path / "outside.gz")
    httpd = serve.make_server(run_dir, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    try:
        _, headers, body = request(port, "GET", "/run/classes.json", {"Accept-Encoding": "gzip"})
        assert body == fresh  # the pre-compressed copy as it is
        _, _, body = request(port, "GET", "/run/ag/ag-1.json", {"Accept-Encoding": "gzip"})
        assert gzip.decompress(body) == b'{"a": 1}'  # a .gz symlink is never followed
        stale = (run_dir / "classes.json").stat().st_mtime_ns - 10**9
        os.utime(run_dir / "classes.json.gz", ns=(stale, stale))
        _, _, body = request(port, "GET", "/run/classes.json", {"Accept-Encoding": "gzip"})
        assert gzip.decompress(body) == b'{"classes": [1, 2, 3]}'  # older than its original: not used
        _, headers, body = request(port, "GET", "/run/classes.json.gz")
        assert headers["content-type"] == "application/octet-stream" and body == fresh
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_manifest_follows_the_run_directory(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    httpd = serve.make_server(run_dir, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    try:
        status, headers, body = request(port, "GET", "/run/manifest.json")
        assert status == 200 and headers["content-type"].startswith("application/json")
        doc = json.loads(body)
        ag = sorted(int(p.stem[3:]) for p in (run_dir / "ag").glob("ag-*.json"))
        assert doc["graphs"] == ag and doc["details"] == []
        rows = {(layer, ch): rest for layer, items in doc["images"].items() for ch, *rest in items}
        assert rows[("conv_pw_3", 38)] == [1, 4, 10]
        channels = {p.name.rsplit("-", 1)[0] for p in (run_dir / "feature-vis" / "channel").iterdir()}
        assert {f"{layer}-{ch}" for layer, ch in rows} == channels
        (run_dir / "ag" / "ag-294.json").unlink()
        (run_dir / "feature-vis" / "diversity-2" / "conv_pw_3-38-diversity-2.jpg").unlink()
        (run_dir / "feature-vis" / "channel" / "conv_pw_3-38-channel.jpg").unlink()
        _, headers, body = request(port, "GET", "/run/manifest.json", {"Accept-Encoding": "gzip"})
        doc = json.loads(gzip.decompress(body))
        assert 294 not in doc["graphs"] and len(doc["graphs"]) == len(ag) - 1
        # the diversity images count up to the first gap: the viewer names them by index
        assert {ch: rest for ch, *rest in doc["images"]["conv_pw_3"]}[38] == [0, 2, 10]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_manifest_scan_of_partial_and_odd_runs(tmp_path):
    assert manifest.scan(tmp_path) == {"version": 1, "graphs": [], "details": [], "images": {},
                                       "faithfulness": False}
    fv = tmp_path / "feature-vis"
    for rel in ["channel/mixed4a-7-channel.jpg", "channel/a-b-12-channel.jpg", "channel/junk.jpg",
                "channel/.mixed4a-9-channel.jpg", "diversity-0/mixed4a-7-diversity-0.jpg",
                "diversity-1/mixed4a-7-diversity-0.jpg",  # in the wrong folder: not counted
                "dataset-p/mixed4a-3-dataset-p-0.jpg", "dataset-p/mixed4a-3-dataset-p-1.jpg",
                "dataset-p/mixed4a-3-dataset-p-3.jpg"]:
        (fv / rel).parent.mkdir(parents=True, exist_ok=True)
        (fv / rel).write_bytes(b"x")
    (tmp_path / "ag").mkdir()
    for name in ["ag-5.json", "ag-12.json", "ag-x.json", "ag-5.json.tmp"]:
        (tmp_path / "ag" / name).write_text("{}")
    doc = manifest.scan(tmp_path)
    assert doc["graphs"] == [5, 12]
    assert doc["images"] == {"a-b": [[12, 1, 0, 0]], "mixed4a": [[3, 0, 0, 2], [7, 1, 1, 0]]}


def test_export_writes_manifest_and_gzip_copies(tree, tmp_path):
    _, run_dir = tree
    site = tmp_path / "site"
    export_site(run_dir, site)
    assert json.loads((site / "run" / "manifest.json").read_text()) == manifest.scan(run_dir)
    texts = [p for p in site.rglob("*") if p.suffix in (".json", ".js", ".css", ".html")]
    assert texts and all(gzip.decompress(p.with_name(p.name + ".gz").read_bytes()) == p.read_bytes()
                         for p in texts)
    assert not list(site.rglob("*.jpg.gz"))
