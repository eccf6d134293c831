// Export of the current attribution graph as a self-contained SVG (images inlined as data URLs) or a PNG.

const PAD = 24;
const TITLE_H = 34;
const PNG_SCALE = 2;
const PNG_MAX_SIDE = 12000;

async function toDataURL(url, cache) {
  if (!cache.has(url)) {
    cache.set(url, fetch(url).then(async (response) => {
      if (!response.ok) return null;
      const blob = await response.blob();
      return new Promise((resolve) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result);
        reader.onerror = () => resolve(null);
        reader.readAsDataURL(blob);
      });
    }).catch(() => null));
  }
  return cache.get(url);
}

/** A standalone copy of the graph: whole graph in view, hover states dropped, images inlined. */
async function buildGraphSVG(svgNode, contentNode, title) {
  const box = contentNode.getBBox();
  const clone = svgNode.cloneNode(true);
  clone.removeAttribute("class");
  clone.removeAttribute("style");
  for (const el of clone.querySelectorAll(".on-path, .focus-centre")) el.classList.remove("on-path", "focus-centre");
  for (const el of clone.querySelectorAll("[display='none']")) el.remove();
  for (const el of clone.querySelectorAll(".edge-hit")) el.remove();
  clone.querySelector("g.layer-labels")?.remove(); // the screen's labels; the drawing has its own
  clone.querySelector("g.viewport").removeAttribute("transform");
  const width = Math.ceil(box.width + 2 * PAD);
  const height = Math.ceil(box.height + 2 * PAD + TITLE_H);
  clone.setAttribute("viewBox", `${box.x - PAD} ${box.y - PAD - TITLE_H} ${width} ${height}`);
  clone.setAttribute("width", width);
  clone.setAttribute("height", height);
  const ns = "http://www.w3.org/2000/svg";
  const bg = document.createElementNS(ns, "rect");
  for (const [k, v] of Object.entries({ x: box.x - PAD, y: box.y - PAD - TITLE_H, width, height, fill: "#ffffff" })) bg.setAttribute(k, v);
  clone.insertBefore(bg, clone.querySelector("g.viewport"));
  const text = document.createElementNS(ns, "text");
  for (const [k, v] of Object.entries({ x: box.x, y: box.y - PAD + 4, "font-size": 18, "font-weight": 600, fill: "#0f172a" })) text.setAttribute(k, v);
  text.textContent = title;
  clone.appendChild(text);

  const cache = new Map();
  await Promise.all([...clone.querySelectorAll("image")].map(async (img) => {
    const href = img.getAttribute("href");
    const data = href && await toDataURL(href, cache); // a plain tile (no image in the run) has none
    if (data) img.setAttribute("href", data); else img.remove();
  }));
  return { markup: `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(clone)}`, width, height };
}

function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function exportSVG(svgNode, contentNode, title, filename) {
  const { markup } = await buildGraphSVG(svgNode, contentNode, title);
  download(new Blob([markup], { type: "image/svg+xml" }), filename);
}

export async function exportPNG(svgNode, contentNode, title, filename) {
  const { markup, width, height } = await buildGraphSVG(svgNode, contentNode, title);
  const scale = Math.min(PNG_SCALE, PNG_MAX_SIDE / Math.max(width, height));
  const url = URL.createObjectURL(new Blob([markup], { type: "image/svg+xml" }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    if (!blob) throw new Error(`the browser could not encode a ${canvas.width}x${canvas.height} PNG`);
    download(blob, filename);
  } finally {
    URL.revokeObjectURL(url);
  }
}
