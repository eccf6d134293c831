// The class list: sorted by similarity to the selected class or by accuracy; each row shows name, the
// histogram of p(true class), top-1 accuracy and a similarity bar. Hover highlights, click selects.

import { displayName } from "./data.js";
import { escapeHTML, formatPercent, histogramSVG } from "./ui.js";

const SORTS = {
  similarity: (sim) => (a, b) => (sim.get(b.target_class) ?? 0) - (sim.get(a.target_class) ?? 0)
    || a.target_class - b.target_class,
  "acc-asc": () => (a, b) => a.topOneAcc - b.topOneAcc || a.target_class - b.target_class,
  "acc-desc": () => (a, b) => b.topOneAcc - a.topOneAcc || a.target_class - b.target_class,
};

export function createSidebar(list, { classes, onSelect, onHover, onCompare }) {
  let rowsById = new Map();

  list.addEventListener("click", (event) => {
    const row = event.target.closest("li[data-class]");
    if (!row) return;
    const id = Number(row.dataset.class);
    if (event.target.closest(".row-compare")) onCompare(id); else onSelect(id);
  });
  list.addEventListener("keydown", (event) => {
    const row = event.target.closest("li[data-class]");
    if (!row) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      onSelect(Number(row.dataset.class));
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      (event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling)?.focus();
    }
  });
  list.addEventListener("mouseover", (event) => {
    const row = event.target.closest("li[data-class]");
    if (row) onHover(Number(row.dataset.class));
  });
  list.addEventListener("mouseleave", () => onHover(null));

  function rowHTML(c, sim, selected, compare) {
    const id = c.target_class;
    const s = Math.max(0, Math.min(1, sim.get(id) ?? 0));
    const role = id === selected ? " selected" : id === compare ? " compare" : "";
    const name = escapeHTML(displayName(c));
    return `<li data-class="${id}" class="class-row${role}" tabindex="0" aria-current="${id === selected}" title="${name} (${escapeHTML(c.synset ?? id)})">
      <span class="row-name">${name}</span>
      <span class="row-hist">${histogramSVG(c.probHist)}</span>
      <span class="row-acc">${formatPercent(c.topOneAcc)}</span>
      <button type="button" class="row-compare" tabindex="-1" aria-label="Compare with ${name}" title="Compare with ${name}">⇄</button>
      <span class="row-sim" title="similarity ${s.toFixed(3)}"><span style="width:${(100 * s).toFixed(1)}%"></span></span>
    </li>`;
  }

  return {
    render({ sort, similarity, selected, compare }) {
      const ordered = classes.slice().sort(SORTS[sort](similarity));
      list.innerHTML = ordered.map((c) => rowHTML(c, similarity, selected, compare)).join("");
      list.scrollTop = 0;
      rowsById = new Map([...list.children].map((li) => [Number(li.dataset.class), li]));
    },
    highlight(id) {
      for (const li of list.querySelectorAll("li.hovered")) li.classList.remove("hovered");
      rowsById.get(id)?.classList.add("hovered");
    },
  };
}
