// The attribution graph view: layers as rows (last layer at the top), channels drawn as their feature
// visualization sized by count, influence edges as curves whose width follows `inf`. Zoom and pan, focus on
// hover (fade what is not on a path through the channel), diversity scrubbing, filtering and spacing.
// Channels without a feature visualization in the run are plain tiles with their number: no image is
// requested that the run's manifest does not list. Layer names are drawn at screen size beside the rows, so
// they stay legible at any zoom; the exported copy keeps its own labels inside the drawing.
//
// Colours, widths and visibility are SVG presentation attributes, not CSS, so an exported copy of the SVG
// looks the same without the page's stylesheet; CSS only adds the transient hover states.

import { channelAssets, channelImage, diversityImage } from "./data.js";
import { busyState } from "./ui.js";

const d3 = window.d3;
const NODE_MAX = 76;
const NODE_MIN = NODE_MAX * 0.34;
const MOVE_MS = 450;
const LABEL_PX = 150; // screen room left of the drawing for the layer names
const COLORS = { a: "#2563eb", b: "#ea580c", both: "#7c3aed", single: "#64748b", ring: "#cbd5e1" };

/** Barycentric ordering: two sweeps (up, then down) reduce edge crossings between neighbouring rows. */
function orderRows(rows, edges, visible) {
  const up = new Map(); // lower key -> upper keys
  const down = new Map(); // upper key -> lower keys
  for (const e of edges) {
    if (e.skip || !visible.has(e.source) || !visible.has(e.target)) continue; // SUMMIT's rows: layer to layer
    (up.get(e.target) ?? up.set(e.target, []).get(e.target)).push(e.source);
    (down.get(e.source) ?? down.set(e.source, []).get(e.source)).push(e.target);
  }
  const index = new Map();
  const place = (row) => row.forEach((n, i) => index.set(n.key, i - (row.length - 1) / 2));
  rows.forEach((row) => { row.sort((a, b) => b.count - a.count || a.channel - b.channel); place(row); });
  const sweep = (row, links) => {
    const bary = (n) => {
      const ks = links.get(n.key) ?? [];
      return ks.length ? d3.mean(ks, (k) => index.get(k)) : index.get(n.key);
    };
    const b = new Map(row.map((n) => [n.key, bary(n)]));
    row.sort((x, y) => b.get(x.key) - b.get(y.key) || y.count - x.count);
    place(row);
  };
  for (let d = 1; d < rows.length; d++) sweep(rows[d], down);
  for (let d = rows.length - 2; d >= 0; d--) sweep(rows[d], up);
}

export function createGraphView(container, { hovercard }) {
  let model = null;
  let threshold = 0;
  let colGap = 112;
  let rowGap = 160;
  let byKey = new Map();
  let upLinks = new Map();
  let downLinks = new Map();
  let sizeScale = d3.scaleLinear();
  let widthScale = d3.scaleLinear();
  let box = null; // the drawing's extent once the current moves end (what fit() frames)
  let current = d3.zoomIdentity;

  const svg = d3.select(container).append("svg").attr("class", "graph-svg")
    .attr("xmlns", "http://www.w3.org/2000/svg")
    .attr("font-family", "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif");
  const defs = svg.append("defs");
  defs.append("clipPath").attr("id", "node-clip").attr("clipPathUnits", "objectBoundingBox")
    .append("rect").attr("width", 1).attr("height", 1).attr("rx", 0.1).attr("ry", 0.1);
  const viewport = svg.append("g").attr("class", "viewport");
  const content = viewport.append("g").attr("class", "content");
  const bandLayer = content.append("g").attr("class", "bands");
  const edgeLayer = content.append("g").attr("class", "edges");
  const nodeLayer = content.append("g").attr("class", "nodes");
  const labelLayer = svg.append("g").attr("class", "layer-labels").attr("pointer-events", "none");
  const busy = busyState(svg.node()); // while nodes move or their images load

  const zoom = d3.zoom().scaleExtent([0.02, 4]).on("zoom", (event) => {
    current = event.transform;
    viewport.attr("transform", current);
    placeLabels();
    if (event.sourceEvent) hovercard.hide();
  });
  // the panel's size, kept by an observer: reading it in fit() (or d3-zoom reading the SVG's width) would
  // force a layout after every redraw
  let area = null;
  zoom.extent(function extent() {
    const a = area ?? this.getBoundingClientRect();
    return [[0, 0], [a.width, a.height]];
  });
  svg.call(zoom).on("dblclick.zoom", null);
  new ResizeObserver(([entry]) => {
    const first = area === null;
    area = { width: entry.contentRect.width, height: entry.contentRect.height };
    if (model && !first) fit(0);
  }).observe(svg.node());

  const size = (n) => sizeScale(n.count);
  const nodeColor = (n) => (model.mode === "compare" ? COLORS[n.member] : COLORS.ring);
  const edgeColor = (e) => (model.mode === "compare" ? COLORS[e.member] : COLORS.single);
  const isVisible = (n) => n.count >= threshold;

  /** Layer names at screen size, beside each row wherever the zoom puts it. */
  function placeLabels() {
    if (!model || !box) return;
    const top = model.layers.length - 1;
    const rowPx = rowGap * current.k;
    const x = 10;
    labelLayer.selectAll("g.layer-label").attr("transform", (_, i) => `translate(${x},${current.applyY((top - i) * rowGap)})`)
      .attr("display", rowPx < 16 ? "none" : null)
      .select("text.layer-sub").attr("display", rowPx < 40 ? "none" : null);
  }

  function layout() {
    const visible = new Set(model.nodes.filter(isVisible).map((n) => n.key));
    const rows = model.layers.map(() => []);
    for (const n of model.nodes) if (visible.has(n.key)) rows[n.depth].push(n);
    orderRows(rows, model.edges, visible);
    const top = model.layers.length - 1;
    rows.forEach((row, depth) => row.forEach((n, i) => {
      n.x = (i - (row.length - 1) / 2) * colGap;
      n.y = (top - depth) * rowGap;
    }));
    for (const n of model.nodes) {
      if (visible.has(n.key)) continue;
      n.x ??= 0; // hidden nodes keep their last place so they reappear from there
      n.y ??= (top - n.depth) * rowGap;
    }
    const widest = Math.max(1, ...rows.map((r) => r.length));
    const halfWidth = ((widest - 1) * colGap + NODE_MAX) / 2;
    box = { x: -halfWidth - 10, y: -rowGap / 2, width: 2 * halfWidth + 20, height: model.layers.length * rowGap };
    return { visible, halfWidth, rows };
  }

  /** Point a node's image at `url`; busy until it loads or fails. An unchanged href is left alone: it may fire no event. */
  function setImage(img, url) {
    if (img.getAttribute("href") === url) return;
    busy.hold(img);
    img.setAttribute("href", url);
  }

  function edgePath(e) {
    const u = byKey.get(e.source);
    const l = byKey.get(e.target);
    const y1 = u.y + size(u) / 2;
    const y2 = l.y - size(l) / 2;
    if (e.skip) {
      // A skip edge passes the rows between its ends: bow it out to the side, more the more rows it spans.
      const bow = 40 * Math.max(1, u.depth - l.depth) * (u.x <= l.x ? -1 : 1);
      const x = (u.x + l.x) / 2 + bow;
      return `M${u.x},${y1}C${x},${y1 + (y2 - y1) / 3} ${x},${y2 - (y2 - y1) / 3} ${l.x},${y2}`;
    }
    const ym = (y1 + y2) / 2;
    return `M${u.x},${y1}C${u.x},${ym} ${l.x},${ym} ${l.x},${y2}`;
  }

  function draw(duration) {
    const { visible, halfWidth, rows } = layout();
    const top = model.layers.length - 1;
    const left = -halfWidth - 170;
    const bands = bandLayer.selectAll("g.band").data(model.layers, (l) => l).join((enter) => {
      const g = enter.append("g").attr("class", "band");
      g.append("rect").attr("class", "band-bg");
      g.append("text").attr("class", "band-name").attr("text-anchor", "end").attr("font-size", 16)
        .attr("font-weight", 600).attr("fill", "#334155");
      g.append("text").attr("class", "band-sub").attr("text-anchor", "end").attr("font-size", 13)
        .attr("fill", "#64748b");
      return g;
    });
    bands.attr("data-layer", (l) => l);
    const moves = [];
    const t = (sel) => {
      if (!duration) return sel;
      const tr = sel.transition().duration(duration);
      moves.push(tr);
      return tr;
    };
    t(bands.select("rect.band-bg"))
      .attr("x", left).attr("width", 2 * halfWidth + 210)
      .attr("y", (_, i) => (top - i) * rowGap - rowGap / 2).attr("height", rowGap)
      .attr("fill", (_, i) => (i % 2 ? "#f8fafc" : "#f1f5f9"));
    t(bands.select("text.band-name")).attr("x", -halfWidth - 22).attr("y", (_, i) => (top - i) * rowGap - 2)
      .text((l) => l);
    t(bands.select("text.band-sub")).attr("x", -halfWidth - 22).attr("y", (_, i) => (top - i) * rowGap + 17);
    const sub = (_, i) => `${rows[i].length} channel${rows[i].length === 1 ? "" : "s"}`;
    bands.select("text.band-sub").text(sub);
    const labels = labelLayer.selectAll("g.layer-label").data(model.layers, (l) => l).join((enter) => {
      const g = enter.append("g").attr("class", "layer-label");
      g.append("text").attr("class", "layer-name").attr("dy", "-0.15em");
      g.append("text").attr("class", "layer-sub").attr("dy", "1.1em");
      return g;
    });
    labels.attr("data-layer", (l) => l).select("text.layer-name").text((l) => l);
    labels.select("text.layer-sub").text(sub);
    placeLabels();

    const edgeVisible = (e) => visible.has(e.source) && visible.has(e.target);
    const edges = edgeLayer.selectAll("g.edge").data(model.edges, (e) => e.key).join((enter) => {
      const g = enter.append("g").attr("class", "edge");
      g.append("path").attr("class", "edge-line").attr("fill", "none");
      g.append("path").attr("class", "edge-hit").attr("fill", "none").attr("stroke", "transparent")
        .attr("stroke-width", 10).attr("pointer-events", "stroke");
      return g;
    });
    edges.classed("skip", (e) => Boolean(e.skip))
      .attr("data-source", (e) => e.source).attr("data-target", (e) => e.target)
      .attr("data-inf", (e) => e.inf).attr("data-member", (e) => e.member ?? "a")
      .attr("display", (e) => (edgeVisible(e) ? null : "none"))
      .on("mouseenter", (event, e) => focusEdge(e))
      .on("mouseleave", clearFocus);
    edges.select("path.edge-line")
      .attr("stroke", edgeColor).attr("stroke-width", (e) => widthScale(e.inf))
      .attr("stroke-opacity", model.mode === "compare" ? 0.75 : 0.55).attr("stroke-linecap", "round");
    t(edges.select("path.edge-line")).attr("d", edgePath);
    t(edges.select("path.edge-hit")).attr("d", edgePath);

    const nodes = nodeLayer.selectAll("g.node").data(model.nodes, (n) => n.key).join((enter) => {
      const g = enter.append("g").attr("class", "node");
      g.append("rect").attr("class", "node-bg").attr("fill", "#e2e8f0");
      g.append("text").attr("class", "node-missing").attr("text-anchor", "middle").attr("dy", "0.35em")
        .attr("font-size", 11).attr("fill", "#64748b");
      g.append("image").attr("class", "node-img").attr("preserveAspectRatio", "xMidYMid slice")
        .attr("clip-path", "url(#node-clip)")
        .on("error", function onError() { d3.select(this).attr("visibility", "hidden"); busy.release(this); })
        .on("load", function onLoad() { d3.select(this).attr("visibility", null); busy.release(this); });
      g.append("rect").attr("class", "node-ring").attr("fill", "none");
      g.append("text").attr("class", "node-label").attr("text-anchor", "middle").attr("font-size", 13)
        .attr("fill", "#475569");
      return g;
    });
    nodes.attr("data-key", (n) => n.key).attr("data-layer", (n) => n.layer).attr("data-channel", (n) => n.channel)
      .attr("data-count", (n) => n.count).attr("data-member", (n) => n.member ?? "a")
      .attr("data-hidden", (n) => String(!visible.has(n.key)))
      .attr("display", (n) => (visible.has(n.key) ? null : "none"))
      .on("mouseenter", (event, n) => focusNode(n, event.currentTarget))
      .on("mousemove", (event, n) => scrub(event, n))
      .on("mouseleave", (event, n) => { restoreImage(event.currentTarget, n); clearFocus(); });
    const square = (sel, pad = 0) => sel.attr("x", (n) => -size(n) / 2 - pad).attr("y", (n) => -size(n) / 2 - pad)
      .attr("width", (n) => size(n) + 2 * pad).attr("height", (n) => size(n) + 2 * pad);
    square(nodes.select("rect.node-bg")).attr("rx", (n) => size(n) * 0.1);
    square(nodes.select("image.node-img")).each(function setChannelImage(n) {
      if (n.assets.channel) setImage(this, channelImage(n.layer, n.channel));
      else this.setAttribute("visibility", "hidden"); // a plain tile: the run has no image to ask for
    });
    nodes.attr("data-plain", (n) => String(!n.assets.channel));
    square(nodes.select("rect.node-ring"), model.mode === "compare" ? 2 : 0.5)
      .attr("rx", (n) => size(n) * 0.1 + 2)
      .attr("stroke", nodeColor).attr("stroke-width", model.mode === "compare" ? 3.5 : 1);
    nodes.select("text.node-missing").text((n) => n.channel);
    nodes.select("text.node-label").attr("y", (n) => size(n) / 2 + 16).text((n) => n.channel);
    t(nodes).attr("transform", (n) => `translate(${n.x},${n.y})`);
    if (moves.length) busy.transitions(...moves);
  }

  function pathThrough(key) {
    const nodes = new Set([key]);
    const edges = new Set();
    const walk = (links, pick) => {
      const stack = [key];
      while (stack.length) {
        for (const e of links.get(stack.pop()) ?? []) {
          const next = pick(e);
          if (byKey.has(next) && isVisible(byKey.get(next))) {
            edges.add(e.key);
            if (!nodes.has(next)) { nodes.add(next); stack.push(next); }
          }
        }
      }
    };
    walk(upLinks, (e) => e.source);
    walk(downLinks, (e) => e.target);
    return { nodes, edges };
  }

  function applyFocus(on, centre) {
    svg.classed("focused", true);
    nodeLayer.selectAll("g.node").classed("on-path", (n) => on.nodes.has(n.key))
      .classed("focus-centre", (n) => centre.has(n.key));
    edgeLayer.selectAll("g.edge").classed("on-path", (e) => on.edges.has(e.key));
    edgeLayer.selectAll("g.edge.on-path").raise();
  }

  function focusNode(n, element) {
    applyFocus(pathThrough(n.key), new Set([n.key]));
    hovercard.showNode(n, element, model);
  }

  function focusEdge(e) {
    const ends = new Set([e.source, e.target]);
    applyFocus({ nodes: ends, edges: new Set([e.key]) }, ends);
    const el = (k) => nodeLayer.select(`g.node[data-key="${CSS.escape(k)}"]`).node();
    hovercard.showEdge(e, byKey.get(e.source), byKey.get(e.target), el(e.source), el(e.target), model);
  }

  function clearFocus() {
    svg.classed("focused", false);
    nodeLayer.selectAll("g.node.on-path").classed("on-path", false).classed("focus-centre", false);
    edgeLayer.selectAll("g.edge.on-path").classed("on-path", false);
    hovercard.hide();
  }

  function scrub(event, n) {
    const count = n.assets.diversity;
    if (count < 1) return;
    const s = size(n);
    const [mx] = d3.pointer(event, event.currentTarget);
    const d = Math.max(0, Math.min(count - 1, Math.floor((count * (mx + s / 2)) / s)));
    const g = event.currentTarget;
    if (g.getAttribute("data-diversity") === String(d)) return;
    g.setAttribute("data-diversity", d);
    setImage(g.querySelector("image.node-img"), diversityImage(n.layer, n.channel, d));
    hovercard.setDiversity(d);
  }

  function restoreImage(g, n) {
    if (!g.hasAttribute("data-diversity")) return;
    g.removeAttribute("data-diversity");
    const img = g.querySelector("image.node-img");
    if (n.assets.channel) setImage(img, channelImage(n.layer, n.channel));
    else { img.removeAttribute("href"); img.setAttribute("visibility", "hidden"); busy.release(img); }
  }

  /** Frame the whole drawing (as it will be once running moves end) in the panel. */
  function fit(duration = 600) {
    const rect = area ?? svg.node().getBoundingClientRect();
    // leave room for the overlays of comparison mode (legend top left, shared list on the right)
    const inset = model?.mode === "compare" ? { top: 84, right: 216, bottom: 22 } : { top: 0, right: 0, bottom: 22 };
    inset.left = LABEL_PX;
    const width = rect.width - inset.right - inset.left;
    const height = rect.height - inset.top - inset.bottom;
    if (!box || !box.width || width <= 0 || height <= 0) return;
    const k = Math.min(1.4, 0.96 * Math.min(width / box.width, height / box.height));
    const tr = d3.zoomIdentity.translate(inset.left + width / 2 - k * (box.x + box.width / 2),
      inset.top + height / 2 - k * (box.y + box.height / 2)).scale(k);
    if (!duration) { svg.call(zoom.transform, tr); return; }
    busy.transitions(svg.transition().duration(duration).call(zoom.transform, tr));
  }

  return {
    /** model: {layers, nodes, edges, mode: "single"|"compare", classA, classB?} */
    show(next) {
      model = next;
      threshold = 0;
      byKey = new Map(model.nodes.map((n) => [n.key, n]));
      for (const n of model.nodes) n.assets = channelAssets(n.layer, n.channel);
      upLinks = new Map();
      downLinks = new Map();
      for (const e of model.edges) {
        (upLinks.get(e.target) ?? upLinks.set(e.target, []).get(e.target)).push(e);
        (downLinks.get(e.source) ?? downLinks.set(e.source, []).get(e.source)).push(e);
      }
      const maxCount = Math.max(1, ...model.nodes.map((n) => n.count));
      sizeScale = d3.scaleLinear().domain([0, maxCount]).range([NODE_MIN, NODE_MAX]);
      widthScale = d3.scaleLinear().domain([0, Math.max(1, ...model.edges.map((e) => e.inf))]).range([0.8, 7]);
      svg.attr("data-mode", model.mode).attr("data-nodes", model.nodes.length).attr("data-edges", model.edges.length);
      clearFocus();
      nodeLayer.selectAll("image.node-img").each(function removed() { busy.release(this); });
      nodeLayer.selectAll("g.node").remove();
      edgeLayer.selectAll("g.edge").remove();
      bandLayer.selectAll("g.band").remove();
      labelLayer.selectAll("g.layer-label").remove();
      draw(0);
      fit(0);
      return maxCount;
    },
    setFilter(value) {
      threshold = value;
      if (model) { draw(MOVE_MS); fit(MOVE_MS); }
      return model ? model.nodes.filter(isVisible).length : 0;
    },
    setSpacing(width, height) {
      colGap = width;
      rowGap = height;
      if (model) draw(MOVE_MS);
    },
    fit,
    focusKey(key) {
      if (key === null) { clearFocus(); return; }
      const n = byKey.get(key);
      if (n && isVisible(n)) applyFocus(pathThrough(key), new Set([key]));
    },
    svgNode: () => svg.node(),
    contentNode: () => content.node(),
  };
}
