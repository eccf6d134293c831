// Loading a run (classes.json, ag-<class>.json), turning attribution graphs into node/edge lists,
// unions of two graphs, and class similarity. Paths are relative so the same code runs under
// `summit_tf.serve` and in a site exported by `summit_tf.export_site`.

const RUN = "run/";

async function fetchJSON(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return response.json();
}

export async function loadRun() {
  const data = await fetchJSON(`${RUN}classes.json`);
  const meta = data.meta ?? {};
  const classes = data.classes ?? [];
  if (!classes.length) throw new Error(`${RUN}classes.json lists no classes`);
  const layers = (meta.layers?.length ? meta.layers : Object.keys(classes[0].embed ?? {})).slice();
  DIVERSITY = meta.feature_vis?.diversity ?? DIVERSITY;
  DATASET_EXAMPLES = meta.feature_vis?.dataset_examples ?? DATASET_EXAMPLES;
  return { meta: { ...meta, layers }, classes };
}

const graphCache = new Map();

export function loadGraph(targetClass) {
  if (!graphCache.has(targetClass)) {
    const pending = fetchJSON(`${RUN}ag/ag-${targetClass}.json`);
    pending.catch(() => graphCache.delete(targetClass)); // a failed load may be retried later
    graphCache.set(targetClass, pending);
  }
  return graphCache.get(targetClass);
}

const enc = encodeURIComponent;
export const channelImage = (layer, ch) => `${RUN}feature-vis/channel/${enc(layer)}-${ch}-channel.jpg`;
export const diversityImage = (layer, ch, d) =>
  `${RUN}feature-vis/diversity-${d}/${enc(layer)}-${ch}-diversity-${d}.jpg`;
export const datasetImage = (layer, ch, i) =>
  `${RUN}feature-vis/dataset-p/${enc(layer)}-${ch}-dataset-p-${i}.jpg`;
// How many diversity images and dataset examples a channel has: the run says so in meta.feature_vis
// (SUMMIT's published data had 4 and 10). Live bindings: set once by loadRun().
export let DIVERSITY = 4;
export let DATASET_EXAMPLES = 10;

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

/** Cosine similarity of every class's top-channel vector to the selected class's, in one layer. */
export function similarities(classes, layer, selected) {
  const vector = (c) => new Map((c.topChannels?.[layer] ?? []).map(([ch, count]) => [ch, count]));
  const norm = (v) => Math.sqrt([...v.values()].reduce((s, x) => s + x * x, 0));
  const ref = vector(selected);
  const refNorm = norm(ref);
  const out = new Map();
  for (const c of classes) {
    const v = vector(c);
    let dot = 0;
    for (const [ch, x] of v) dot += x * (ref.get(ch) ?? 0);
    const denom = refNorm * norm(v);
    out.set(c.target_class, denom > 0 ? dot / denom : 0);
  }
  return out;
}

export const displayName = (c) => String(c.name ?? c.synset ?? c.target_class).replace(/_/g, " ");
