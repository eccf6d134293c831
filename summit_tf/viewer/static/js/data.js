// Loading a run (classes.json, manifest.json, details/class-<class>.json, ag-<class>.json), turning
// attribution graphs into node/edge lists, unions of two graphs, class similarity and class names. Paths are
// relative so the same code runs under `summit_tf.serve` and in a site exported by `summit_tf.export_site`.

const RUN = "run/";

/** The body of `path` as text; `onProgress(bytes)` follows the download (bytes after decompression). */
async function fetchText(path, onProgress) {
  const response = await fetch(path);
  if (!response.ok) {
    const error = new Error(`${path}: ${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  if (!onProgress || !response.body) return response.text();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parts = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.length;
    parts.push(decoder.decode(value, { stream: true }));
    onProgress(bytes);
  }
  parts.push(decoder.decode());
  return parts.join("");
}

/** JSON.parse with the file named, and a hint when the text stops early (a file cut off while written). */
function parseJSON(text, path) {
  try {
    return JSON.parse(text);
  } catch (error) {
    const cut = /end of (JSON )?input|Unterminated/i.test(error.message) ? " (the file looks truncated)" : "";
    throw new Error(`${path} is not valid JSON: ${error.message}${cut}`);
  }
}

const fetchJSON = async (path, onProgress) => parseJSON(await fetchText(path, onProgress), path);

/** Classes whose names occur more than once in the run ("crane" x2, "maillot" x2) get their synset added. */
function labelClasses(classes) {
  const plain = (c) => String(c.name ?? c.synset ?? c.target_class).replace(/_/g, " ");
  const seen = new Map();
  for (const c of classes) seen.set(plain(c), (seen.get(plain(c)) ?? 0) + 1);
  for (const c of classes) {
    const name = plain(c);
    c.label = seen.get(name) > 1 ? `${name} (${c.synset ?? `#${c.target_class}`})` : name;
    c.searchText = normalizeName(`${name} ${c.label}`);
  }
}

/**
 * What is wrong with classes.json's class records, or null. Ids end up in element ids, attributes and
 * selectors and the fields below in markup, so the viewer takes only records of the shapes it writes.
 */
function classesProblem(classes) {
  if (!Array.isArray(classes)) return "classes is not a list";
  const seen = new Set();
  const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
  const counts = (v) => Array.isArray(v) && v.every((x) => isNumber(x) && x >= 0);
  for (const [i, c] of classes.entries()) {
    if (c === null || typeof c !== "object" || Array.isArray(c)) return `classes[${i}] is not an object`;
    const id = c.target_class;
    if (!Number.isInteger(id) || id < 0) {
      return `classes[${i}]: target_class is not a whole number >= 0 (${JSON.stringify(id)?.slice(0, 40)})`;
    }
    const who = `classes[${i}] (class ${id})`;
    if (seen.has(id)) return `${who}: class ${id} is listed twice`;
    seen.add(id);
    for (const key of ["name", "synset"]) {
      if (c[key] !== undefined && typeof c[key] !== "string") return `${who}: ${key} is not a string`;
    }
    for (const key of ["numOfInstances", "topOneAcc"]) {
      if (c[key] !== undefined && !isNumber(c[key])) return `${who}: ${key} is not a number`;
    }
    if (c.probHist !== undefined && !counts(c.probHist)) return `${who}: probHist is not a list of image counts`;
  }
  return null;
}

/**
 * The run: classes.json (with download progress) and the manifest, fetched side by side. `earlyGraph` (a
 * class id from the address) is requested as soon as the manifest lists it, before classes.json is in.
 */
export async function loadRun(onProgress, earlyGraph = null) {
  const manifestRequest = fetchJSON(`${RUN}manifest.json`).catch((error) => {
    if (error.status === 404) return null; // a site exported before manifests: assume every file is there
    throw error;
  });
  manifestRequest.then((m) => {
    if (m?.graphs?.includes(earlyGraph)) prefetchGraph(earlyGraph);
  }, () => {});
  const data = await fetchJSON(`${RUN}classes.json`, onProgress);
  const meta = data?.meta ?? {};
  const classes = data?.classes ?? [];
  const problem = classesProblem(classes);
  if (problem) throw new Error(`${RUN}classes.json is malformed: ${problem}`);
  if (!classes.length) throw new Error(`${RUN}classes.json lists no classes`);
  const layers = (meta.layers?.length ? meta.layers : Object.keys(classes[0].embed ?? {})).slice();
  labelClasses(classes);
  classes.forEach((c, i) => { c.slot = i; });
  const manifest = await manifestRequest;
  setManifest(manifest, meta);
  return { meta: { ...meta, layers }, classes, manifest };
}

// --- What the run holds (manifest.json), so that no request is made for a missing file ---------------------

// How many diversity images and dataset examples a channel has: the run says so in meta.feature_vis
// (SUMMIT's published data had 4 and 10); the manifest says which files exist. Live bindings.
export let DIVERSITY = 4;
export let DATASET_EXAMPLES = 10;
let channelFiles = null; // Map "fileLayer:channel" -> {channel, diversity, examples}; null: no manifest
let graphIds = null; // Set of class ids with a graph file; null: no manifest
let detailIds = null; // Set of class ids with a details file; null: no manifest
let faithfulnessFile = null; // whether the run has faithfulness.json; null: no manifest (ask once)

function setManifest(manifest, meta) {
  DIVERSITY = meta.feature_vis?.diversity ?? DIVERSITY;
  DATASET_EXAMPLES = meta.feature_vis?.dataset_examples ?? DATASET_EXAMPLES;
  if (!manifest) return;
  graphIds = new Set(manifest.graphs ?? []);
  detailIds = new Set(manifest.details ?? []);
  faithfulnessFile = Boolean(manifest.faithfulness);
  channelFiles = new Map();
  for (const [layer, rows] of Object.entries(manifest.images ?? {})) {
    for (const [ch, channel, diversity, examples] of rows) {
      channelFiles.set(`${layer}:${ch}`, { channel: channel > 0, diversity, examples });
    }
  }
}

const fileLayer = (layer) => String(layer).replace(/\//g, "_");

/** Which images of a channel exist: {channel: bool, diversity: n, examples: n}. */
export function channelAssets(layer, ch) {
  if (!channelFiles) return { channel: true, diversity: DIVERSITY, examples: DATASET_EXAMPLES };
  return channelFiles.get(`${fileLayer(layer)}:${ch}`) ?? { channel: false, diversity: 0, examples: 0 };
}

let faithfulnessRequest = null;

/**
 * The measured effect of ablating a class's graph (``experiments.faithfulness``: RUN/faithfulness.json,
 * read once), or null when the run has none for the class. No request when the manifest says it is absent.
 */
export async function faithfulnessOf(id) {
  if (faithfulnessFile === false) return null;
  faithfulnessRequest ??= fetchJSON(`${RUN}faithfulness.json`).catch((error) => {
    if (error.status === 404) return null; // a run without a manifest and without the file
    throw error;
  });
  const doc = await faithfulnessRequest;
  return doc?.classes?.[String(id)] ?? null;
}

/** Whether the run has the class's graph file (true when the run has no manifest to say). */
export const hasGraph = (id) => graphIds === null || graphIds.has(id);

const enc = (layer) => encodeURIComponent(fileLayer(layer));
export const channelImage = (layer, ch) => `${RUN}feature-vis/channel/${enc(layer)}-${ch}-channel.jpg`;
export const diversityImage = (layer, ch, d) =>
  `${RUN}feature-vis/diversity-${d}/${enc(layer)}-${ch}-diversity-${d}.jpg`;
export const datasetImage = (layer, ch, i) =>
  `${RUN}feature-vis/dataset-p/${enc(layer)}-${ch}-dataset-p-${i}.jpg`;

// --- Attribution graphs ---------------------------------------------------------------------------------

/** How many graphs and how many details files stay loaded (a visit to hundreds of classes keeps the last). */
export const CACHE_SIZE = 32;

/** A Map of the `size` entries used last; `forget(key, value)` drops the key only while it holds value. */
function recentCache(size) {
  const map = new Map();
  return {
    get(key) {
      const value = map.get(key);
      if (value !== undefined) { map.delete(key); map.set(key, value); }
      return value;
    },
    set(key, value) {
      map.delete(key);
      map.set(key, value);
      if (map.size > size) map.delete(map.keys().next().value);
    },
    forget(key, value) {
      if (map.get(key) === value) map.delete(key);
    },
  };
}

const graphCache = recentCache(CACHE_SIZE);
export const graphPath = (id) => `${RUN}ag/ag-${id}.json`;

/** What is wrong with a parsed ag file, or null: the viewer draws only what it has checked. */
function graphProblem(ag, metaLayers) {
  if (ag === null || typeof ag !== "object" || Array.isArray(ag)) return "it is not an object of layers";
  const keys = Object.keys(ag);
  if (!keys.some((l) => metaLayers.includes(l))) {
    return `none of its keys (${keys.slice(0, 4).join(", ") || "none"}) is a layer of the run`;
  }
  const isInt = (v) => Number.isInteger(v) && v >= 0;
  for (const layer of keys) {
    const nodes = ag[layer];
    if (!Array.isArray(nodes)) return `layer ${layer} is not a list of channels`;
    for (const [i, n] of nodes.entries()) {
      if (n === null || typeof n !== "object") return `layer ${layer}, entry ${i} is not an object`;
      if (!isInt(n.channel)) return `layer ${layer}, entry ${i} has no channel number`;
      if (!Number.isFinite(n.count)) return `layer ${layer}, channel ${n.channel} has no count`;
      const prev = n.prev_channels ?? [];
      if (!Array.isArray(prev)) return `layer ${layer}, channel ${n.channel}: prev_channels is not a list`;
      for (const p of prev) {
        if (!p || !isInt(p.prev_channel) || !Number.isFinite(p.inf)) {
          return `layer ${layer}, channel ${n.channel}: an edge lacks prev_channel or inf`;
        }
      }
      const skips = n.skip_channels ?? [];
      if (!Array.isArray(skips)) return `layer ${layer}, channel ${n.channel}: skip_channels is not a list`;
      for (const p of skips) {
        if (!p || typeof p.layer !== "string" || !isInt(p.prev_channel) || !Number.isFinite(p.inf)) {
          return `layer ${layer}, channel ${n.channel}: a skip edge lacks layer, prev_channel or inf`;
        }
      }
    }
  }
  return null;
}

const early = new Map(); // id -> the text request started before classes.json arrived

/** Start loading a graph before the run's class list has arrived (its id comes from the address). */
function prefetchGraph(id) {
  if (!early.has(id)) {
    const pending = fetchText(graphPath(id));
    pending.catch(() => {}); // reported when loadGraph takes it
    early.set(id, pending);
  }
}

/** The class's attribution graph, checked; errors name the file, the class and the problem. */
export function loadGraph(cls, metaLayers) {
  const id = cls.target_class;
  let pending = graphCache.get(id);
  if (!pending) {
    const path = graphPath(id);
    const who = `class ${id} (${cls.label})`;
    const text = early.get(id) ?? fetchText(path);
    early.delete(id);
    pending = (async () => {
      let ag;
      try {
        ag = parseJSON(await text, path);
      } catch (error) {
        throw new Error(error.status === 404 ? `${path} of ${who} is missing` : `${who}: ${error.message}`);
      }
      const problem = graphProblem(ag, metaLayers);
      if (problem) throw new Error(`${path} of ${who} is malformed: ${problem}`);
      return ag;
    })();
    pending.catch(() => graphCache.forget(id, pending)); // a failed load may be retried later
    graphCache.set(id, pending);
  }
  return pending;
}

const nodeKey = (layer, channel) => `${layer}:${channel}`;

/** Layers of an attribution graph in network order (first..last): meta's order, then any extra keys. */
function graphLayers(ag, metaLayers) {
  const present = new Set(Object.keys(ag));
  const ordered = metaLayers.filter((l) => present.has(l));
  const extra = Object.keys(ag).filter((l) => !metaLayers.includes(l)).reverse();
  return [...extra, ...ordered];
}

/**
 * Node and edge lists of one SUMMIT attribution graph. An edge goes from a channel (upper, layer l) to one
 * of its prev_channels (lower, layer l-1); `inf` is how many images the influence is among the top in.
 * Runs of models with residual blocks add `skip_channels` ({layer, prev_channel, inf}): edges to an earlier
 * layer than the one below, marked `skip` (drawn as side curves).
 */
export function parseGraph(ag, metaLayers) {
  const layers = graphLayers(ag, metaLayers);
  const nodes = [];
  const byKey = new Map();
  layers.forEach((layer, depth) => {
    for (const n of ag[layer] ?? []) {
      const node = { key: nodeKey(layer, n.channel), layer, channel: n.channel, depth,
        count: n.count, pagerank: n.pagerank };
      nodes.push(node);
      byKey.set(node.key, node);
    }
  });
  const edges = [];
  layers.forEach((layer, depth) => {
    if (depth === 0) return;
    const below = layers[depth - 1];
    for (const n of ag[layer] ?? []) {
      for (const p of n.prev_channels ?? []) {
        const source = nodeKey(layer, n.channel);
        const target = nodeKey(below, p.prev_channel);
        if (!byKey.has(target)) continue; // not a kept channel of the layer below: nothing to draw to
        edges.push({ key: `${source}>${target}`, source, target, inf: p.inf });
      }
      for (const p of n.skip_channels ?? []) {
        const source = nodeKey(layer, n.channel);
        const target = nodeKey(p.layer, p.prev_channel);
        if (!byKey.has(target)) continue;
        edges.push({ key: `${source}>${target}`, source, target, inf: p.inf, skip: true });
      }
    }
  });
  return { layers, nodes, edges };
}

/**
 * Union of two parsed graphs. Each node and edge says whose it is (`a`, `b` or `both`) and keeps both
 * classes' weights; `count`/`inf` (used for size, width and filtering) is the larger of the two.
 */
export function unionGraphs(ga, gb) {
  const layers = [...ga.layers];
  for (const l of gb.layers) if (!layers.includes(l)) layers.push(l);
  const depth = new Map(layers.map((l, i) => [l, i]));
  const merge = (listA, listB, weight) => {
    const out = new Map();
    for (const item of listA) out.set(item.key, { ...item, member: "a", [`${weight}A`]: item[weight], [`${weight}B`]: 0 });
    for (const item of listB) {
      const seen = out.get(item.key);
      if (seen) {
        seen.member = "both";
        seen[`${weight}B`] = item[weight];
        seen[weight] = Math.max(seen[weight], item[weight]);
      } else {
        out.set(item.key, { ...item, member: "b", [`${weight}A`]: 0, [`${weight}B`]: item[weight] });
      }
    }
    return [...out.values()];
  };
  const nodes = merge(ga.nodes, gb.nodes, "count").map((n) => ({ ...n, depth: depth.get(n.layer) }));
  return { layers, nodes, edges: merge(ga.edges, gb.edges, "inf") };
}

// --- Class similarity -----------------------------------------------------------------------------------

const detailsCache = recentCache(CACHE_SIZE);

/** details/class-<id>.json (top channels and similarity rows), loaded when the class is selected. */
function loadDetails(id) {
  let pending = detailsCache.get(id);
  if (!pending) {
    const path = `${RUN}details/class-${id}.json`;
    pending = detailIds === null || detailIds.has(id) ? fetchJSON(path)
      : Promise.reject(new Error(`${path} is not in the run (run the graph stage again to write it)`));
    pending.catch(() => detailsCache.forget(id, pending));
    detailsCache.set(id, pending);
  }
  return pending;
}

/** Cosine of every class's top-channel vector to the selected class's (format 1 runs: computed here). */
function cosineRow(classes, layer, selected) {
  const vector = (c) => new Map((c.topChannels?.[layer] ?? []).map(([ch, count]) => [ch, count]));
  const norm = (v) => Math.sqrt([...v.values()].reduce((s, x) => s + x * x, 0));
  const ref = vector(selected);
  const refNorm = norm(ref);
  return classes.map((c) => {
    const v = vector(c);
    let dot = 0;
    for (const [ch, x] of v) dot += x * (ref.get(ch) ?? 0);
    const denom = refNorm * norm(v);
    return denom > 0 ? dot / denom : 0;
  });
}

/**
 * Similarity of every class to `selected` in `layer`, as a Map id -> cosine. Format 2 runs ship the rows
 * precomputed (details files, one small request per selected class); format 1 runs have the top channels
 * inline in classes.json and the cosines are computed here.
 */
export async function similarities(run, layer, selected) {
  let row;
  if ((run.meta.format ?? 1) >= 2) {
    const scale = run.meta.similarity_scale ?? 1;
    row = ((await loadDetails(selected.target_class)).similarity?.[layer] ?? []).map((v) => v / scale);
  } else {
    row = cosineRow(run.classes, layer, selected);
  }
  return new Map(run.classes.map((c, i) => [c.target_class, row[i] ?? 0]));
}

// --- Names ----------------------------------------------------------------------------------------------

/** The class's name as shown everywhere; duplicate names carry their synset (see labelClasses). */
export const displayName = (c) => c.label ?? String(c.name ?? c.synset ?? c.target_class).replace(/_/g, " ");

/** Search form of a name: golden_retriever, golden-retriever and Golden Retriever are the same. */
export function normalizeName(text) {
  return String(text).toLowerCase().replace(/[\s_\-]+/g, " ").trim();
}
