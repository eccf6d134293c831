// The viewer's state (selected class, layer, comparison class, sort order), kept in the URL hash so a view
// can be shared, and the wiring between the views. The graph named in the address is requested before the
// class list has arrived; a loading bar follows classes.json; problems (an unknown class in the address, a
// missing or malformed graph file) are said in notices instead of leaving an empty panel.

import { createCombobox } from "./combobox.js";
import { renderLegend, renderSharedList } from "./comparepanel.js";
import {
  displayName, faithfulnessOf, graphPath, hasGraph, loadGraph, loadRun, parseGraph, similarities, unionGraphs,
} from "./data.js";
import { createEmbedding, createMinimap } from "./embedding.js";
import { exportPNG, exportSVG } from "./export.js";
import { createGraphView } from "./graph.js";
import { createHovercard } from "./hovercard.js";
import { createSidebar } from "./sidebar.js";
import { escapeHTML, formatBytes, formatInt, formatPercent, histogramSVG } from "./ui.js";

const $ = (id) => document.getElementById(id);

function showLoadError(message) {
  const box = $("load-error");
  box.textContent = message;
  box.hidden = false;
}

function slug(text) {
  return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "class";
}

/** The address's class, compare class and layer, as written there (checked by update()). */
function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { selected: p.get("class"), compare: p.get("compare"), layer: p.get("layer") };
}

const classId = (text) => (text !== null && /^\d+$/.test(text) ? Number(text) : NaN);

/** A notice above the views; one per `kind`, replaced by the next of its kind, closed by its button. */
function notify(kind, message) {
  const box = $("notices");
  box.querySelector(`[data-kind="${kind}"]`)?.remove();
  if (!message) return;
  const item = document.createElement("div");
  item.className = "notice";
  item.dataset.kind = kind;
  const text = document.createElement("span");
  text.textContent = message;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "notice-close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => item.remove());
  item.append(text, close);
  box.append(item);
}

function showProgress(bytes) {
  $("loading-text").textContent = `Loading the run's classes… ${formatBytes(bytes)}`;
}

async function boot() {
  let run;
  try {
    // the graph named in the address is requested without waiting for the class list
    run = await loadRun(showProgress, classId(readHash().selected));
  } catch (error) {
    $("loading").hidden = true;
    showLoadError(`Could not load the run: ${error.message}. Start the viewer with ` +
      "`python -m summit_tf.serve --run_dir=DIR` on a directory that holds classes.json.");
    return;
  }
  $("loading").hidden = true;
  const { meta, classes } = run;
  const layers = meta.layers;
  const byId = new Map(classes.map((c) => [c.target_class, c]));
  const state = { selected: null, compare: null, layer: null, sort: "similarity" };
  let similarityToken = 0;
  let graphToken = 0;
  let drawn = null; // the classes of the graph on screen, {a, b}: what an export is named after; null: none
  let exporting = false;

  $("stat-model").textContent = meta.model ?? "–";
  $("stat-dataset").textContent = meta.dataset ?? "–";
  $("stat-classes").textContent = formatInt(meta.num_classes ?? classes.length);
  $("stat-images").textContent = formatInt(meta.num_images ?? classes.reduce((s, c) => s + (c.numOfInstances ?? 0), 0));
  $("stat-layers").textContent = formatInt(layers.length);
  $("run-config").textContent = JSON.stringify({ config: meta.config ?? {}, graph_config: meta.graph_config ?? {} }, null, 2);
  document.title = `${meta.model ?? "SUMMIT-TF"} · SUMMIT-TF viewer`;

  const hovercard = createHovercard($("hovercard"), $("graph-area"));
  const graph = createGraphView($("graph"), { hovercard });
  const minimap = createMinimap($("minimap"), { layers, channels: meta.channels, onLayer: (layer) => update({ layer }) });
  const highlight = (id) => { embedding.highlight(id); sidebar.highlight(id); };
  const embedding = createEmbedding($("embedding"), {
    classes, onSelect: (id) => update({ selected: id }, { push: true }), onHover: highlight,
  });
  const sidebar = createSidebar($("class-list"), {
    classes,
    onSelect: (id) => update({ selected: id }, { push: true }),
    onHover: highlight,
    onCompare: (id) => update({ compare: id }, { push: true }),
    onViewport: (ids, partial) => embedding.setListed(ids, partial),
  });
  const comboOptions = { items: () => classes, label: displayName,
    extra: (c) => [c.synset ?? "", `#${c.target_class}`, ...(hasGraph(c.target_class) ? [] : ["no graph"])] };
  createCombobox({ input: $("class-search"), list: $("class-search-list"), ...comboOptions,
    onSelect: (c) => update({ selected: c.target_class }, { push: true }) });
  createCombobox({ input: $("compare-search"), list: $("compare-search-list"), ...comboOptions,
    onSelect: (c) => update({ compare: c.target_class }, { push: true }) });

  function writeHash(push) {
    const p = new URLSearchParams();
    p.set("class", state.selected);
    p.set("layer", state.layer);
    if (state.compare !== null) p.set("compare", state.compare);
    const hash = `#${p}`;
    if (hash === location.hash) return;
    if (push) history.pushState(null, "", hash); else history.replaceState(null, "", hash);
  }

  function renderInfo() {
    const c = byId.get(state.selected);
    $("info-name").textContent = displayName(c);
    $("info-name").classList.toggle("no-graph", !hasGraph(c.target_class));
    $("info-name").title = `${c.synset ?? ""} (class ${c.target_class})`;
    $("info-images").textContent = formatInt(c.numOfInstances);
    $("info-acc").textContent = formatPercent(c.topOneAcc);
    $("info-hist").innerHTML = histogramSVG(c.probHist, 96, 20);
    const other = byId.get(state.compare);
    $("compare-active").hidden = !other;
    $("compare-clear").hidden = !other;
    $("compare-name").textContent = other ? displayName(other) : "";
    document.querySelector(".graph-panel").dataset.mode = other ? "compare" : "single";
    renderFaithfulness(c);
  }

  let faithToken = 0;
  /** The class's measured ablation effect, when the run has one: its graph's channels vs random sets. */
  async function renderFaithfulness(c) {
    const token = ++faithToken;
    const block = $("info-faith-block");
    let f = null;
    try {
      f = await faithfulnessOf(c.target_class);
    } catch (error) {
      notify("faithfulness", `faithfulness.json could not be read: ${error.message}`);
    }
    if (token !== faithToken) return;
    const ch = f?.channels;
    block.hidden = !ch;
    if (!ch) return;
    const fixed = (x, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");
    $("info-faith").textContent = `${fixed(ch.drop_p_c)} vs ${fixed(ch.drop_p_c_random)} random` +
      (Number.isFinite(ch.faithfulness) ? ` (${fixed(ch.faithfulness, 1)}x)` : "");
    const e = f.edges;
    block.title = `Ablating the ${ch.size} graph channels lowers mean p(class) on held-out images by ` +
      `${fixed(ch.drop_p_c)}; random channel sets of the same size per layer by ${fixed(ch.drop_p_c_random)} ` +
      `(sd ${fixed(ch.drop_p_c_random_sd)}). Faithfulness ${fixed(ch.faithfulness, 2)}, specificity ` +
      `${fixed(ch.specificity, 2)}.` + (e ? ` Cutting its edges: ${fixed(e.drop_p_c)} vs ${fixed(e.drop_p_c_random)} ` +
      `random (z ${fixed(e.z, 1)}).` : "");
  }

  /** A class's parsed graph, or the reason there is none (no request when the run lists no graph file). */
  async function graphOf(cls) {
    if (!hasGraph(cls.target_class)) {
      throw new Error(`class ${cls.target_class} (${displayName(cls)}) has no attribution graph in this run ` +
        `(${graphPath(cls.target_class)} is not there)`);
    }
    return parseGraph(await loadGraph(cls, layers), layers);
  }

  async function renderGraph() {
    const token = ++graphToken;
    const classA = byId.get(state.selected);
    const classB = byId.get(state.compare);
    const message = $("graph-message");
    const area = $("graph-area");
    area.dataset.loading = "true";
    const [a, b] = await Promise.allSettled([graphOf(classA), classB ? graphOf(classB) : null]);
    if (token !== graphToken) return;
    delete area.dataset.loading;
    const problems = [a, b].filter((r) => r.status === "rejected").map((r) => r.reason.message);
    notify("graph", classB && problems.length === 1 ? `Only one graph drawn: ${problems[0]}` : null);
    let model = null;
    if (a.status === "fulfilled" && b.value) model = { ...unionGraphs(a.value, b.value), mode: "compare", classA, classB };
    else if (a.status === "fulfilled") model = { ...a.value, mode: "single", classA };
    else if (b.status === "fulfilled" && b.value) model = { ...b.value, mode: "single", classA: classB };
    if (!model) {
      $("graph").hidden = true;
      $("legend").hidden = true;
      $("shared-list").hidden = true;
      message.innerHTML = `<b>No attribution graph to show.</b>${problems.map((p) => `<br>${escapeHTML(p)}`).join("")}`;
      message.hidden = false;
      graph.svgNode().dataset.classes = "";
      area.dataset.error = "true";
      setDrawn(null);
      return;
    }
    delete area.dataset.error;
    message.hidden = true;
    $("graph").hidden = false;
    const maxCount = graph.show(model);
    graph.svgNode().dataset.classes = model.mode === "compare" ? `${classA.target_class},${classB.target_class}`
      : `${model.classA.target_class}`;
    setDrawn({ a: model.classA, b: model.mode === "compare" ? classB : null });
    const slider = $("filter-slider");
    slider.max = String(maxCount);
    slider.value = "0";
    $("filter-value").textContent = "all";
    renderLegend($("legend"), model);
    renderSharedList($("shared-list"), model, { onHover: (key) => graph.focusKey(key) });
  }

  /** Re-sort the list once the selected class's similarity row for the layer is there. */
  async function renderList(patch) {
    const token = ++similarityToken;
    const list = $("class-list");
    list.dataset.busy = "true"; // until the similarity is in (the tests wait on it)
    sidebar.render(patch); // at once with what is known; the similarity follows
    let similarity = new Map(); // none: the list is not left sorted by the previous class's
    let problem = null;
    try {
      similarity = await similarities(run, state.layer, byId.get(state.selected));
    } catch (error) {
      problem = `No similarity for ${displayName(byId.get(state.selected))}: ${error.message}`;
    }
    if (token !== similarityToken) return;
    notify("similarity", problem);
    sidebar.render({ similarity });
    delete list.dataset.busy;
  }

  /** Apply a state change to every view that depends on it; `push` adds a browser-history entry. */
  function update(patch, { push = false, fromAddress = false } = {}) {
    const next = { ...state, ...patch };
    if (fromAddress) {
      const fallback = state.selected ?? classes[0].target_class;
      const wanted = patch.selected;
      next.selected = wanted === null ? fallback : classId(wanted);
      const unknownClass = wanted !== null && !byId.has(next.selected);
      if (unknownClass) next.selected = fallback;
      next.compare = patch.compare === null ? null : classId(patch.compare);
      const unknownCompare = patch.compare !== null && !byId.has(next.compare);
      const badLayer = patch.layer !== null && !layers.includes(patch.layer);
      const name = displayName(byId.get(next.selected));
      notify("address", [
        unknownClass ? `Class "${wanted}" in the address is not in this run (${formatInt(classes.length)} classes); showing ${name}.` : "",
        unknownCompare ? `Compare class "${patch.compare}" in the address is not in this run; showing ${name} alone.` : "",
        badLayer ? `Layer "${patch.layer}" in the address is not a layer of this run.` : "",
      ].filter(Boolean).join(" ") || null);
    }
    if (!byId.has(next.selected)) next.selected = state.selected ?? classes[0].target_class;
    if (!layers.includes(next.layer)) next.layer = state.layer ?? layers[layers.length - 1];
    if (!byId.has(next.compare) || next.compare === next.selected) next.compare = null;
    const changed = (key) => next[key] !== state[key];
    const layerChanged = changed("layer");
    const selectedChanged = changed("selected");
    const classChanged = selectedChanged || changed("compare");
    const sortChanged = changed("sort");
    Object.assign(state, next);

    if (classChanged) renderGraph(); // first: its request goes out before the other views are redrawn
    if (layerChanged) {
      minimap.setLayer(state.layer);
      embedding.setLayer(state.layer);
      $("layer-caption").textContent = `${state.layer} · ${formatInt(meta.channels?.[state.layer])} channels`;
    }
    if (classChanged) {
      embedding.setSelection(state.selected, state.compare);
      renderInfo();
    }
    const list = { sort: state.sort, selected: state.selected, compare: state.compare };
    if (layerChanged || selectedChanged) renderList(list);
    else if (classChanged || sortChanged) sidebar.render(list);
    writeHash(push && classChanged);
  }

  for (const button of document.querySelectorAll(".segmented button[data-sort]")) {
    button.addEventListener("click", () => {
      for (const b of document.querySelectorAll(".segmented button[data-sort]")) b.setAttribute("aria-pressed", String(b === button));
      update({ sort: button.dataset.sort });
    });
  }
  $("filter-slider").addEventListener("input", (event) => {
    const value = Number(event.target.value);
    const shown = graph.setFilter(value);
    $("filter-value").textContent = value > 0 ? `≥ ${value} · ${shown} ch` : "all";
  });
  const spacing = () => graph.setSpacing(Number($("width-slider").value), Number($("height-slider").value));
  $("width-slider").addEventListener("input", spacing);
  $("height-slider").addEventListener("input", spacing);
  $("graph-reset").addEventListener("click", () => graph.fit());
  $("embedding-reset").addEventListener("click", () => embedding.resetZoom());
  $("compare-clear").addEventListener("click", () => update({ compare: null }, { push: true }));

  /** The export buttons work on the graph on screen: off while none is drawn or an export runs. */
  function syncExportButtons() {
    for (const id of ["export-svg", "export-png"]) $(id).disabled = !drawn || exporting;
  }
  function setDrawn(classes) {
    drawn = classes;
    syncExportButtons();
  }
  const exportName = ({ a, b }, ext) => `summit-${slug(displayName(a))}${b ? `-vs-${slug(displayName(b))}` : ""}.${ext}`;
  const exportTitle = ({ a, b }) => `${meta.model ?? "model"} · attribution graph of ${displayName(a)}` +
    (b ? ` (blue) vs ${displayName(b)} (orange), shared in violet` : "");
  const runExport = (fn, ext) => async () => {
    if (!drawn) return;
    exporting = true;
    syncExportButtons();
    try {
      await fn(graph.svgNode(), graph.contentNode(), exportTitle(drawn), exportName(drawn, ext));
      notify("export", null);
    } catch (error) {
      notify("export", `Could not export the graph as ${ext.toUpperCase()}: ${error.message}`);
    } finally {
      exporting = false;
      syncExportButtons();
    }
  };
  $("export-svg").addEventListener("click", runExport(exportSVG, "svg"));
  $("export-png").addEventListener("click", runExport(exportPNG, "png"));

  $("help-button").addEventListener("click", () => $("help-dialog").showModal());
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && !event.target.closest("input, textarea, select, [contenteditable]")) {
      event.preventDefault();
      $("class-search").focus();
    }
  });
  window.addEventListener("hashchange", () => update(readHash(), { fromAddress: true }));

  update(readHash(), { fromAddress: true });
  document.body.dataset.ready = "true";
}

boot();
