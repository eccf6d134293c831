// The viewer's state (selected class, layer, comparison class, sort order), kept in the URL hash so a view
// can be shared, and the wiring between the views.

import { createCombobox } from "./combobox.js";
import { renderLegend, renderSharedList } from "./comparepanel.js";
import { displayName, loadGraph, loadRun, parseGraph, similarities, unionGraphs } from "./data.js";
import { createEmbedding, createMinimap } from "./embedding.js";
import { exportPNG, exportSVG } from "./export.js";
import { createGraphView } from "./graph.js";
import { createHovercard } from "./hovercard.js";
import { createSidebar } from "./sidebar.js";
import { escapeHTML, formatInt, formatPercent, histogramSVG } from "./ui.js";

const $ = (id) => document.getElementById(id);

function showLoadError(message) {
  const box = $("load-error");
  box.textContent = message;
  box.hidden = false;
}

function slug(text) {
  return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "class";
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const num = (key) => (p.has(key) && /^-?\d+$/.test(p.get(key)) ? Number(p.get(key)) : null);
  return { selected: num("class"), compare: num("compare"), layer: p.get("layer") };
}

async function boot() {
  let run;
  try {
    run = await loadRun();
  } catch (error) {
    showLoadError(`Could not load the run: ${error.message}. Start the viewer with ` +
      "`python -m summit_tf.serve --run_dir=DIR` on a directory that holds classes.json.");
    return;
  }
  const { meta, classes } = run;
  const layers = meta.layers;
  const byId = new Map(classes.map((c) => [c.target_class, c]));
  const state = { selected: null, compare: null, layer: null, sort: "similarity" };
  let similarity = new Map();
  let graphToken = 0;

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
  });
  const comboOptions = { items: () => classes, label: displayName, extra: (c) => [c.synset ?? "", String(c.target_class)] };
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
    $("info-name").title = `${c.synset ?? ""} (class ${c.target_class})`;
    $("info-images").textContent = formatInt(c.numOfInstances);
    $("info-acc").textContent = formatPercent(c.topOneAcc);
    $("info-hist").innerHTML = histogramSVG(c.probHist, 96, 20);
    const other = byId.get(state.compare);
    $("compare-active").hidden = !other;
    $("compare-clear").hidden = !other;
    $("compare-name").textContent = other ? displayName(other) : "";
    document.querySelector(".graph-panel").dataset.mode = other ? "compare" : "single";
  }

  async function renderGraph() {
    const token = ++graphToken;
    const classA = byId.get(state.selected);
    const classB = byId.get(state.compare);
    const message = $("graph-message");
    try {
      const a = parseGraph(await loadGraph(classA.target_class), layers);
      const b = classB ? parseGraph(await loadGraph(classB.target_class), layers) : null;
      if (token !== graphToken) return;
      const model = b ? { ...unionGraphs(a, b), mode: "compare", classA, classB } : { ...a, mode: "single", classA };
      message.hidden = true;
      $("graph").hidden = false;
      const maxCount = graph.show(model);
      graph.svgNode().dataset.classes = b ? `${classA.target_class},${classB.target_class}` : `${classA.target_class}`;
      const slider = $("filter-slider");
      slider.max = String(maxCount);
      slider.value = "0";
      $("filter-value").textContent = "all";
      renderLegend($("legend"), model);
      renderSharedList($("shared-list"), model, { onHover: (key) => graph.focusKey(key) });
    } catch (error) {
      if (token !== graphToken) return;
      $("graph").hidden = true;
      $("legend").hidden = true;
      $("shared-list").hidden = true;
      message.innerHTML = `<b>No attribution graph to show.</b><br>${escapeHTML(error.message)}`;
      message.hidden = false;
    }
  }

  /** Apply a state change to every view that depends on it; `push` adds a browser-history entry. */
  function update(patch, { push = false } = {}) {
    const next = { ...state, ...patch };
    if (!byId.has(next.selected)) next.selected = state.selected ?? classes[0].target_class;
    if (!layers.includes(next.layer)) next.layer = state.layer ?? layers[layers.length - 1];
    if (!byId.has(next.compare) || next.compare === next.selected) next.compare = null;
    const changed = (key) => next[key] !== state[key];
    const layerChanged = changed("layer");
    const selectedChanged = changed("selected");
    const classChanged = selectedChanged || changed("compare");
    const sortChanged = changed("sort");
    Object.assign(state, next);

    if (layerChanged) {
      minimap.setLayer(state.layer);
      embedding.setLayer(state.layer);
      $("layer-caption").textContent = `${state.layer} · ${formatInt(meta.channels?.[state.layer])} channels`;
    }
    if (layerChanged || selectedChanged) similarity = similarities(classes, state.layer, byId.get(state.selected));
    if (classChanged) {
      embedding.setSelection(state.selected, state.compare);
      renderInfo();
      renderGraph();
    }
    if (layerChanged || classChanged || sortChanged) {
      sidebar.render({ sort: state.sort, similarity, selected: state.selected, compare: state.compare });
    }
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

  const exportName = (ext) => {
    const a = byId.get(state.selected);
    const b = byId.get(state.compare);
    return `summit-${slug(displayName(a))}${b ? `-vs-${slug(displayName(b))}` : ""}.${ext}`;
  };
  const exportTitle = () => {
    const a = displayName(byId.get(state.selected));
    const b = byId.get(state.compare);
    return `${meta.model ?? "model"} · attribution graph of ${a}${b ? ` (blue) vs ${displayName(b)} (orange), shared in violet` : ""}`;
  };
  const runExport = (fn, ext) => async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      await fn(graph.svgNode(), graph.contentNode(), exportTitle(), exportName(ext));
    } finally {
      button.disabled = false;
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
  window.addEventListener("hashchange", () => update(readHash()));
  window.addEventListener("resize", () => graph.fit(0));

  const initial = readHash();
  update({ ...initial, layer: initial.layer ?? layers[layers.length - 1] });
  document.body.dataset.ready = "true";
}

boot();
