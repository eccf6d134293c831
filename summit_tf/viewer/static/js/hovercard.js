// The card beside a hovered channel or edge: the channel's diversity images and its top dataset examples.
// It is HTML over the graph, so it stays readable at any zoom level. Only images the run has are asked for;
// a section with none is left out.

import { channelAssets, datasetImage, diversityImage, displayName } from "./data.js";
import { escapeHTML, formatInt, placeholderOnError } from "./ui.js";

const GAP = 14;

function examplesHTML(n) {
  const count = channelAssets(n.layer, n.channel).examples;
  if (!count) return "";
  const imgs = Array.from({ length: count }, (_, i) =>
    `<img class="example" alt="" loading="eager" src="${datasetImage(n.layer, n.channel, i)}">`).join("");
  return `<div class="card-caption">top dataset examples</div><div class="card-examples">${imgs}</div>`;
}

function countsHTML(n, model) {
  if (model.mode === "compare") {
    const part = (c, v, cls) => `<span class="card-class ${cls}">${escapeHTML(displayName(c))}</span> ${v ? formatInt(v) : "–"}`;
    return `<div class="card-stats">${part(model.classA, n.countA, "a")} · ${part(model.classB, n.countB, "b")} images</div>`;
  }
  const total = model.classA?.numOfInstances;
  const pr = Number.isFinite(n.pagerank) ? ` · PageRank ${n.pagerank.toPrecision(2)}` : "";
  return `<div class="card-stats">top channel in <b>${formatInt(n.count)}</b>${total ? ` of ${formatInt(total)}` : ""} images${pr}</div>`;
}

function headHTML(n) {
  return `<div class="card-head"><span class="card-layer">${escapeHTML(n.layer)}</span><span class="card-channel">channel ${n.channel}</span></div>`;
}

export function createHovercard(card, area) {
  function place(elements) {
    card.hidden = false;
    const a = area.getBoundingClientRect();
    const rects = elements.filter(Boolean).map((el) => el.getBoundingClientRect());
    const right = Math.max(...rects.map((r) => r.right)) - a.left;
    const left = Math.min(...rects.map((r) => r.left)) - a.left;
    const mid = (Math.min(...rects.map((r) => r.top)) + Math.max(...rects.map((r) => r.bottom))) / 2 - a.top;
    const w = card.offsetWidth;
    const h = card.offsetHeight;
    let x = right + GAP;
    if (x + w > a.width - 8) x = left - GAP - w;
    x = Math.max(8, Math.min(x, a.width - w - 8));
    const y = Math.max(8, Math.min(mid - h / 2, a.height - h - 8));
    card.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
  }

  return {
    showNode(n, element, model) {
      const count = channelAssets(n.layer, n.channel).diversity;
      const thumbs = Array.from({ length: count }, (_, d) =>
        `<img class="diversity" data-index="${d}" alt="" src="${diversityImage(n.layer, n.channel, d)}">`).join("");
      const diversity = count > 0 ? `<div class="card-caption">diversity <span class="card-hint">(move across the channel)</span></div>
        <div class="card-diversity">${thumbs}</div>` : "";
      card.innerHTML = `${headHTML(n)}${countsHTML(n, model)}${diversity}${examplesHTML(n)}`;
      card.dataset.kind = "node";
      card.dataset.key = n.key;
      placeholderOnError(card);
      place([element]);
    },
    showEdge(e, upper, lower, upperEl, lowerEl, model) {
      const weight = model.mode === "compare"
        ? `${escapeHTML(displayName(model.classA))} ${formatInt(e.infA)} · ${escapeHTML(displayName(model.classB))} ${formatInt(e.infB)}`
        : formatInt(e.inf);
      card.innerHTML = `<div class="card-edge">influence in <b>${weight}</b> images</div>
        <section class="card-end">${headHTML(upper)}${examplesHTML(upper)}</section>
        <section class="card-end">${headHTML(lower)}${examplesHTML(lower)}</section>`;
      card.dataset.kind = "edge";
      card.dataset.key = e.key;
      placeholderOnError(card);
      place([upperEl, lowerEl]);
    },
    setDiversity(d) {
      for (const img of card.querySelectorAll("img.diversity")) {
        img.classList.toggle("active", Number(img.dataset.index) === d);
      }
    },
    hide() {
      card.hidden = true;
      card.innerHTML = "";
      delete card.dataset.key;
    },
  };
}
