"""The viewer at ImageNet scale, in headless Chromium: what issue #17 measured, now against its goals.

    python -m benchmarks.viewer [--classes=1000] [--run_dir=DIR] [--legacy] [--throttle_mbit=20]

Builds a run of ``--classes`` classes from synthetic aggregates with InceptionV1's shape
(:mod:`synthetic.aggregates`; every graph, classes.json, details, no feature vis: the nodes are plain tiles)
into ``--run_dir`` (kept and reused when it already holds classes.json; default a temporary folder), serves
it with ``summit_tf.viewer`` and drives Debian's Chromium through Playwright. ``--legacy`` also measures the
same run with the format-1 classes.json (every class's top channels inline, no details files, as runs made
before the details files), side by side; ``--baseline=REV`` also the viewer of git revision REV on the
format-1 run, uncompressed (the "before" of issue #17, under the same load). The format-1 copy and the
baseline's files live in a temporary folder, removed at the end. Times are medians of ``--repeats`` page
loads, each a fresh navigation, the sides interleaved load by load; clicks and slider steps are timed in the
page, from the event to the next frame after the view has settled. The load average is printed with the
table.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from absl import flags

from benchmarks import machine
from summit_tf import atomic, store
from summit_tf.cli import entry_point, run_command
from summit_tf.graph.attribution import GraphConfig
from summit_tf.graph.generate import generate
from summit_tf.viewer import server as serve
from synthetic import aggregates as synthetic

FLAGS = flags.FlagValues()
flags.DEFINE_integer("classes", 1000, "classes of the synthetic run", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_string("run_dir", "", "run folder to build (or reuse when it has classes.json); "
                    "default: a temporary one", flag_values=FLAGS)
flags.DEFINE_integer("workers", 2, "processes building the graphs", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("repeats", 3, "page loads per measurement", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_bool("legacy", False, "also measure the run with a format-1 classes.json (top channels inline)",
                  flag_values=FLAGS)
flags.DEFINE_string("baseline", "", "git revision whose viewer (static/ folder) is measured side by side "
                    "on the format-1 run, served uncompressed as before, e.g. main; implies --legacy",
                    flag_values=FLAGS)
flags.DEFINE_float("throttle_mbit", 20.0, "download speed of the throttled first load (0: skip it)",
                   flag_values=FLAGS)
flags.DEFINE_string("chromium", "/usr/bin/chromium", "Chromium executable", flag_values=FLAGS)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--enable-precise-memory-info"]
# (label, key, goal, unit, issue's figure before this work on 1,000 classes)
ROWS = [
    ("first render: list + embedding + graph", "first_render_ms", 1000, "ms", "2,000-2,100 ms"),
    ("  at the throttled speed", "throttled_render_ms", None, "ms", "12 s blank"),
    ("  first paint of the loading state, throttled", "throttled_loading_ms", None, "ms", "no loading state"),
    ("transferred before the first render", "transferred_mb", 2.0, "MB", "25.1 MB"),
    ("  classes.json on the wire / decoded", "classes_json", None, "", "24.5 MB, uncompressed"),
    ("switch class from the list", "switch_ms", 100, "ms", "460-790 ms"),
    ("change the embedding's layer, to first frame", "layer_ms", 100, "ms", "360-527 ms"),
    ("  5 quick layer clicks until settled", "layer5_ms", None, "ms", "3,600-3,800 ms"),
    ("filter slider step", "filter_ms", 50, "ms", "86-354 ms"),
    ("page elements", "elements", None, "", "43,000"),
    ("JS heap after GC", "heap_mb", None, "MB", "89 MB"),
    ("class-list rows in the page", "rows", None, "", "1,000"),
]


def build_run(run_dir: Path, classes: int, workers: int) -> None:
    """Write a whole graph stage's output for ``classes`` synthetic InceptionV1-shaped classes."""
    agg = synthetic.inception_like(classes, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.h5"
        store.save(path, agg)
        with store.load(path) as loaded:
            generate(loaded, str(run_dir), loaded.classes.tolist(), [], GraphConfig(), seed=0,
                     umap_min_classes=16, workers=workers)


def legacy_copy(run_dir: Path, out: Path) -> Path:
    """The run as a format-1 run: top channels inline in classes.json, no details files, the same graphs
    (``out`` on ``run_dir``'s file system: they are hard links, as the server follows no link out of a run;
    linked again every time, so that a rebuilt run's graphs are never stale)."""
    out.mkdir(parents=True, exist_ok=True)
    doc = json.loads((run_dir / "classes.json").read_text())
    for record in doc["classes"]:
        details = json.loads((run_dir / "details" / f"class-{record['target_class']}.json").read_text())
        record["topChannels"] = details["topChannels"]
    doc["meta"].pop("format", None)
    atomic.write_json(out / "classes.json", doc)
    shutil.rmtree(out / "ag", ignore_errors=True)
    shutil.copytree(run_dir / "ag", out / "ag", copy_function=os.link)
    return out


SETTLED = """() => {
  const svg = document.querySelector('svg.graph-svg[data-classes]:not([data-busy])');
  const ok = document.body.dataset.ready === 'true' && svg && svg.dataset.classes !== ''
    && document.querySelectorAll('#class-list li.class-row').length > 0
    && document.querySelectorAll('circle.dot').length > 0;
  if (ok) window.firstRender ??= performance.now();
  return ok;
}"""

# Run an action in the page and resolve with the ms from it to the frame after `done()` holds.
TIMED = """async ([action, done]) => {
  const act = new Function(action), ready = new Function('return (' + done + ')()');
  const t0 = performance.now();
  act();
  await new Promise((resolve) => {
    const check = () => (ready() ? requestAnimationFrame(() => resolve()) : requestAnimationFrame(check));
    check();
  });
  return performance.now() - t0;
}"""

GRAPH_OF = """() => {
  const svg = document.querySelector('svg.graph-svg');
  return svg.dataset.classes === '%s' && !document.querySelector('#class-list[data-busy]');
}"""
EMBED_AT = "() => document.querySelector(\"svg.embedding-svg[data-layer='%s']\") !== null"
EMBED_SETTLED = ("() => document.querySelector(\"svg.embedding-svg[data-layer='%s']:not([data-busy])\")"
                 " !== null && !document.querySelector('#class-list[data-busy]')")


def first_load(page, url: str) -> dict:
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function(SETTLED, polling="raf", timeout=120_000)
    t = page.evaluate("window.firstRender")
    resources = page.evaluate("""() => performance.getEntriesByType('navigation').concat(
        performance.getEntriesByType('resource')).filter(e => e.responseEnd <= window.firstRender + 1)
        .map(e => [e.name, e.transferSize, e.decodedBodySize])""")
    classes = next((r for r in resources if r[0].endswith("/run/classes.json")), [None, 0, 0])
    return {"first_render_ms": t, "transferred_mb": sum(r[1] for r in resources) / 1e6,
            "classes_json": f"{classes[1] / 1e6:.2f} / {classes[2] / 1e6:.2f} MB"}


def throttled_load(context, url: str, mbit: float) -> dict:
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20,
                                                  "downloadThroughput": mbit * 1e6 / 8,
                                                  "uploadThroughput": mbit * 1e6 / 8})
    page.goto(url, wait_until="commit")
    page.wait_for_function("() => { const el = document.getElementById('loading');"
                           " if (el && !el.hidden && el.getBoundingClientRect().width > 0)"
                           " window.loadingShown ??= performance.now(); return !!window.loadingShown; }",
                           polling="raf", timeout=120_000)
    page.wait_for_function(SETTLED, polling="raf", timeout=300_000)
    out = {"throttled_render_ms": page.evaluate("window.firstRender"),
           "throttled_loading_ms": page.evaluate("window.loadingShown")}
    page.close()
    return out


def interactions(page, url: str, layers: list[str]) -> dict:
    """Class switches from the list, layer changes (one, then five quick ones) and filter steps, after a
    fresh load: the page rewrites its URL's fragment, and going to ``url`` from there would only change
    the fragment (the same document, its caches warm)."""
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function(SETTLED, polling="raf", timeout=120_000)
    page.wait_for_function("() => !document.querySelector('#class-list[data-busy]')", polling="raf")
    page.click("button[data-sort='acc-desc']")  # a fixed order, so the rows clicked are the same each load
    switch = []
    for k in range(5):
        rows = page.eval_on_selector_all("#class-list li.class-row", "els => els.map(e => e.dataset.class)")
        target = rows[3 + k]
        action = f"document.querySelector('#class-list li[data-class=\"{target}\"]').click()"
        switch.append(page.evaluate(TIMED, [action, GRAPH_OF % target]))
    layer = []
    for name in (layers[3], layers[5], layers[-1]):
        action = (f"document.querySelector(\"g.layer-glyph[data-layer='{name}']\")"
                  ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        layer.append(page.evaluate(TIMED, [action, EMBED_AT % name]))
        page.wait_for_function(EMBED_SETTLED % name, polling="raf")
    clicks = ";".join(f"document.querySelector(\"g.layer-glyph[data-layer='{name}']\").dispatchEvent("
                      "new MouseEvent('click', {bubbles: true}))" for name in layers[:5])
    quick = page.evaluate(TIMED, [clicks, EMBED_SETTLED % layers[4]])
    top = int(page.get_attribute("#filter-slider", "max"))
    filters = []
    for value in range(1, min(top, 12)):
        action = (f"const s = document.getElementById('filter-slider'); s.value = '{value}';"
                  " s.dispatchEvent(new Event('input', {bubbles: true}))")
        filters.append(page.evaluate(TIMED, [action, "() => true"]))
    cdp = page.context.new_cdp_session(page)
    cdp.send("HeapProfiler.collectGarbage")
    heap = cdp.send("Runtime.getHeapUsage")["usedSize"]
    return {"switch_ms": statistics.median(switch), "layer_ms": statistics.median(layer), "layer5_ms": quick,
            "filter_ms": statistics.median(filters), "heap_mb": heap / 1e6,
            "elements": page.evaluate("document.getElementsByTagName('*').length"),
            "rows": page.locator("#class-list li.class-row").count()}


def baseline_app(rev: str, out: Path) -> Path:
    """The viewer's static folder as of git revision ``rev``."""
    static = "summit_tf/viewer/static"
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "-C", str(repo), "archive", rev, static], capture_output=True)
    if done.returncode:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise ValueError(f"--baseline: git archive {rev} failed: {last}")
    data = done.stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(out, filter="data")
    return out / static


@dataclass
class Side:
    """One side of the comparison: a run served on its own port, in its own browser page."""

    page: object
    url: str
    layers: list[str]
    baseline: bool


@contextmanager
def served(browser, run_dir: Path, static_dir: Path | None = None) -> Iterator[Side]:
    """``run_dir`` served with the viewer of ``static_dir`` (default: this one), in a new browser context."""
    httpd = serve.ViewerServer(("127.0.0.1", 0), run_dir, static_dir or serve.STATIC_DIR)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        # the baseline goes uncompressed, as the server before issue #17 sent it
        headers = {"Accept-Encoding": "identity"} if static_dir else {}
        context = browser.new_context(viewport={"width": 1440, "height": 900}, extra_http_headers=headers)
        try:
            layers = json.loads((run_dir / "classes.json").read_text())["meta"]["layers"]
            yield Side(context.new_page(), f"http://127.0.0.1:{httpd.server_address[1]}/#class=0", layers,
                       static_dir is not None)
        finally:
            context.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


def measure(sides: dict[str, Side], repeats: int, throttle: float) -> dict[str, dict]:
    """Every side's figures: first loads, then interactions, each ``repeats`` times, the sides interleaved."""
    loads = machine.interleaved({name: functools.partial(first_load, side.page, side.url)
                                 for name, side in sides.items()}, repeats)
    runs = machine.interleaved({name: functools.partial(interactions, side.page, side.url, side.layers)
                                for name, side in sides.items()}, repeats)
    results = {}
    for name, side in sides.items():
        out = {key: statistics.median(r[key] for r in loads[name])
               for key in ("first_render_ms", "transferred_mb")}
        out["classes_json"] = loads[name][-1]["classes_json"]
        for key in runs[name][0]:
            out[key] = statistics.median(r[key] for r in runs[name])
        if throttle > 0 and not side.baseline:  # the baseline has no loading state to wait for
            out.update(throttled_load(side.page.context, side.url, throttle))
        results[name] = out
    return results


def sides(run_dir: Path, work: Path, legacy: bool, baseline: str) -> dict[str, tuple[Path, Path | None]]:
    """The runs measured, as (run folder, viewer static folder or None: this one); the format-1 copy and the
    baseline's viewer written under ``work``."""
    runs: dict[str, tuple[Path, Path | None]] = {"format 2": (run_dir, None)}
    if legacy or baseline:
        runs["format 1"] = (legacy_copy(run_dir, work / "format1"), None)
    if baseline:
        runs[f"{baseline[:10]}, fmt 1"] = (runs["format 1"][0], baseline_app(baseline, work / "baseline"))
    return runs


def measure_in_chromium(runs: dict[str, tuple[Path, Path | None]], chromium: str, repeats: int,
                        throttle: float) -> dict[str, dict]:
    """:func:`measure` of ``runs`` in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            with ExitStack() as stack:
                return measure({name: stack.enter_context(served(browser, path, static))
                                for name, (path, static) in runs.items()}, repeats, throttle)
        finally:
            browser.close()


def show(results: dict[str, dict], throttle: float, load: str) -> None:
    names = list(results)
    print(f"the sides measured interleaved, {load}")
    head = f"{'measure':46} " + " ".join(f"{n:>16}" for n in names) + f" {'goal':>9}  before (issue #17)"
    print(head)
    print("-" * len(head))
    for label, key, goal, unit, before in ROWS:
        if key.startswith("throttled") and throttle <= 0:
            continue
        cells = []
        for name in names:
            v = results[name].get(key)
            text = v if isinstance(v, str) else ("-" if v is None else f"{v:,.1f} {unit}".strip())
            if goal is not None and isinstance(v, float | int):
                text += " ok" if v < goal else " !!"
            cells.append(f"{text:>16}")
        goal_text = f"< {goal:g} {unit}" if goal is not None else ""
        label = label.replace("the throttled speed", f"{throttle:g} Mbit/s")
        print(f"{label:46} " + " ".join(cells) + f" {goal_text:>9}  {before}")


def main(argv: list[str]) -> int:
    return run_command(FLAGS, argv, __doc__ or "", report, logs=False)


def report() -> None:
    given = Path(FLAGS.run_dir).resolve() if FLAGS.run_dir else None
    if given:
        given.parent.mkdir(parents=True, exist_ok=True)
    # beside a given run: the format-1 copy's hard links need its file system
    with tempfile.TemporaryDirectory(prefix="viewer-bench-", dir=given.parent if given else None) as tmp:
        work = Path(tmp)
        run_dir = given or work / "run"
        if not (run_dir / "classes.json").is_file():
            t0 = time.perf_counter()
            build_run(run_dir, FLAGS.classes, FLAGS.workers)
            print(f"built a {FLAGS.classes}-class run in {time.perf_counter() - t0:.0f} s: {run_dir}",
                  flush=True)
        size = (run_dir / "classes.json").stat().st_size
        print(f"classes.json {size / 1e6:.2f} MB; details files "
              f"{sum(p.stat().st_size for p in (run_dir / 'details').glob('*.json')) / 1e6:.1f} MB in all")
        runs = sides(run_dir, work, FLAGS.legacy, FLAGS.baseline)
        before = machine.load()
        results = measure_in_chromium(runs, FLAGS.chromium, FLAGS.repeats, FLAGS.throttle_mbit)
        show(results, FLAGS.throttle_mbit, machine.since(before))


if __name__ == "__main__":
    entry_point(main)()
