// A keyboard-accessible search box with completion (WAI-ARIA combobox + listbox pattern). Queries and
// labels are compared in one normal form (case, spaces, '_' and '-' alike: golden_retriever finds Golden
// retriever).

import { normalizeName } from "./data.js";
import { escapeHTML } from "./ui.js";

const MAX_OPTIONS = 8;

/** Rank items by how well `label(item)` matches the query: prefix, then word start, then substring. */
function rank(items, query, label, extra) {
  const q = normalizeName(query);
  if (!q) return [];
  const scored = [];
  for (const item of items) {
    const text = normalizeName(label(item)); // same length as the label unless it has runs of spaces
    const at = text.indexOf(q);
    let score;
    if (at === 0) score = 0;
    else if (at > 0 && /[\s(]/.test(text[at - 1])) score = 1;
    else if (at > 0) score = 2;
    else if (extra(item).some((s) => normalizeName(s).startsWith(q))) score = 3;
    else continue;
    scored.push({ item, score, at, text });
  }
  scored.sort((x, y) => x.score - y.score || x.text.length - y.text.length || x.text.localeCompare(y.text));
  return scored.slice(0, MAX_OPTIONS);
}

function highlight(text, start, length) {
  if (start < 0) return escapeHTML(text);
  return escapeHTML(text.slice(0, start)) + `<mark>${escapeHTML(text.slice(start, start + length))}</mark>` +
    escapeHTML(text.slice(start + length));
}

/**
 * Wire `input` (role=combobox) and `list` (role=listbox). `items()` gives the candidates, `label(item)` the
 * text shown, `extra(item)` other strings matched by prefix (synset id, class index), `onSelect(item)`.
 */
export function createCombobox({ input, list, items, label, extra = () => [], onSelect }) {
  let matches = [];
  let active = -1;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function setActive(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    if (index >= 0) {
      input.setAttribute("aria-activedescendant", list.children[index].id);
      list.children[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function render() {
    matches = rank(items(), input.value, label, extra);
    if (!matches.length) {
      list.innerHTML = input.value.trim() ? `<li class="combobox-empty" role="presentation">No matching class</li>` : "";
      list.hidden = !input.value.trim();
      input.setAttribute("aria-expanded", String(!list.hidden));
      active = -1;
      return;
    }
    const q = normalizeName(input.value);
    list.innerHTML = matches.map((m, i) => `<li role="option" id="${list.id}-opt-${i}" data-index="${i}" aria-selected="false"><span class="option-label">${highlight(label(m.item), m.score <= 2 ? m.at : -1, q.length)}</span><span class="option-extra">${escapeHTML(extra(m.item).join(" · "))}</span></li>`).join("");
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    setActive(0);
  }

  function choose(index) {
    const match = matches[index];
    if (!match) return;
    close();
    input.value = "";
    onSelect(match.item);
  }

  input.addEventListener("input", render);
  input.addEventListener("focus", () => input.value.trim() && render());
  input.addEventListener("blur", () => setTimeout(close, 120));
  input.addEventListener("keydown", (event) => {
    const n = matches.length;
    if (event.key === "ArrowDown" && n) {
      event.preventDefault();
      if (list.hidden) render(); else setActive((active + 1) % n);
    } else if (event.key === "ArrowUp" && n) {
      event.preventDefault();
      setActive((active - 1 + n) % n);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (!list.hidden && n) choose(Math.max(active, 0));
    } else if (event.key === "Escape") {
      if (!list.hidden) { event.preventDefault(); close(); } else { input.value = ""; }
    }
  });
  list.addEventListener("mousedown", (event) => event.preventDefault()); // keep focus in the input
  list.addEventListener("click", (event) => {
    const li = event.target.closest("li[data-index]");
    if (li) choose(Number(li.dataset.index));
  });
  list.addEventListener("mousemove", (event) => {
    const li = event.target.closest("li[data-index]");
    if (li && Number(li.dataset.index) !== active) setActive(Number(li.dataset.index));
  });
  return { close };
}
