// The class embedding (one dot per class at its 2-D position for a layer; zoom, pan, labels; the dots of
// the class-list rows in view stand out) and the network minimap that switches layers (a WAI-ARIA slider:
// arrow keys, Home, End).

import { displayName } from "./data.js";
import { busyState } from "./ui.js";

const d3 = window.d3;
// exported for the browser tests, which place the dots from classes.json themselves
export const SIZE = 400;
export const MARGIN = 22;
const MOVE_MS = 1200;
const AUTO_LABELS = 24; // label every visible dot once no more than this many are in view

/** Shortest unambiguous labels for layer names: drop the prefix they all share ("mixed4d" -> "4d"). */
function shortLayerNames(layers) {
  if (layers.length < 2) return layers.slice();
  let prefix = layers[0];
  for (const l of layers) while (!l.startsWith(prefix)) prefix = prefix.slice(0, -1);
  prefix = prefix.replace(/\d+$/, ""); // never split a number: conv_1 / conv_13 -> 1 / 13
  let suffix = layers[0];
  for (const l of layers) while (!l.endsWith(suffix)) suffix = suffix.slice(1);
  suffix = suffix.replace(/^\d+/, ""); // Conv2d_1_pointwise .. Conv2d_13_pointwise -> 1 .. 13
  return layers.map((l) => l.slice(prefix.length, l.length - suffix.length) || l);
}

export function createMinimap(container, { layers, channels, onLayer }) {
  const short = shortLayerNames(layers);
  const width = 340;
  const height = 46;
  const step = layers.length > 1 ? (width - 28) / (layers.length - 1) : 0;
  const maxCh = Math.max(1, ...layers.map((l) => channels?.[l] ?? 1));
  let current = null;
  const el = d3.select(container).attr("role", "slider").attr("tabindex", 0)
    .attr("aria-label", "Network layer of the embedding").attr("aria-valuemin", 0)
    .attr("aria-valuemax", layers.length - 1)
    .on("keydown", (event) => {
      const i = layers.indexOf(current);
      const to = { ArrowLeft: i - 1, ArrowDown: i - 1, ArrowRight: i + 1, ArrowUp: i + 1, Home: 0,
        End: layers.length - 1, PageDown: i - 3, PageUp: i + 3 }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      const next = layers[Math.max(0, Math.min(layers.length - 1, to))];
      if (next !== current) onLayer(next);
    });
  const svg = el.append("svg")
    .attr("viewBox", `0 0 ${width} ${height}`).attr("class", "minimap-svg").attr("aria-hidden", "true");
  svg.append("line").attr("class", "minimap-spine")
    .attr("x1", 14).attr("x2", width - 14).attr("y1", 16).attr("y2", 16);
  const glyphs = svg.selectAll("g.layer-glyph").data(layers).join("g")
    .attr("class", "layer-glyph")
    .attr("data-layer", (l) => l)
    .attr("transform", (_, i) => `translate(${14 + i * step},0)`)
    .on("click", (_, l) => { container.focus({ preventScroll: true }); onLayer(l); });
  glyphs.append("title").text((l) => `${l}: ${channels?.[l] ?? "?"} channels`);
  const h = (l) => 8 + 16 * Math.sqrt((channels?.[l] ?? 1) / maxCh);
  glyphs.append("rect").attr("class", "glyph-hit").attr("x", -step / 2).attr("y", 0)
    .attr("width", Math.max(step, 20)).attr("height", height);
  glyphs.append("rect").attr("class", "glyph")
    .attr("x", -5).attr("width", 10).attr("rx", 2)
    .attr("y", (l) => 16 - h(l) / 2).attr("height", h);
  glyphs.append("text").attr("class", "glyph-label").attr("y", height - 3).attr("text-anchor", "middle")
    .text((_, i) => short[i]);
  return {
    setLayer(layer) {
      current = layer;
      glyphs.classed("selected", (l) => l === layer);
      el.attr("aria-valuenow", layers.indexOf(layer))
        .attr("aria-valuetext", `${layer}, ${channels?.[layer] ?? "?"} channels`);
    },
  };
}

export function createEmbedding(container, { classes, onSelect, onHover }) {
  let layer = null;
  let selected = null;
  let compare = null;
  let hovered = null;
  let transform = d3.zoomIdentity;
  let listed = new Set(); // classes whose rows the list shows
  const baseX = d3.scaleLinear().range([MARGIN, SIZE - MARGIN]);
  const baseY = d3.scaleLinear().range([SIZE - MARGIN, MARGIN]);

  const svg = d3.select(container).append("svg")
    .attr("viewBox", `0 0 ${SIZE} ${SIZE}`).attr("class", "embedding-svg")
    .attr("role", "img").attr("aria-label", "Class embedding");
  const busy = busyState(svg.node());
  const dotLayer = svg.append("g");
  const labelLayer = svg.append("g").attr("class", "labels");

  const dots = dotLayer.selectAll("circle").data(classes, (c) => c.target_class).join("circle")
    .attr("class", "dot")
    .attr("r", 3.5)
    .attr("data-class", (c) => c.target_class)
    .on("mouseenter", (_, c) => { onHover(c.target_class); })
    .on("mouseleave", () => { onHover(null); })
    .on("click", (_, c) => onSelect(c.target_class));
  dots.append("title").text((c) => displayName(c));

  const pos = (c) => c.embed?.[layer] ?? [0.5, 0.5];
  const x = (c) => transform.applyX(baseX(pos(c)[0]));
  const y = (c) => transform.applyY(baseY(pos(c)[1]));

  function fitDomains() {
    const xs = classes.map((c) => pos(c)[0]);
    const ys = classes.map((c) => pos(c)[1]);
    const pad = (lo, hi) => (hi - lo < 1e-9 ? [lo - 0.5, hi + 0.5] : [lo, hi]);
    baseX.domain(pad(d3.min(xs), d3.max(xs)));
    baseY.domain(pad(d3.min(ys), d3.max(ys)));
  }

  /** Classes to label: selected, compared and hovered always; others when few are in view and they fit. */
  function labelled() {
    const inView = classes.filter((c) => {
      const px = x(c);
      const py = y(c);
      return px >= 0 && px <= SIZE && py >= 0 && py <= SIZE;
    });
    const always = [selected, compare, hovered].filter((id) => id !== null);
    const candidates = [...always.map((id) => classes.find((c) => c.target_class === id)),
      ...(inView.length <= AUTO_LABELS ? inView.filter((c) => !always.includes(c.target_class)) : [])];
    const placed = [];
    return candidates.filter((c) => {
      const w = 6 * displayName(c).length + 8;
      const left = x(c) > SIZE - 90 ? x(c) - w : x(c);
      const box = [left, y(c) - 9, left + w, y(c) + 5];
      const clash = placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3]);
      if (clash && !always.includes(c.target_class)) return false;
      placed.push(box);
      return true;
    });
  }

  function drawLabels(duration = 0) {
    const role = (c) => (c.target_class === selected ? "selected" : c.target_class === compare ? "compare"
      : c.target_class === hovered ? "hovered" : "auto");
    const labels = labelLayer.selectAll("text").data(labelled(), (c) => c.target_class).join("text")
      .attr("class", (c) => `label label-${role(c)}`)
      .attr("data-class", (c) => c.target_class)
      .text((c) => displayName(c));
    const target = duration ? labels.transition().duration(duration) : labels;
    const flip = (c) => x(c) > SIZE - 90; // keep labels near the right edge inside the view
    labels.attr("text-anchor", (c) => (flip(c) ? "end" : "start"));
    target.attr("x", (c) => x(c) + (flip(c) ? -7 : 7)).attr("y", (c) => y(c) + 4);
    labelLayer.selectAll("text.label-auto").lower();
    return target;
  }

  const dotOf = new Map();
  dots.each(function keep(c) { dotOf.set(c.target_class, this); });
  let marked = []; // the dots drawn large (selected, compared, hovered) last time

  /** Restyle only the dots whose role changed (1,000 dots restyled on every hover cost a frame). */
  function styleDots() {
    const now = [selected, compare, hovered].filter((id) => id !== null);
    for (const id of new Set([...marked, ...now])) {
      const el = dotOf.get(id);
      if (!el) continue;
      const big = now.includes(id);
      el.setAttribute("class", `dot${id === selected ? " selected" : ""}${id === compare ? " compare" : ""}${id === hovered ? " hovered" : ""}${listed.has(id) ? " listed" : ""}`);
      el.setAttribute("r", big ? 6 : 3.5);
      if (big) el.parentNode.appendChild(el); // on top
    }
    marked = now;
  }

  function drawDots(duration = 0) {
    styleDots();
    const target = duration ? dots.transition().duration(duration).ease(d3.easeCubicInOut) : dots;
    target.attr("cx", x).attr("cy", y);
    return target;
  }

  const zoom = d3.zoom().scaleExtent([0.5, 60]).on("zoom", (event) => {
    transform = event.transform;
    dots.interrupt();
    labelLayer.selectAll("text").interrupt();
    drawDots();
    drawLabels();
  });
  svg.call(zoom);

  return {
    setLayer(newLayer) {
      const animate = layer !== null;
      layer = newLayer;
      svg.attr("data-layer", layer);
      fitDomains();
      if (!animate) { drawDots(); drawLabels(); return; }
      busy.transitions(drawDots(MOVE_MS), drawLabels(MOVE_MS));
    },
    setSelection(sel, cmp) {
      selected = sel;
      compare = cmp;
      styleDots();
      drawLabels();
    },
    highlight(id) {
      hovered = id;
      styleDots();
      drawLabels();
    },
    /** Mark the dots of the classes the list shows (`partial`: the list shows only some classes). */
    setListed(ids, partial) {
      const next = new Set(partial ? ids : []);
      const changed = new Set([...next].filter((id) => !listed.has(id)).concat([...listed].filter((id) => !next.has(id))));
      listed = next;
      svg.classed("has-listed", partial);
      if (changed.size) dots.filter((c) => changed.has(c.target_class)).classed("listed", (c) => listed.has(c.target_class));
    },
    resetZoom() {
      busy.transitions(svg.transition().duration(600).call(zoom.transform, d3.zoomIdentity));
    },
  };
}
