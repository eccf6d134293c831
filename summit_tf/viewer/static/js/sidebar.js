// The class list: sorted by similarity to the selected class, by accuracy or by name; each row shows name,
// the histogram of p(true class), top-1 accuracy and a similarity bar. Only the rows in view (and a few
// around them) exist in the page, so 1,000 classes cost what 30 do. A WAI-ARIA listbox: arrow keys, Home,
// End, Page Up/Down move the active row, Enter selects it. Re-sorting keeps the selected row where it was
// on screen, or brings it into view.

import { displayName, hasGraph } from "./data.js";
import { escapeHTML, formatPercent, histogramSVG } from "./ui.js";

export const ROW_HEIGHT = 40; // px; the stylesheet gives .class-row the same height
const OVERSCAN = 6; // rows rendered beyond each edge, so a scroll shows no blank strip before the next frame
const PAD = 4; // the list's own padding above the first and below the last row

const byName = new Intl.Collator("en", { sensitivity: "base", numeric: true });
const SORTS = {
  similarity: (sim) => (a, b) => (sim.get(b.target_class) ?? 0) - (sim.get(a.target_class) ?? 0)
    || a.target_class - b.target_class,
  "acc-asc": () => (a, b) => a.topOneAcc - b.topOneAcc || a.target_class - b.target_class,
  "acc-desc": () => (a, b) => b.topOneAcc - a.topOneAcc || a.target_class - b.target_class,
  alpha: () => (a, b) => byName.compare(displayName(a), displayName(b)) || a.target_class - b.target_class,
};

export function createSidebar(list, { classes, onSelect, onHover, onCompare, onViewport }) {
  let order = classes.slice();
  let indexOf = new Map(order.map((c, i) => [c.target_class, i]));
  let view = { sort: "similarity", similarity: new Map(), selected: null, compare: null };
  let active = -1; // the row the keyboard is on (aria-activedescendant)
  let hovered = null;
  let drawn = [-1, -1];
  let frame = 0;
  // the list's height and scroll offset, kept here: reading them right after other views changed the page
  // would force a layout in the middle of a class switch
  let height = list.clientHeight;
  let scroll = list.scrollTop;
  let sorted = false;
  const histCache = new Map(); // the histogram glyph of a class never changes

  list.style.setProperty("--rows-after", `${classes.length * ROW_HEIGHT}px`); // full height from the start
  list.setAttribute("role", "listbox");
  list.tabIndex = 0;

  const similarityOf = (id) => Math.max(0, Math.min(1, view.similarity.get(id) ?? 0));
  const rowClass = (id, i) => {
    const role = id === view.selected ? " selected" : id === view.compare ? " compare" : "";
    return `class-row${role}${hasGraph(id) ? "" : " no-graph"}${id === hovered ? " hovered" : ""}${i === active ? " active" : ""}`;
  };

  function rowHTML(c, i) {
    const id = c.target_class;
    const s = similarityOf(id);
    const name = escapeHTML(displayName(c));
    const graph = hasGraph(id);
    if (!histCache.has(id)) histCache.set(id, histogramSVG(c.probHist));
    return `<li id="class-row-${id}" data-class="${id}" data-index="${i}" class="${rowClass(id, i)}" role="option" aria-selected="${id === view.selected}" title="${name} (${escapeHTML(c.synset ?? id)}, class ${id})${graph ? "" : ": no attribution graph in this run"}">
      <span class="row-name">${name}${graph ? "" : ' <span class="row-badge">no graph</span>'}</span>
      <span class="row-hist">${histCache.get(id)}</span>
      <span class="row-acc">${formatPercent(c.topOneAcc)}</span>
      <button type="button" class="row-compare" tabindex="-1" aria-label="Compare with ${name}" title="Compare with ${name}">⇄</button>
      <span class="row-sim" title="similarity ${s.toFixed(3)}"><span style="width:${(100 * s).toFixed(1)}%"></span></span>
    </li>`;
  }

  /** The drawn rows' roles and similarity bars, in place (a new selection moves no row in most sorts). */
  function restyleRows() {
    for (const li of list.children) {
      const id = Number(li.dataset.class);
      const s = similarityOf(id);
      li.className = rowClass(id, Number(li.dataset.index));
      li.setAttribute("aria-selected", String(id === view.selected));
      const bar = li.querySelector(".row-sim");
      bar.title = `similarity ${s.toFixed(3)}`;
      bar.firstElementChild.style.width = `${(100 * s).toFixed(1)}%`;
    }
  }

  /** Rows [first, last) in view, without overscan. */
  function inView() {
    const top = Math.max(0, scroll - PAD);
    const first = Math.min(order.length, Math.floor(top / ROW_HEIGHT));
    const last = Math.min(order.length, Math.ceil((top + height) / ROW_HEIGHT));
    return [first, last];
  }

  function drawWindow(force = false) {
    const [first, last] = inView();
    const start = Math.max(0, first - OVERSCAN);
    const end = Math.min(order.length, last + OVERSCAN);
    if (force || start !== drawn[0] || end !== drawn[1]) {
      // spacers (the list's ::before and ::after) stand in for the rows not drawn
      list.style.setProperty("--rows-before", `${start * ROW_HEIGHT}px`);
      list.style.setProperty("--rows-after", `${(order.length - end) * ROW_HEIGHT}px`);
      list.innerHTML = order.slice(start, end).map((c, k) => rowHTML(c, start + k)).join("");
      drawn = [start, end];
    } else {
      restyleRows();
    }
    onViewport?.(order.slice(first, last).map((c) => c.target_class), last - first < order.length);
  }

  /** Scroll the list to `top` (clamped as the browser will) and remember it. */
  function scrollTo(top) {
    scroll = Math.max(0, Math.min(top, 2 * PAD + order.length * ROW_HEIGHT - height));
    list.scrollTop = scroll;
  }

  list.addEventListener("scroll", () => {
    scroll = list.scrollTop;
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; drawWindow(); });
  }, { passive: true });
  new ResizeObserver(([entry]) => {
    height = entry.target.clientHeight;
    drawWindow();
  }).observe(list);

  function setActive(index, { reveal = true } = {}) {
    active = Math.max(0, Math.min(order.length - 1, index));
    if (reveal) {
      const top = PAD + active * ROW_HEIGHT;
      if (top < scroll) scrollTo(top - PAD);
      else if (top + ROW_HEIGHT > scroll + height) scrollTo(top + ROW_HEIGHT - height + PAD);
    }
    drawWindow(true);
    list.setAttribute("aria-activedescendant", `class-row-${order[active].target_class}`);
  }

  list.addEventListener("click", (event) => {
    const row = event.target.closest("li[data-class]");
    if (!row) return;
    const id = Number(row.dataset.class);
    active = Number(row.dataset.index);
    if (event.target.closest(".row-compare")) onCompare(id); else onSelect(id);
  });
  list.addEventListener("keydown", (event) => {
    if (!order.length) return;
    const page = Math.max(1, Math.floor(height / ROW_HEIGHT) - 1);
    const from = active >= 0 ? active : (indexOf.get(view.selected) ?? 0);
    const moves = { ArrowDown: from + 1, ArrowUp: from - 1, PageDown: from + page, PageUp: from - page,
      Home: 0, End: order.length - 1 };
    if (event.key in moves) {
      event.preventDefault();
      setActive(moves[event.key]);
    } else if ((event.key === "Enter" || event.key === " ") && from >= 0) {
      event.preventDefault();
      active = from;
      onSelect(order[from].target_class);
    }
  });
  list.addEventListener("mouseover", (event) => {
    const row = event.target.closest("li[data-class]");
    if (row) onHover(Number(row.dataset.class));
  });
  list.addEventListener("mouseleave", () => onHover(null));

  return {
    /** Re-sort and redraw; the selected row keeps its place on screen when it was in view, else it is
     * brought into view. */
    render(next) {
      // the row to keep in place: the one just clicked or keyed to, else the selected one
      const activeId = active >= 0 ? order[active]?.target_class : undefined;
      const anchor = activeId === next.selected ? activeId : view.selected;
      const before = indexOf.get(anchor);
      const offset = before === undefined ? null : PAD + before * ROW_HEIGHT - scroll;
      const wasVisible = offset !== null && offset >= 0 && offset + ROW_HEIGHT <= height;
      const resort = next.sort !== undefined && next.sort !== view.sort
        || (next.similarity !== undefined && next.similarity !== view.similarity && (next.sort ?? view.sort) === "similarity");
      view = { ...view, ...next };
      if (resort || !sorted) { // a new selection alone changes no order: only the similarity sort moves
        order = classes.slice().sort(SORTS[view.sort](view.similarity));
        indexOf = new Map(order.map((c, i) => [c.target_class, i]));
        sorted = true;
      }
      const at = indexOf.get(view.selected);
      if (at !== undefined) {
        const top = PAD + at * ROW_HEIGHT;
        if (wasVisible && anchor === view.selected) scrollTo(top - offset);
        else if (top < scroll || top + ROW_HEIGHT > scroll + height) scrollTo(top - (height - ROW_HEIGHT) / 2);
      }
      active = at ?? -1;
      drawWindow(resort);
      if (active >= 0) list.setAttribute("aria-activedescendant", `class-row-${view.selected}`);
    },
    highlight(id) {
      hovered = id;
      for (const li of list.querySelectorAll("li.hovered")) li.classList.remove("hovered");
      if (id !== null) list.querySelector(`li[data-class="${id}"]`)?.classList.add("hovered");
    },
  };
}
