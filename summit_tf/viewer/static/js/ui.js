// Small shared pieces: HTML escaping, number formats, the probability histogram glyph, a view's busy state.

export function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
}

export const formatInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
export const formatBytes = (n) => (n < 1e6 ? `${(n / 1e3).toFixed(0)} kB` : `${(n / 1e6).toFixed(1)} MB`);
export const formatPercent = (x) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "–");

/**
 * The histogram of the probability the model gives the true class (bins from 0 to 1), as an SVG string.
 * Bins from 0.5 up are drawn darker: mass there means confident, mostly correct predictions.
 */
export function histogramSVG(hist, width = 64, height = 16) {
  const bins = Array.isArray(hist) ? hist.map((v) => Number(v) || 0) : []; // markup takes numbers only
  if (!bins.length) return "";
  const max = Math.max(1, ...bins);
  const w = width / bins.length;
  const bars = bins.map((v, i) => {
    const h = v > 0 ? Math.max(1, (height - 1) * (v / max)) : 0;
    const cls = i >= bins.length / 2 ? "hist-hi" : "hist-lo";
    return `<rect class="${cls}" x="${(i * w + 0.5).toFixed(2)}" y="${(height - 1 - h).toFixed(2)}" width="${Math.max(0.5, w - 1).toFixed(2)}" height="${h.toFixed(2)}"/>`;
  }).join("");
  const total = bins.reduce((s, v) => s + v, 0);
  return `<svg class="hist" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="probability histogram of ${formatInt(total)} images"><line class="hist-axis" x1="0" x2="${width}" y1="${height - 0.5}" y2="${height - 0.5}"/>${bars}</svg>`;
}

const PLACEHOLDER = "data:image/svg+xml," + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="#e2e8f0"/></svg>');

/** Swap images that fail to load (feature visualizations not computed yet) for a neutral tile. */
export function placeholderOnError(container) {
  for (const img of container.querySelectorAll("img")) {
    img.addEventListener("error", () => { img.classList.add("missing"); img.src = PLACEHOLDER; }, { once: true });
  }
}

/**
 * A view's busy state, published as `data-busy="true"` on its element while any token is held (a move, an
 * image loading), so scripts and the browser tests can wait for a settled view instead of sleeping.
 */
export function busyState(el) {
  const held = new Set();
  const publish = () => (held.size ? el.setAttribute("data-busy", "true") : el.removeAttribute("data-busy"));
  const hold = (token) => { held.add(token); publish(); };
  const release = (token) => { held.delete(token); publish(); };
  return {
    hold,
    release,
    /** Busy until the D3 transitions end; an interrupted one (a newer move, a zoom) ends its part too. */
    transitions(...list) {
      const token = {};
      hold(token);
      Promise.allSettled(list.map((t) => t.end())).then(() => release(token));
    },
  };
}
