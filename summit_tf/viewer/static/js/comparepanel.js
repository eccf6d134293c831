// Comparison mode extras: the colour legend and the list of channels both classes' graphs keep.

import { channelAssets, channelImage, displayName } from "./data.js";
import { escapeHTML, formatInt, placeholderOnError } from "./ui.js";

export function renderLegend(el, model) {
  if (model.mode !== "compare") { el.hidden = true; el.innerHTML = ""; return; }
  const count = (list, member) => list.filter((x) => x.member === member).length;
  const item = (member, label) => `<li data-member="${member}"><span class="swatch swatch-${member}"></span>${label}
    <span class="legend-count">${count(model.nodes, member)} ch · ${count(model.edges, member)} edges</span></li>`;
  el.innerHTML = `<ul>
    ${item("a", `only ${escapeHTML(displayName(model.classA))}`)}
    ${item("b", `only ${escapeHTML(displayName(model.classB))}`)}
    ${item("both", "shared")}</ul>`;
  el.hidden = false;
}

export function renderSharedList(el, model, { onHover }) {
  if (model.mode !== "compare") { el.hidden = true; el.innerHTML = ""; return; }
  const shared = model.nodes.filter((n) => n.member === "both");
  const byLayer = [...model.layers].reverse().map((layer) => [layer, shared.filter((n) => n.layer === layer)])
    .filter(([, nodes]) => nodes.length);
  const chip = (n) => `<li class="shared-chip" data-key="${escapeHTML(n.key)}" tabindex="0"
      title="${escapeHTML(n.layer)} channel ${n.channel}: ${formatInt(n.countA)} / ${formatInt(n.countB)} images">
      ${channelAssets(n.layer, n.channel).channel ? `<img alt="" src="${channelImage(n.layer, n.channel)}">`
        : '<span class="chip-plain" aria-hidden="true"></span>'}<span>${n.channel}</span></li>`;
  el.innerHTML = `<h3>Shared channels <span class="shared-total">${shared.length}</span></h3>` +
    (byLayer.length
      ? byLayer.map(([layer, nodes]) => `<div class="shared-layer"><div class="shared-layer-name">${escapeHTML(layer)}</div><ul>${nodes.map(chip).join("")}</ul></div>`).join("")
      : `<p class="shared-none">The two graphs share no channel.</p>`);
  placeholderOnError(el);
  const key = (event) => event.target.closest("li.shared-chip")?.dataset.key ?? null;
  el.onmouseover = (event) => onHover(key(event));
  el.onfocusin = (event) => onHover(key(event));
  el.onmouseleave = () => onHover(null);
  el.onfocusout = () => onHover(null);
  el.hidden = false;
}
