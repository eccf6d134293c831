"""The viewer in headless Chromium (Debian's `chromium`, driven by Playwright) against a served run directory.

No fixed sleeps: tests wait on the state the viewer publishes in the DOM (``body[data-ready]``, the graph's
``data-classes``, ``data-busy`` on the graph and embedding SVGs while they move or load images). Numbers and
colours the viewer defines are read from it, not copied. Skipped only when Chromium or Playwright is missing
outside CI; in CI that is a failure.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import threading
import xml.etree.ElementTree as ET
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from summit_tf.viewer import export_site
from summit_tf.viewer import server as serve

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _missing("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def _start(httpd: ThreadingHTTPServer) -> str:
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/"


@contextlib.contextmanager
def served(run_dir: Path):
    """The viewer over ``run_dir`` on a free local port: its base URL while the block runs."""
    httpd = serve.make_server(run_dir, "127.0.0.1", 0)
    try:
        yield _start(httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def run_dir(small_run) -> Path:
    """A real run (MobileNetV1 over a slice of Imagenette, made by the quick start's pipeline)."""
    return small_run


@pytest.fixture(scope="module")
def base_url(run_dir):
    with served(run_dir) as url:
        yield url


@pytest.fixture(scope="module")
def tab(browser):
    """One tab for the module (opening one costs more than most tests' steps); it records console errors
    and uncaught exceptions in ``tab.errors``."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda msg: msg.type == "error" and pg.errors.append(msg.text))
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    yield pg
    context.close()


@pytest.fixture
def page(tab):
    """The tab on a blank document, pointer in a corner (nothing hovered once a test loads the viewer),
    no errors recorded."""
    tab.mouse.move(0, 0)
    tab.goto("about:blank")
    tab.errors.clear()
    return tab


def classes_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "classes.json").read_text())


def graph_of(run_dir: Path, target: int) -> tuple[dict[str, int], set[str]]:
    """Nodes (``layer:channel`` -> count) and edges (``upper>lower``) of ``ag-<target>.json``."""
    ag = json.loads((run_dir / "ag" / f"ag-{target}.json").read_text())
    layers = list(ag)  # last layer first
    nodes = {f"{layer}:{n['channel']}": n["count"] for layer in layers for n in ag[layer]}
    edges = {f"{layer}:{n['channel']}>{layers[i + 1]}:{p['prev_channel']}"
             for i, layer in enumerate(layers) for n in ag[layer] for p in n["prev_channels"]}
    return nodes, edges


@pytest.fixture(scope="module")
def picks(run_dir) -> SimpleNamespace:
    """Classes chosen from the run itself: A has the largest graph, B shares the most channels with A."""
    data = classes_json(run_dir)
    ids = [c["target_class"] for c in data["classes"]]
    kept = {t: set(graph_of(run_dir, t)[0]) for t in ids}
    a = max(ids, key=lambda t: (len(kept[t]), -t))
    b = max((t for t in ids if t != a), key=lambda t: (len(kept[a] & kept[t]), -t))
    c = next(t for t in ids if t not in (a, b))
    names = {cls["target_class"]: cls["name"].replace("_", " ") for cls in data["classes"]}
    return SimpleNamespace(a=a, b=b, c=c, name=names)


def wait_until(page, selector: str) -> None:
    """Wait for ``selector`` to match, checked every frame (wait_for_selector's polls back off to 500 ms)."""
    page.wait_for_function("s => document.querySelector(s) !== null", arg=selector)


def wait_for_graph(page, classes: str | None = None) -> None:
    """Wait until the graph of ``classes`` ("a" or "a,b"; any if None) is drawn, still and has its images."""
    drawn = f"[data-classes='{classes}']" if classes else "[data-classes]"
    wait_until(page, f"svg.graph-svg{drawn}:not([data-busy])")


def open_viewer(page, url: str, classes: str | None = None) -> None:
    page.goto(url)
    wait_until(page, "body[data-ready='true']")
    wait_for_graph(page, classes)


def viewer_exports(page, module: str, *names: str) -> dict:
    """Constants a viewer module exports, from the instance the page runs."""
    script = ("async ([path, names]) => { const m = await import(new URL(path, document.baseURI).href);"
              " return Object.fromEntries(names.map(n => [n, m[n]])); }")
    return page.evaluate(script, [f"js/{module}", list(names)])


def finish_css_transitions(page) -> None:
    """Wait for the page's CSS transitions (the hover fade); the edge flow animation loops forever."""
    page.evaluate("() => Promise.allSettled(document.getAnimations()"
                  ".filter(a => a.effect.getComputedTiming().endTime !== Infinity).map(a => a.finished))")


def graph_keys(page, selector: str = "g.node") -> list[str]:
    script = "els => els.map(e => e.dataset.key || (e.dataset.source + '>' + e.dataset.target))"
    return page.eval_on_selector_all(selector, script)


def test_page_loads_without_console_errors(page, base_url, run_dir):
    data = classes_json(run_dir)
    requested = []

    def record(request):
        requested.append(request.url)

    page.on("request", record)
    open_viewer(page, base_url)
    meta = data["meta"]
    assert page.inner_text("#stat-model") == meta["model"]
    assert page.inner_text("#stat-classes") == str(len(data["classes"]))
    assert page.inner_text("#stat-images") == f"{meta['num_images']:,}"
    assert page.locator("circle.dot").count() == len(data["classes"])
    assert page.locator("#class-list li.class-row").count() == len(data["classes"])
    glyphs = page.eval_on_selector_all("g.layer-glyph", "els => els.map(e => e.dataset.layer)")
    assert glyphs == meta["layers"]
    assert page.errors == []  # open_viewer waited for the graph's images, the last requests of the page
    page.remove_listener("request", record)
    assert requested and all(url.startswith((base_url, "data:", "blob:")) for url in requested)


def test_search_then_select_draws_the_expected_graph(page, base_url, run_dir, picks):
    open_viewer(page, base_url)
    page.keyboard.press("/")  # the search shortcut
    page.keyboard.type(picks.name[picks.b].lower())
    options = page.locator("#class-search-list li[role='option']")
    options.first.wait_for()
    assert picks.name[picks.b] in options.first.inner_text()
    page.keyboard.press("Enter")
    wait_for_graph(page, str(picks.b))
    wait_for_list(page)
    nodes, edges = graph_of(run_dir, picks.b)
    assert sorted(graph_keys(page)) == sorted(nodes)
    assert sorted(graph_keys(page, "g.edge")) == sorted(edges)
    counts = page.eval_on_selector_all("g.node", "els => els.map(e => [e.dataset.key, +e.dataset.count])")
    assert dict(counts) == nodes
    assert page.inner_text("#info-name") == picks.name[picks.b]
    assert f"class={picks.b}" in page.url
    assert page.get_attribute("#class-list li.class-row:first-child", "data-class") == str(picks.b)
    assert page.errors == []


def test_hover_node_shows_examples_and_scrubs_diversity(page, base_url, run_dir, picks):
    open_viewer(page, base_url + f"#class={picks.a}", str(picks.a))
    nodes, _ = graph_of(run_dir, picks.a)
    key = max(nodes, key=nodes.get)
    layer, channel = key.split(":")
    node = page.locator(f"g.node[data-key='{key}']")
    node.hover()
    card = page.locator("#hovercard")
    card.wait_for(state="visible")
    assert card.get_attribute("data-key") == key
    srcs = page.eval_on_selector_all("#hovercard img.example", "els => els.map(e => e.getAttribute('src'))")
    shown = classes_json(run_dir)["meta"]["feature_vis"]
    assert srcs == [f"run/feature-vis/dataset-p/{layer}-{channel}-dataset-p-{i}.jpg"
                    for i in range(shown["dataset_examples"])]
    diversity = shown["diversity"]
    assert diversity > 1
    # the help says how to scrub without a count of its own: the run has its own number of images
    assert not re.search(r"\b(?:one|two|three|four|five|six|seven|eight|\d+) diversity images",
                         page.text_content("#help-dialog"))
    page.wait_for_function("[...document.querySelectorAll('#hovercard img.example')]"
                           ".every(i => i.naturalWidth > 0)")
    # everything off the paths through the node fades; the node itself stays
    assert "focused" in page.get_attribute("svg.graph-svg", "class")
    finish_css_transitions(page)
    faded = page.locator("g.node:not(.on-path)")
    assert faded.count() > 0
    assert float(faded.first.evaluate("e => getComputedStyle(e).opacity")) < 0.5
    assert node.evaluate("e => getComputedStyle(e).opacity") == "1"
    # moving across the channel scrubs through its diversity images
    img = node.locator("image.node-img")
    box = img.bounding_box()
    seen = []
    for d in range(diversity):
        page.mouse.move(box["x"] + box["width"] * (d + 0.5) / diversity, box["y"] + box["height"] / 2)
        seen.append(img.get_attribute("href"))
    assert seen == [f"run/feature-vis/diversity-{d}/{layer}-{channel}-diversity-{d}.jpg"
                    for d in range(diversity)]
    page.mouse.move(5, 5)
    card.wait_for(state="hidden")
    assert img.get_attribute("href") == f"run/feature-vis/channel/{layer}-{channel}-channel.jpg"
    assert page.errors == []


def test_hover_edge_shows_both_ends(page, base_url, run_dir, picks):
    open_viewer(page, base_url + f"#class={picks.a}", str(picks.a))
    edge = page.locator("g.edge").first
    source, target = edge.get_attribute("data-source"), edge.get_attribute("data-target")
    edge.locator("path.edge-hit").dispatch_event("mouseenter")
    card = page.locator("#hovercard")
    card.wait_for(state="visible")
    srcs = page.eval_on_selector_all("#hovercard img.example", "els => els.map(e => e.getAttribute('src'))")
    shown = classes_json(run_dir)["meta"]["feature_vis"]["dataset_examples"]
    assert len(srcs) == 2 * shown
    for key in (source, target):
        layer, channel = key.split(":")
        assert f"run/feature-vis/dataset-p/{layer}-{channel}-dataset-p-0.jpg" in srcs
    on_path = set(graph_keys(page, "g.node.on-path"))
    assert on_path == {source, target}


def test_filter_slider_hides_nodes_below_threshold(page, base_url, run_dir, picks):
    open_viewer(page, base_url + f"#class={picks.a}", str(picks.a))
    nodes, edges = graph_of(run_dir, picks.a)
    counts = sorted(nodes.values())
    threshold = counts[len(counts) // 2]
    assert page.get_attribute("#filter-slider", "max") == str(max(counts))
    page.locator("#filter-slider").fill(str(threshold))
    shown = set(graph_keys(page, "g.node:not([display='none'])"))
    assert shown == {k for k, c in nodes.items() if c >= threshold}
    assert set(graph_keys(page, "g.node[data-hidden='true']")) == set(nodes) - shown
    shown_edges = set(graph_keys(page, "g.edge:not([display='none'])"))
    assert shown_edges == {e for e in edges if all(end in shown for end in e.split(">"))}
    assert f"≥ {threshold}" in page.inner_text("#filter-value")
    # once the nodes have moved, each row of the kept ones is centred, spaced by the width slider's value
    wait_for_graph(page, str(picks.a))
    gap = float(page.input_value("#width-slider"))
    read = "els => els.map(e => [e.dataset.layer, e.getAttribute('transform')])"
    rows: dict[str, list[float]] = {}
    for layer, transform in page.eval_on_selector_all("g.node:not([display='none'])", read):
        rows.setdefault(layer, []).append(float(re.fullmatch(r"translate\(([^,]+),\s*[^)]+\)", transform)[1]))
    for xs in rows.values():
        assert sorted(xs) == pytest.approx([(i - (len(xs) - 1) / 2) * gap for i in range(len(xs))], abs=0.01)
    page.locator("#filter-slider").fill("0")
    assert page.locator("g.node:not([display='none'])").count() == len(nodes)


def test_layer_switch_moves_embedding_dots(page, base_url, run_dir, picks):
    data = classes_json(run_dir)
    layers = data["meta"]["layers"]

    def spread(layer):
        xy = [c["embed"][layer] for c in data["classes"]]
        return min(max(p[k] for p in xy) - min(p[k] for p in xy) for k in (0, 1))

    # a layer whose layout is not degenerate (on a tiny run, classes can share one channel in early layers)
    first, last = next(layer for layer in layers[:-1] if spread(layer) > 1e-6), layers[-1]
    open_viewer(page, base_url + f"#class={picks.a}", str(picks.a))
    read = "els => els.map(e => [+e.dataset.class, +e.getAttribute('cx'), +e.getAttribute('cy')])"
    before = page.eval_on_selector_all("circle.dot", read)
    # a move animates over many frames; a jump would set each dot's cx once
    page.evaluate("""() => { window.cxChanges = 0;
        new MutationObserver(changes => { window.cxChanges += changes.length; }).observe(
            document.querySelector('svg.embedding-svg'), {subtree: true, attributeFilter: ['cx']}); }""")
    page.locator(f"g.layer-glyph[data-layer='{first}']").click()
    page.wait_for_function(f"location.hash.includes('layer={first}')")
    wait_until(page, f"svg.embedding-svg[data-layer='{first}']:not([data-busy])")
    after = page.eval_on_selector_all("circle.dot", read)
    assert after != before
    assert page.evaluate("window.cxChanges") > 3 * len(after)
    view = viewer_exports(page, "embedding.js", "SIZE", "MARGIN")
    lo, span = view["MARGIN"], view["SIZE"] - 2 * view["MARGIN"]
    xs = [c["embed"][first][0] for c in data["classes"]]
    ys = [c["embed"][first][1] for c in data["classes"]]
    expected = {c["target_class"]: (lo + span * (c["embed"][first][0] - min(xs)) / (max(xs) - min(xs)),
                                    lo + span - span * (c["embed"][first][1] - min(ys)) / (max(ys) - min(ys)))
                for c in data["classes"]}
    for target, cx, cy in after:
        assert cx == pytest.approx(expected[target][0], abs=0.01)
        assert cy == pytest.approx(expected[target][1], abs=0.01)
    assert page.get_attribute(f"g.layer-glyph[data-layer='{first}']", "class").endswith("selected")
    assert last not in page.inner_text("#layer-caption")
    assert page.errors == []


def top_channels(run_dir: Path, target: int) -> dict:
    """A class's top channels per layer, from its details file (format 2) or classes.json (format 1)."""
    details = run_dir / "details" / f"class-{target}.json"
    if details.is_file():
        return json.loads(details.read_text())["topChannels"]
    return next(c for c in classes_json(run_dir)["classes"] if c["target_class"] == target)["topChannels"]


def wait_for_list(page) -> None:
    """Wait until the class list is sorted with the selected class's similarity row."""
    wait_until(page, "body[data-ready='true'] #class-list:not([data-busy])")


def test_similarity_sort_is_cosine_of_top_channels(page, base_url, run_dir, picks):
    data = classes_json(run_dir)
    layer = data["meta"]["layers"][len(data["meta"]["layers"]) // 2]
    open_viewer(page, base_url + f"#class={picks.a}&layer={layer}", str(picks.a))
    wait_for_list(page)

    def cosine(a, b):
        va, vb = dict(map(tuple, a[layer])), dict(map(tuple, b[layer]))
        dot = sum(v * vb.get(k, 0) for k, v in va.items())
        return dot / (sum(v * v for v in va.values()) ** 0.5 * sum(v * v for v in vb.values()) ** 0.5)

    ref = top_channels(run_dir, picks.a)
    # the run ships cosines rounded to 1e-4 (format 2): equal after rounding, the class id decides
    rounded = {c["target_class"]: round(1e4 * cosine(ref, top_channels(run_dir, c["target_class"])))
               for c in data["classes"]}
    expected = sorted(data["classes"], key=lambda c: (-rounded[c["target_class"]], c["target_class"]))
    rows = page.eval_on_selector_all("#class-list li.class-row", "els => els.map(e => +e.dataset.class)")
    assert rows == [c["target_class"] for c in expected]
    page.click("button[data-sort='acc-asc']")
    rows = page.eval_on_selector_all("#class-list li.class-row", "els => els.map(e => +e.dataset.class)")
    by_acc = sorted(data["classes"], key=lambda c: (c["topOneAcc"], c["target_class"]))
    assert rows == [c["target_class"] for c in by_acc]
    page.click("button[data-sort='acc-desc']")
    rows = page.eval_on_selector_all("#class-list li.class-row", "els => els.map(e => +e.dataset.class)")
    by_acc = sorted(data["classes"], key=lambda c: (-c["topOneAcc"], c["target_class"]))
    assert rows == [c["target_class"] for c in by_acc]
    page.hover("#class-list li.class-row:nth-child(3)")
    hovered = page.get_attribute("#class-list li.class-row:nth-child(3)", "data-class")
    assert "hovered" in page.get_attribute(f"circle.dot[data-class='{hovered}']", "class")


def test_compare_mode_colours_shared_nodes(page, base_url, run_dir, picks):
    a, b = picks.a, picks.b
    open_viewer(page, base_url + f"#class={a}", str(a))
    page.click("#compare-search")
    page.keyboard.type(picks.name[b].lower())
    page.locator("#compare-search-list li[role='option']").first.wait_for()
    page.keyboard.press("Enter")
    wait_for_graph(page, f"{a},{b}")
    a_nodes, a_edges = graph_of(run_dir, a)
    b_nodes, b_edges = graph_of(run_dir, b)
    shared = set(a_nodes) & set(b_nodes)
    assert shared, "the two most similar graphs of the run share channels"
    assert set(graph_keys(page)) == set(a_nodes) | set(b_nodes)
    assert set(graph_keys(page, "g.node[data-member='both']")) == shared
    assert set(graph_keys(page, "g.node[data-member='a']")) == set(a_nodes) - shared
    assert set(graph_keys(page, "g.node[data-member='b']")) == set(b_nodes) - shared
    assert set(graph_keys(page, "g.edge[data-member='both']")) == a_edges & b_edges
    # each ring has the colour of its legend entry (only a, only b, shared), and the three differ
    swatches = dict(page.eval_on_selector_all(
        "#legend li[data-member] .swatch", "els => els.map(e => [e.closest('li').dataset.member,"
        " getComputedStyle(e).backgroundColor])"))
    assert sorted(swatches) == ["a", "b", "both"] and len(set(swatches.values())) == 3
    rings = page.eval_on_selector_all("g.node rect.node-ring", "els => els.map(e =>"
                                      " [e.parentNode.dataset.member, getComputedStyle(e).stroke])")
    assert all(colour == swatches[member] for member, colour in rings)
    chips = page.eval_on_selector_all("#shared-list li.shared-chip", "els => els.map(e => e.dataset.key)")
    assert set(chips) == shared
    assert f"compare={b}" in page.url
    assert "selected" in page.get_attribute(f"circle.dot[data-class='{a}']", "class")
    assert "compare" in page.get_attribute(f"circle.dot[data-class='{b}']", "class")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(f"g.node[data-key='{sorted(shared)[0]}']").hover()
    page.locator("#hovercard").wait_for(state="visible")
    page.wait_for_function("[...document.querySelectorAll('#hovercard img')].every(i => i.complete)")
    finish_css_transitions(page)
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))
    if os.environ.get("SUMMIT_TF_DOCS_SCREENSHOT"):
        (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "images" / "viewer.png"))
    page.click("#compare-clear")
    wait_for_graph(page, str(a))
    assert "compare=" not in page.url
    assert page.errors == []


def test_url_hash_restores_and_follows_state(page, base_url, run_dir, picks):
    a, b, c = picks.a, picks.b, picks.c
    layer = classes_json(run_dir)["meta"]["layers"][1]
    open_viewer(page, base_url + f"#class={b}&layer={layer}&compare={c}", f"{b},{c}")
    assert page.inner_text("#info-name") == picks.name[b]
    assert page.inner_text("#compare-name") == picks.name[c]
    assert page.get_attribute(f"g.layer-glyph[data-layer='{layer}']", "class").endswith("selected")
    page.reload()
    wait_for_graph(page, f"{b},{c}")
    page.locator(f"#class-list li.class-row[data-class='{a}']").click()
    wait_for_graph(page, f"{a},{c}")
    page.go_back()  # selecting a class is a history step
    wait_for_graph(page, f"{b},{c}")
    page.evaluate("location.hash = '#class=nonsense&layer=<script>&compare=-5'")
    # bad values fall back: the class and layer stay, the comparison ends, the address is rewritten
    page.wait_for_function(f"location.hash === '#class={b}&layer={layer}'")
    wait_for_graph(page, str(b))
    assert page.errors == []


def test_export_svg_and_png(page, base_url, run_dir, picks, tmp_path):
    open_viewer(page, base_url + f"#class={picks.a}", str(picks.a))
    nodes, edges = graph_of(run_dir, picks.a)
    with page.expect_download() as info:
        page.click("#export-svg")
    svg_path = tmp_path / "graph.svg"
    info.value.save_as(svg_path)
    assert info.value.suggested_filename == f"summit-{file_slug(picks.name[picks.a])}.svg"
    root = ET.parse(svg_path).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    groups = root.findall(".//svg:g", ns)
    exported_nodes = [g for g in groups if "node" in g.get("class", "").split()]
    exported_edges = [g for g in groups if "edge" in g.get("class", "").split()]
    assert len(exported_nodes) == len(nodes) and len(exported_edges) == len(edges)
    hrefs = [img.get("href") for img in root.iter("{http://www.w3.org/2000/svg}image")]
    assert len(hrefs) == len(nodes) and all(h.startswith("data:image/jpeg;base64,") for h in hrefs)

    with page.expect_download() as info:
        page.click("#export-png")
    png_path = tmp_path / "graph.png"
    info.value.save_as(png_path)
    from PIL import Image
    with Image.open(png_path) as image:
        assert image.format == "PNG" and min(image.size) > 200
    # a canvas the browser cannot encode (too large for it): said, and the button works again
    page.evaluate("() => { HTMLCanvasElement.prototype.toBlob = function (done) { done(null); }; }")
    page.click("#export-png")
    assert "Could not export the graph as PNG" in notice(page, "export")
    page.wait_for_function("!document.getElementById('export-png').disabled")
    assert page.errors == []


def file_slug(name: str) -> str:
    """A class name as the viewer's export file names spell it."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def exported_title(path: Path) -> str:
    """The title an exported SVG carries (its last text element)."""
    return ET.parse(path).getroot().findall("{http://www.w3.org/2000/svg}text")[-1].text


def test_missing_files_degrade_gracefully(page, run_dir, picks, tmp_path):
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "run"))
    nodes, _ = graph_of(run_dir, picks.a)
    key = next(iter(nodes))
    layer, channel = key.split(":")
    (run_dir / "feature-vis" / "channel" / f"{layer}-{channel}-channel.jpg").unlink()
    (run_dir / "ag" / f"ag-{picks.c}.json").unlink()
    with served(run_dir) as url:
        open_viewer(page, url + f"#class={picks.a}", str(picks.a))
        assert graph_keys(page, "g.node:has(image.node-img[visibility='hidden'])") == [key]
        assert page.locator(f"g.node[data-key='{key}'] text.node-missing").text_content() == channel
        page.goto(url + f"#class={picks.c}")
        page.locator("#graph-message").wait_for(state="visible")
        assert f"ag-{picks.c}.json" in page.inner_text("#graph-message")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_exported_site_works_on_a_plain_static_server(page, run_dir, picks, tmp_path):
    site = tmp_path / "site"
    export_site(run_dir, site)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    try:
        url = _start(httpd) + f"#class={picks.a}"
        open_viewer(page, url, str(picks.a))
        nodes, _ = graph_of(run_dir, picks.a)
        assert page.locator("g.node").count() == len(nodes)
        assert page.locator("image.node-img[visibility='hidden']").count() == 0  # every image loaded
        assert page.errors == []
    finally:
        httpd.shutdown()
        httpd.server_close()
    # opened as a file, the page says how to serve it instead of staying blank
    page.goto((site / "index.html").as_uri())
    page.locator("#load-error").wait_for(state="visible")
    assert "served over HTTP" in page.inner_text("#load-error")


# --- partial runs, bad addresses and bad graph files ----------------------------------------------------


@pytest.fixture(scope="module")
def partial_run(run_dir, picks, tmp_path_factory) -> Path:
    """The real run without feature vis and dataset examples, one class's graph and details missing, one
    class's graph truncated."""
    out = Path(shutil.copytree(run_dir, tmp_path_factory.mktemp("partial") / "run",
                               ignore=shutil.ignore_patterns("feature-vis", "aggregates.h5", "figures")))
    (out / "ag" / f"ag-{picks.c}.json").unlink()
    (out / "details" / f"class-{picks.c}.json").unlink()
    text = (out / "ag" / f"ag-{picks.b}.json").read_text()
    (out / "ag" / f"ag-{picks.b}.json").write_text(text[: len(text) // 2])
    return out


@pytest.fixture(scope="module")
def partial_url(partial_run):
    with served(partial_run) as url:
        yield url


def notice(page, kind: str) -> str:
    box = page.locator(f"#notices .notice[data-kind='{kind}']")
    box.wait_for()
    return box.inner_text()


def test_partial_run_draws_plain_nodes_and_requests_no_missing_file(page, partial_url, partial_run, picks):
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    open_viewer(page, partial_url + f"#class={picks.a}", str(picks.a))
    nodes, _ = graph_of(partial_run, picks.a)
    assert sorted(graph_keys(page)) == sorted(nodes)
    assert page.locator("g.node[data-plain='true']").count() == len(nodes)
    assert page.locator("g.node image.node-img[href]").count() == 0
    # hovering a channel shows its counts, no empty image sections
    page.locator("g.node").first.hover()
    page.locator("#hovercard").wait_for(state="visible")
    assert page.locator("#hovercard img").count() == 0
    assert "dataset examples" not in page.inner_text("#hovercard")
    page.mouse.move(0, 0)
    # a class without a graph is marked in the list and says so, without asking for the file
    assert "no graph" in page.inner_text(f"#class-list li[data-class='{picks.c}']")
    page.locator(f"#class-list li[data-class='{picks.c}']").click()
    page.locator("#graph-message").wait_for(state="visible")
    assert f"ag/ag-{picks.c}.json" in page.inner_text("#graph-message")
    assert f"details/class-{picks.c}.json is not in the run" in notice(page, "similarity")
    # without its similarity row the list is in class order with empty bars, not class A's order and bars
    wait_for_list(page)
    assert rows_shown(page) == sorted(c["target_class"] for c in classes_json(partial_run)["classes"])
    bars = page.eval_on_selector_all("#class-list .row-sim > span",
                                     "els => els.map(e => parseFloat(e.style.width))")
    assert set(bars) == {0}
    # no graph drawn: nothing to export (the previous class's drawing is still in the page, hidden)
    assert page.locator("#export-svg").is_disabled() and page.locator("#export-png").is_disabled()
    assert page.locator("#info-faith-block").is_hidden()
    missing = ("/feature-vis/", f"ag-{picks.c}.json", f"class-{picks.c}.json", "faithfulness.json")
    assert not [u for u in requested if any(m in u for m in missing)]
    assert page.errors == []


def test_bad_graph_files_and_addresses_are_said(page, partial_url, partial_run, picks):
    a, b = picks.a, picks.b
    open_viewer(page, partial_url + f"#class={a}&compare={b}", str(a))
    # compare mode with one broken graph: the other is drawn, the broken one is named with its problem
    text = notice(page, "graph")
    assert f"ag/ag-{b}.json" in text and f"class {b}" in text and "truncated" in text
    assert page.locator("g.node").count() == len(graph_of(partial_run, a)[0])
    # an export is of what is drawn: A alone, named so; plain tiles have no image to fetch
    requested = []

    def record(request):
        requested.append(request.url)

    page.on("request", record)
    with page.expect_download() as info:
        page.click("#export-svg")
    page.remove_listener("request", record)
    assert info.value.suggested_filename == f"summit-{file_slug(picks.name[a])}.svg"
    title = exported_title(info.value.path())
    assert picks.name[a] in title and picks.name[b] not in title and " vs " not in title
    assert not [u for u in requested if u.startswith("http")]
    page.goto(partial_url + f"#class={b}")
    page.locator("#graph-message").wait_for(state="visible")
    assert "not valid JSON" in page.inner_text("#graph-message")
    # valid JSON of the wrong shape: the file, the class and the entry at fault are named
    layer = classes_json(partial_run)["meta"]["layers"][-1]
    wrong = {layer: [{"channel": 5, "prev_channels": []}]}
    (partial_run / "ag" / f"ag-{b}.json").write_text(json.dumps(wrong))
    page.reload()
    page.locator("#graph-message").wait_for(state="visible")
    assert f"ag/ag-{b}.json of class {b}" in page.inner_text("#graph-message")
    assert f"layer {layer}, channel 5 has no count" in page.inner_text("#graph-message")
    # classes the run does not have, in the address
    page.goto("about:blank")
    open_viewer(page, partial_url + f"#class=99999&compare=nope&layer={layer}")
    text = notice(page, "address")
    assert '"99999"' in text and '"nope"' in text and "not in this run" in text
    assert page.errors == []


def test_crafted_classes_json_is_refused(page, run_dir, tmp_path):
    """A hosted export's classes.json is input: records of other shapes are named, none reaches the page's
    markup; a name with markup in it is shown as text."""
    doc = classes_json(run_dir)
    inject = '"><img src=x onerror="window.injected=1">'
    doc["classes"][0]["name"] = inject  # a string: allowed, shown as it is
    run = tmp_path / "run"
    run.mkdir()
    (run / "classes.json").write_text(json.dumps(doc))
    with served(run) as url:
        for field, value, problem in [("target_class", inject, "target_class is not a whole number"),
                                      ("probHist", [1, inject], "probHist is not a list of image counts")]:
            bad = json.loads(json.dumps(doc))
            bad["classes"][1][field] = value
            (run / "classes.json").write_text(json.dumps(bad))
            page.goto(url)
            page.locator("#load-error").wait_for(state="visible")
            text = page.inner_text("#load-error")
            assert "run/classes.json is malformed: classes[1]" in text and problem in text
            assert page.locator("#class-list li").count() == 0
        (run / "classes.json").write_text(json.dumps(doc))
        page.goto(url)
        wait_until(page, "body[data-ready='true'] #class-list:not([data-busy])")
        first = doc["classes"][0]["target_class"]
        assert page.inner_text("#info-name") == inject
        name = page.locator(f"#class-list li[data-class='{first}'] .row-name")
        assert name.evaluate("e => e.firstChild.textContent.trim()") == inject
        page.fill("#class-search", "img src")
        page.locator("#class-search-list li[role='option']").first.wait_for()
        assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("window.injected") is None


def test_only_recent_graphs_stay_loaded(page, base_url, picks):
    open_viewer(page, base_url + f"#class={picks.a}", str(picks.a))
    size = viewer_exports(page, "data.js", "CACHE_SIZE")["CACHE_SIZE"]
    # graphs of made-up classes, served by a stand-in fetch that records the paths asked for
    fetched = page.evaluate("""async (size) => {
        const data = await import(new URL('js/data.js', document.baseURI).href);
        const real = window.fetch;
        const seen = [];
        window.fetch = async (path) => { seen.push(String(path)); return new Response('{"L": []}'); };
        const load = (id) => data.loadGraph({ target_class: 100000 + id, label: '' }, ['L']);
        try {
            for (let id = 0; id <= size; id++) await load(id);  // one more than the cache keeps
            seen.length = 0;
            await load(size);  // the last loaded is still there
            await load(0);  // the first was let go
        } finally {
            window.fetch = real;
        }
        return seen; }""", size)
    assert fetched == ["run/ag/ag-100000.json"]


# --- many classes: the virtualized list, its scroll position, names and keys -----------------------------

def many_classes_run(path: Path, count: int = 300) -> Path:
    """The synthetic fixture run grown to ``count`` classes (format 1: top channels inline; the extra
    classes have no graph files), with ImageNet's duplicate names (crane, maillot) and golden retriever."""
    import numpy as np
    from viewer_fixture import make_run_dir

    from summit_tf import imagenet

    run = make_run_dir(path)
    doc = classes_json(run)
    rng = np.random.default_rng(3)
    have = {c["target_class"] for c in doc["classes"]}
    extra = [i for i in dict.fromkeys([134, 517, 638, 639, 207, *range(1000)]) if i not in have]
    template = doc["classes"][0]
    for target in extra[: count - len(have)]:
        doc["classes"].append({**template, "target_class": target, "synset": imagenet.synsets()[target],
                               "name": imagenet.short_name(target), "topOneAcc": float(rng.uniform()),
                               "embed": {layer: rng.uniform(0, 1, 2).round(4).tolist()
                                         for layer in doc["meta"]["layers"]}})
    doc["meta"]["num_classes"] = len(doc["classes"])
    (run / "classes.json").write_text(json.dumps(doc))
    return run


@pytest.fixture(scope="module")
def many_url(tmp_path_factory):
    with served(many_classes_run(tmp_path_factory.mktemp("many") / "run")) as url:
        yield url


def rows_shown(page) -> list[int]:
    return page.eval_on_selector_all("#class-list li.class-row", "els => els.map(e => +e.dataset.class)")


def rows_in_view(page) -> list[int]:
    return page.evaluate("""() => {
        const list = document.getElementById('class-list').getBoundingClientRect();
        return [...document.querySelectorAll('#class-list li.class-row')].filter(li => {
            const r = li.getBoundingClientRect();
            return r.bottom > list.top + 1 && r.top < list.bottom - 1; })
            .map(li => +li.dataset.class); }""")


def test_long_list_is_virtual_and_keeps_its_place(page, many_url):
    open_viewer(page, many_url + "#class=0", "0")
    wait_for_list(page)
    page.click("button[data-sort='acc-desc']")
    assert 0 < len(rows_shown(page)) < 60  # of 300 classes
    page.locator("#class-list").evaluate("el => el.scrollTop = 2000")
    page.wait_for_function("() => document.querySelector('#class-list li.class-row').dataset.index > 30")
    # the embedding marks the dots of the rows in view, and only those (a row showing under 2 px may go
    # either way)
    page.wait_for_function("""() => {
        const list = document.getElementById('class-list').getBoundingClientRect();
        const listed = new Set([...document.querySelectorAll('circle.dot.listed')].map(e => e.dataset.class));
        const rows = [...document.querySelectorAll('#class-list li.class-row')];
        const shown = (li, px) => { const r = li.getBoundingClientRect();
            return Math.min(r.bottom, list.bottom) - Math.max(r.top, list.top) > px; };
        return listed.size > 5 && rows.filter(li => shown(li, 2)).every(li => listed.has(li.dataset.class))
            && [...listed].every(id => rows.some(li => li.dataset.class === id && shown(li, 0))); }""")
    target = rows_in_view(page)[3]
    row = page.locator(f"#class-list li[data-class='{target}']")
    top, scroll = row.bounding_box()["y"], page.locator("#class-list").evaluate("el => el.scrollTop")
    row.click()
    page.wait_for_function(f"location.hash.includes('class={target}&')")
    wait_for_list(page)
    assert page.locator("#class-list").evaluate("el => el.scrollTop") == scroll
    assert row.bounding_box()["y"] == top and "selected" in row.get_attribute("class")
    # the layer strip is a slider: arrow keys change the layer, the list stays where it was
    page.focus("#minimap")
    before = int(page.get_attribute("#minimap", "aria-valuenow"))
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"+document.getElementById('minimap').getAttribute('aria-valuenow') === {before}"
                           " - 1")
    wait_for_list(page)
    assert page.locator("#class-list").evaluate("el => el.scrollTop") == scroll
    # sorting by name keeps the selected row in view
    page.click("button[data-sort='alpha']")
    assert target in rows_in_view(page)
    names = page.eval_on_selector_all("#class-list li.class-row .row-name",
                                      "els => els.map(e => e.firstChild.textContent)")
    assert names == sorted(names, key=str.lower) or names == sorted(names, key=lambda n: n.casefold())
    # the arrow keys walk the list; Enter selects
    page.focus("#class-list")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    order = rows_shown(page)
    page.wait_for_function(f"location.hash.includes('class={order[order.index(target) + 2]}')")
    assert page.errors == []


@pytest.mark.parametrize("query", ["golden_retriever", "Golden-Retriever", "golden retriever"])
def test_search_ignores_case_and_separators(page, many_url, query):
    open_viewer(page, many_url + "#class=0", "0")
    page.fill("#class-search", query)
    option = page.locator("#class-search-list li[role='option']").first
    option.wait_for()
    assert option.locator(".option-label").inner_text() == "golden retriever"


def test_duplicate_names_are_told_apart(page, many_url):
    page.goto(many_url + "#class=134&compare=517")  # classes without graphs: nothing to wait for there
    wait_until(page, "body[data-ready='true']")
    assert page.inner_text("#info-name") == "crane (n02012849)"
    assert page.inner_text("#compare-name") == "crane (n03126707)"
    page.fill("#class-search", "maillot")
    options = page.locator("#class-search-list li[role='option'] .option-label")
    page.wait_for_function("document.querySelectorAll('#class-search-list li[role=option]').length === 2")
    assert sorted(options.all_inner_texts()) == ["maillot (n03710637)", "maillot (n03710721)"]


def test_compare_and_filtered_graphs_fit_the_panel(page, base_url, run_dir, picks):
    a, b = picks.a, picks.b
    open_viewer(page, base_url + f"#class={a}&compare={b}", f"{a},{b}")
    inside = """() => { const area = document.getElementById('graph-area').getBoundingClientRect();
        return [...document.querySelectorAll('g.node:not([display=none]) rect.node-bg')].every(el => {
            const r = el.getBoundingClientRect();
            return r.left >= area.left && r.right <= area.right
                && r.top >= area.top && r.bottom <= area.bottom; }); }"""
    assert page.evaluate(inside)
    scale = "() => document.querySelector('g.viewport').transform.baseVal.consolidate().matrix.a"
    before = page.evaluate(scale)
    counts = sorted(graph_of(run_dir, a)[0].values())
    page.locator("#filter-slider").fill(str(counts[-3]))  # a few channels left: fitted again, never smaller
    wait_for_graph(page, f"{a},{b}")
    assert page.evaluate(inside) and page.evaluate(scale) >= before
    page.set_viewport_size({"width": 1100, "height": 760})  # a smaller window: fitted again
    page.wait_for_function(f"({scale})() < {before}")
    wait_for_graph(page, f"{a},{b}")
    assert page.evaluate(inside)
    page.set_viewport_size({"width": 1440, "height": 900})
    # layer names are drawn at screen size, whatever the zoom
    sizes = page.eval_on_selector_all("g.layer-labels text.layer-name",
                                      "els => els.map(e => e.getBoundingClientRect().height)")
    assert sizes and min(sizes) >= 12


# --- skip edges (residual models) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def skip_run(run_dir, picks, tmp_path_factory) -> tuple[Path, set[str]]:
    """The real run without images, class A's graph given skip edges from each kept channel to the kept
    channels two layers below (the form ``graph/viewer_json.py`` writes for residual models)."""
    out = Path(shutil.copytree(run_dir, tmp_path_factory.mktemp("skips") / "run",
                               ignore=shutil.ignore_patterns("feature-vis", "aggregates.h5", "figures")))
    path = out / "ag" / f"ag-{picks.a}.json"
    ag = json.loads(path.read_text())
    layers = list(ag)  # last layer first
    expected = set()
    for upper, lower in zip(layers, layers[2:], strict=False):
        for n in ag[upper]:
            n["skip_channels"] = [{"layer": lower, "prev_channel": p["channel"], "inf": 1 + i}
                                  for i, p in enumerate(ag[lower][:2])]
            expected |= {f"{upper}:{n['channel']}>{lower}:{p['channel']}" for p in ag[lower][:2]}
    path.write_text(json.dumps(ag))
    assert expected
    # what experiments.faithfulness writes for the viewer, for class A only
    channels = {"size": 17, "drop_p_c": 0.4321, "drop_p_c_random": 0.0987, "drop_p_c_random_sd": 0.02,
                "faithfulness": 4.378, "z": 16.7, "specificity": 2.5}
    edges = {**channels, "drop_p_c": 0.1234, "drop_p_c_random": 0.004, "faithfulness": None, "z": 6.1}
    (out / "faithfulness.json").write_text(json.dumps(
        {"meta": {"mode": "mean"}, "classes": {str(picks.a): {"p_c": 0.9, "top1_c": 1.0, "channels": channels,
                                                               "edges": edges}}}))
    return out, expected


def test_skip_edges_and_faithfulness(page, skip_run, picks):
    run, expected = skip_run
    with served(run) as url:
        open_viewer(page, url + f"#class={picks.a}", str(picks.a))
        assert set(graph_keys(page, "g.edge.skip")) == expected
        _, layer_edges = graph_of(run, picks.a)
        assert set(graph_keys(page, "g.edge:not(.skip)")) == layer_edges
        dash = page.eval_on_selector("g.edge.skip path.edge-line", "p => getComputedStyle(p).strokeDasharray")
        assert dash not in ("", "none")
        # the run has faithfulness.json: class A shows its graph's ablation effect, class B (none) hides it
        page.locator("#info-faith-block").wait_for(state="visible")
        assert page.inner_text("#info-faith") == "0.432 vs 0.099 random (4.4x)"
        assert "z 6.1" in page.get_attribute("#info-faith-block", "title")
        page.locator(f"#class-list li[data-class='{picks.b}']").click()
        page.locator("#info-faith-block").wait_for(state="hidden")
        assert page.errors == []
