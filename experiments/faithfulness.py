"""Do the attribution graphs explain the model? Ablate each class's graph on held-out images and compare.

    python -m experiments.faithfulness --run_dir=RUN --data=HELD_OUT_SPEC [--classes=0,217 --random_sets=20]

For every class c of the run (``ag/ag-<c>.json``), on held-out images of every class (never aggregated):

- ``graph-channels``: c's kept channels ablated in every layer at once (mean ablation by default: the
  channel's mean over the aggregated data, ``RUN/channel_means.npz``, made once by a streaming pass);
  ``random-channels``: ``--random_sets`` draws of the same number of channels per layer, uniform;
- ``graph-edges``: the graph's written edges (``prev_channels``) cut, i.e. their kernel entries zeroed;
  ``random-edges``: as many uniform random kernel entries of the same links. Edges that are no single
  kernel entry (InceptionV1's 3x3/5x5 edges pass through a bottleneck) are not cut and are counted.

Per condition: top-1 accuracy and mean probability of the true class on c's images and on the others'.
``faithfulness`` = drop of mean p(c) under the graph / mean drop under the random draws (1: no better than
chance, > 1: the graph matters more than its size explains); ``specificity`` = drop on c's images / mean
drop on the other classes' images (> 1: the graph is c's, not a generic part of the network). Writes
``OUT/faithfulness.csv`` (every condition; random draws as mean and standard deviation),
``OUT/faithfulness.md``, ``OUT/faithfulness.png`` and ``RUN/faithfulness.json`` (the per-class summary
the viewer reads; format in :func:`viewer_summary`). Each scored class is also kept on its own
(``OUT/classes/``), and the tables hold every class scored there with the same settings: runs of a few
classes each (``--classes``, e.g. one process per class) add up to the whole table.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from absl import flags

from summit_tf import atomic

log = logging.getLogger(__name__)

PARTS = "classes"  # OUT/classes/: each scored class's rows, summary and per-image arrays
CONDITIONS = ("none", "graph-channels", "random-channels", "graph-edges", "random-edges")
SUMMARY_FILE = "faithfulness.json"


@dataclass
class ClassGraph:
    """What a class's graph keeps, as intervention targets: channels per layer, kernel entries per link."""

    channels: dict[str, list[int]]
    edges: dict[str, list[tuple[int, int]]]
    uncut_edges: int = 0


def read_graph(path: Path, model) -> ClassGraph:
    """Kept channels and written edges of ``ag-<c>.json``, the edges mapped onto link kernel entries."""
    return graph_targets(json.loads(path.read_text()), model, str(path))


def graph_targets(doc: dict, model, source: str) -> ClassGraph:
    """:class:`ClassGraph` of a graph in SUMMIT's JSON format (``AttributionGraph.to_json()``)."""
    unknown = [layer for layer in doc if layer not in model.channels]
    if unknown:
        raise ValueError(f"{source}: layers {unknown} are not layers of {model.spec}")
    order = {layer: k for k, layer in enumerate(model.layers)}
    channels = {layer: sorted(int(n["channel"]) for n in nodes) for layer, nodes in doc.items()}
    edges: dict[str, list[tuple[int, int]]] = {}
    uncut = 0
    for layer, nodes in doc.items():
        below = model.layers[order[layer] - 1] if order[layer] else None
        direct = [link for link in model.links_into(layer)
                  if link.src == below and link.name in model.link_outputs]
        for node in nodes:
            j = int(node["channel"])
            link = next((lk for lk in direct if lk.dst_offset <= j < lk.dst_offset + lk.cout), None)
            for prev in node.get("prev_channels", []):
                if link is None:
                    uncut += 1
                else:
                    edges.setdefault(link.name, []).append((int(prev["prev_channel"]), j - link.dst_offset))
    return ClassGraph(channels, edges, uncut)


def random_ablations(model, graph: ClassGraph, draws: int, rng: np.random.Generator):
    """``draws`` channel sets (same count per layer as the graph) and edge sets (same count per link)."""
    from summit_tf.intervene import Ablation

    links = {link.name: link for link in model.links}
    chans = [Ablation(channels={layer: rng.choice(model.channels[layer], len(c), replace=False).tolist()
                                for layer, c in graph.channels.items()}) for _ in range(draws)]
    edges = []
    for _ in range(draws):
        cut = {}
        for name, pairs in graph.edges.items():
            link = links[name]
            flat = rng.choice(link.cin * link.cout, len(set(pairs)), replace=False)
            cut[name] = [(int(f // link.cout), int(f % link.cout)) for f in flat]
        edges.append(Ablation(edges=cut))
    return chans, edges


def evaluate(iv, images: np.ndarray, outputs: np.ndarray, ablations, batch_size: int, mask_batch: int,
             progress=None) -> tuple[np.ndarray, np.ndarray]:
    """p(true class) and top-1 correctness, ``[M, N]`` each, of every ablation on every image, through the
    :class:`summit_tf.intervene.Intervener` ``iv``: chunks of masks times batches of images, one batched
    pass each."""
    import tensorflow as tf

    per_pass = max(1, mask_batch // batch_size)
    probs, correct = [], []
    for start in range(0, len(ablations), per_pass):
        masks = iv.masks(ablations[start:start + per_pass])
        p_rows, c_rows = [], []
        for b in range(0, len(images), batch_size):
            logits = iv.run(tf.constant(images[b:b + batch_size]), masks)["logits"]
            want = outputs[b:b + batch_size]
            soft = tf.nn.softmax(logits, axis=-1).numpy()
            p_rows.append(np.take_along_axis(soft, want[None, :, None], axis=2)[..., 0])
            c_rows.append(soft.argmax(axis=-1) == want[None])
            if progress is not None:
                progress.update(masks.size * len(want))
        probs.append(np.concatenate(p_rows, axis=1))
        correct.append(np.concatenate(c_rows, axis=1))
    return np.concatenate(probs), np.concatenate(correct)


@dataclass
class Row:
    """One condition of one class: figures on c's images and on the others', random ones as mean and sd."""

    class_id: int
    name: str
    condition: str
    size: int
    draws: int
    top1_c: float
    top1_c_sd: float
    p_c: float
    p_c_sd: float
    top1_others: float
    top1_others_sd: float
    p_others: float
    p_others_sd: float


def rows_for_class(class_id: int, name: str, labels: np.ndarray, blocks: dict[str, tuple]) -> list[Row]:
    """``blocks[condition] = (size, p [M, N], correct [M, N])`` -> one Row per condition."""
    mine = labels == class_id
    rows = []
    for cond, (size, p, top) in blocks.items():
        def stat(x, where):
            per_draw = x[:, where].mean(axis=1)
            return float(per_draw.mean()), float(per_draw.std(ddof=1)) if len(per_draw) > 1 else 0.0

        (t1, t1s), (pc, pcs) = stat(top, mine), stat(p, mine)
        (to, tos), (po, pos) = stat(top, ~mine), stat(p, ~mine)
        rows.append(Row(class_id, name, cond, size, len(p), t1, t1s, pc, pcs, to, tos, po, pos))
    return rows


def _ratio(a: float, b: float, least: float) -> float:
    return a / b if b > least else float("nan")


def class_summary(rows: Sequence[Row]) -> dict:
    """Drops against ``none`` and the scores, for channels and edges. A ratio is NaN (undefined, not
    large) when its denominator is not clearly positive: the random draws' mean drop within two standard
    errors of 0, or the other classes' mean drop below 0.001. ``z`` = (graph drop - random mean drop) /
    random sd says the same without a ratio."""
    by = {r.condition: r for r in rows}
    base = by["none"]
    out = {"p_c": base.p_c, "top1_c": base.top1_c}
    for kind in ("channels", "edges"):
        graph, rand = by.get(f"graph-{kind}"), by.get(f"random-{kind}")
        if graph is None or graph.size == 0:
            continue
        drop = base.p_c - graph.p_c
        drop_rand = base.p_c - rand.p_c
        drop_others = base.p_others - graph.p_others
        stderr = rand.p_c_sd / np.sqrt(rand.draws)
        out[kind] = {"size": graph.size, "drop_p_c": drop, "drop_p_c_random": drop_rand,
                     "drop_p_c_random_sd": rand.p_c_sd, "drop_top1_c": base.top1_c - graph.top1_c,
                     "drop_top1_c_random": base.top1_c - rand.top1_c, "drop_p_others": drop_others,
                     "faithfulness": _ratio(drop, drop_rand, 2 * stderr),
                     "z": (drop - drop_rand) / rand.p_c_sd if rand.p_c_sd > 0 else float("nan"),
                     "specificity": _ratio(drop, drop_others, 1e-3)}
    return out


def write_outputs(rows: Sequence[Row], summaries: dict[int, dict], out_dir: Path, run_dir: Path,
                  meta: dict) -> list[Path]:
    """CSV of every row, the Markdown summary, the figure and the viewer's JSON."""
    buf = io.StringIO()
    fields = list(Row.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({f: getattr(r, f) for f in fields})
    paths = [atomic.write_text(out_dir / "faithfulness.csv", buf.getvalue())]
    paths.append(atomic.write_text(out_dir / "faithfulness.md", markdown(rows, summaries, meta)))
    paths.append(plot(rows, summaries, out_dir / "faithfulness.png"))
    paths.append(atomic.write_json(run_dir / SUMMARY_FILE, viewer_summary(summaries, meta), indent=1))
    return paths


def _graph_digest(run_dir: Path, class_id: int) -> str | None:
    """What the class's graph file holds now (a part scored on another graph is stale)."""
    path = run_dir / "ag" / f"ag-{class_id}.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def save_parts(out_dir: Path, run_dir: Path, rows: Sequence[Row], summaries: dict[int, dict],
               raw: dict[str, np.ndarray], labels: np.ndarray, meta: dict) -> None:
    """Each scored class on its own (``OUT/classes/class-<c>.{json,npz}``), so that runs over a few classes
    each (``--classes``, one process per class) add up to the whole table instead of replacing it. Runs in
    parallel may each miss the others' last class in the tables: the last one to finish, rerun, has all."""
    for c, summary in summaries.items():
        mine = [dataclasses.asdict(r) for r in rows if r.class_id == c]
        save_raw(out_dir / PARTS / f"class-{c}.npz", labels, {k: raw[f"{k}-{c}"] for k in ("p", "top1")})
        doc = {"meta": meta, "graph": _graph_digest(run_dir, c), "rows": mine, "summary": summary}
        atomic.write_json(out_dir / PARTS / f"class-{c}.json", doc)


def collect_parts(out_dir: Path, run_dir: Path, meta: dict, raw: dict[str, np.ndarray]
                  ) -> tuple[list[Row], dict[int, dict], dict[str, np.ndarray]]:
    """Every class scored in ``out_dir`` with the same settings (``meta``: model, held-out images, draws,
    ablation) on its current graph, in class order; ``raw`` holds this run's baseline. Other parts are left
    out, with one log line."""
    rows, summaries, raw = [], {}, {k: raw[k] for k in ("p-none", "top1-none")}
    other = []
    for path in sorted(out_dir.glob(f"{PARTS}/class-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        doc = json.loads(path.read_text())
        c = int(path.stem.split("-")[1])
        if doc["meta"] != meta or doc.get("graph") != _graph_digest(run_dir, c):
            other.append(c)
            continue
        rows += [Row(**r) for r in doc["rows"]]
        summaries[c] = doc["summary"]
        with np.load(path.with_suffix(".npz")) as f:
            raw[f"p-{c}"], raw[f"top1-{c}"] = f["p"], f["top1"]
    if other:
        log.warning("classes %s in %s were scored with other settings or another graph: left out of the "
                    "tables (remove %s to drop them)", other, out_dir, out_dir / PARTS)
    return rows, summaries, raw


def save_raw(path: Path, labels: np.ndarray, raw: dict[str, np.ndarray]) -> Path:
    """Every image's p(true class) and top-1 under every ablation (``p-<class>``, ``top1-<class>``:
    ``[masks, images]``: graph channels, random channels..., graph edges, random edges...)."""
    with atomic.writing(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, labels=labels, **raw)
    return path


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.2f}"


def markdown(rows: Sequence[Row], summaries: dict[int, dict], meta: dict) -> str:
    names = {r.class_id: r.name for r in rows}
    lines = [f"Held-out images: {meta['images_per_class']} per class, {meta['random_sets']} random draws, "
             f"{meta['mode']} ablation. Drops are in mean p(true class), random as mean ± sd.", "",
             "| class | p(c) | graph channels | drop graph | drop random | faithfulness (z) | specificity "
             "| graph edges | drop graph | drop random | faithfulness (z) | specificity |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c, s in summaries.items():
        cells = [f"{names[c]} ({c})", f"{s['p_c']:.3f}"]
        for kind in ("channels", "edges"):
            k = s.get(kind)
            if k is None:
                cells += ["0", "", "", "", ""]
                continue
            cells += [str(k["size"]), f"{k['drop_p_c']:.3f}",
                      f"{k['drop_p_c_random']:.3f} ± {k['drop_p_c_random_sd']:.3f}",
                      f"{_fmt(k['faithfulness'])} ({_fmt(k['z'])})", _fmt(k["specificity"])]
        lines.append("| " + " | ".join(cells) + " |")
    uncut = sum(s.get("uncut_edges", 0) for s in summaries.values())
    if uncut:
        lines.append(f"\n{uncut} graph edges pass through an inner stage (no single kernel entry) and were "
                     "not cut.")
    lines.append("\nn/a: the denominator is not clearly positive (random drop within two standard errors "
                 "of 0; others' drop < 0.001). z: (graph drop - random mean) / random sd.")
    for kind in ("channels", "edges"):
        got = [s[kind] for s in summaries.values() if kind in s]
        if got:
            med = {key: float(np.nanmedian([g[key] for g in got])) if any(np.isfinite(g[key]) for g in got)
                   else float("nan") for key in ("faithfulness", "z", "specificity")}
            lines.append(f"\n{kind}: median faithfulness {_fmt(med['faithfulness'])}, "
                         f"median z {_fmt(med['z'])}, "
                         f"median specificity {_fmt(med['specificity'])} over {len(got)} classes.")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], summaries: dict[int, dict], path: Path) -> Path:
    """Per class: drop of mean p(c) under the graph vs random sets (mean ± sd), and the graph's side effect
    on the other classes' images, for channels and for edges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {r.class_id: r.name for r in rows}
    classes = list(summaries)
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.0 * len(classes) + 3), 3.6), sharey=False)
    x = np.arange(len(classes))
    for ax, kind in zip(axes, ("channels", "edges"), strict=True):
        got = [summaries[c].get(kind) for c in classes]
        g = [k["drop_p_c"] if k else 0.0 for k in got]
        o = [k["drop_p_others"] if k else 0.0 for k in got]
        r = [k["drop_p_c_random"] if k else 0.0 for k in got]
        sd = [k["drop_p_c_random_sd"] if k else 0.0 for k in got]
        ax.bar(x - 0.27, g, 0.27, label=f"graph {kind}: its class", color="#c44e52")
        ax.bar(x, o, 0.27, label=f"graph {kind}: other classes", color="#f0a0a0")
        ax.bar(x + 0.27, r, 0.27, yerr=sd, capsize=2, label=f"random {kind} (mean ± sd): its class",
               color="#8c8c8c")
        ax.set_xticks(x, [names[c] for c in classes], rotation=45, ha="right", fontsize=7)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel("drop of mean p(true class)", fontsize=8)
        ax.set_title(f"ablating the graph's {kind}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic.writing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def viewer_summary(summaries: dict[int, dict], meta: dict) -> dict:
    """``RUN/faithfulness.json``: ``{"meta": {mode, images_per_class, random_sets, data}, "classes":
    {"<id>": {"p_c", "top1_c", "channels"|"edges": {size, drop_p_c, drop_p_c_random, drop_p_c_random_sd,
    drop_top1_c, drop_top1_c_random, drop_p_others, faithfulness, z, specificity}, "uncut_edges" (where
    some graph edges were no single kernel entry)}}}``; NaN as null."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return None if isinstance(v, float) and not np.isfinite(v) else v

    return {"meta": meta, "classes": {str(c): clean(s) for c, s in summaries.items()}}


def load_held_out(spec: str, classes: Sequence[int], per_class: int, image_size: int, resize: str,
                  summit_compat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, S, S, 3]`` and labels of the held-out data, at most ``per_class`` per class, prepared
    as the run's aggregation prepared its images."""
    from summit_tf import data as data_mod

    source = data_mod.load(spec, image_size=image_size, resize=resize, half_pixel_centers=not summit_compat,
                           batch_size=32, max_images_per_class=per_class, classes=list(classes))
    images, labels = [], []
    for batch in source.dataset:
        images.append(batch["image"].numpy())
        labels.append(batch["label"].numpy())
    if not images:
        raise ValueError(f"--data {spec}: no images of classes {list(classes)}")
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def ensure_means(run_dir: Path, model, agg_config: dict, data: str | None, per_class: int,
                 batch_size: int) -> dict[str, np.ndarray]:
    """``RUN/channel_means.npz`` if it was made for this model from the same data and options, else one
    streaming pass over ``data`` (default: the run's aggregated data), at most ``per_class`` images per
    class."""
    from summit_tf import data as data_mod
    from summit_tf import intervene

    spec, resize = data or agg_config["data"], agg_config.get("resize", "squash")
    compat = bool(agg_config.get("summit_compat", False))
    made_from = json.dumps({"data": spec, "images_per_class": per_class, "resize": resize,
                            "summit_compat": compat}, sort_keys=True)
    path = run_dir / intervene.MEANS_FILE
    if path.exists():
        means, saved_spec, saved_from = intervene.load_means(path)
        if saved_spec == model.spec and set(model.layers) <= set(means) and saved_from == made_from:
            return means
        log.info("%s was made from other data or options: computing the means again", path)
    source = data_mod.load(spec, image_size=model.input_size, resize=resize, half_pixel_centers=not compat,
                           batch_size=batch_size, max_images_per_class=per_class)
    means = intervene.channel_means(model, (b["image"] for b in source.dataset), total=source.num_records)
    intervene.save_means(path, means, model.spec, made_from)
    return means


FLAGS = flags.FlagValues()
flags.DEFINE_string("run_dir", None, "run directory (aggregates.h5, ag/)", flag_values=FLAGS)
flags.DEFINE_string("data", None, "held-out data spec (images never aggregated), e.g. folder:DIR/val",
                    flag_values=FLAGS)
flags.DEFINE_string("classes", None, "classes to ablate (default: every class of the run)", flag_values=FLAGS)
flags.DEFINE_integer("images_per_class", 8, "held-out images per class", flag_values=FLAGS)
flags.DEFINE_integer("random_sets", 20, "random channel sets and random edge sets per class",
                     flag_values=FLAGS)
flags.DEFINE_enum("mode", "mean", ["mean", "zero"], "channel ablation: the channel's data mean or 0",
                  flag_values=FLAGS)
flags.DEFINE_string("means_data", None, "data for the channel means (default: the run's aggregated data)",
                    flag_values=FLAGS)
flags.DEFINE_integer("means_images_per_class", 50, "images per class for the channel means",
                     flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 8, "held-out images per pass", flag_values=FLAGS)
flags.DEFINE_integer("mask_batch", 64, "images x masks per batched pass", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "random draws", flag_values=FLAGS)
flags.DEFINE_string("out_dir", None, "output folder (default: RUN/faithfulness)", flag_values=FLAGS)


@dataclass
class HeldOut:
    """What every scoring pass shares: the model, held-out images with labels and model output indices,
    the ablation mode and channel means, and the pass sizes."""

    model: object
    images: np.ndarray
    labels: np.ndarray
    outputs: np.ndarray
    mode: str
    means: dict | None
    batch_size: int
    mask_batch: int


def score(held: HeldOut, graphs: dict[int, ClassGraph], random_sets: int, rng: np.random.Generator,
          edges: bool = True) -> tuple[list[Row], dict[int, dict], dict[str, np.ndarray]]:
    """Rows, per-class summaries and raw per-image arrays for every class graph (``edges=False``: channel
    ablations only)."""
    from summit_tf import imagenet
    from summit_tf.intervene import Ablation, Intervener
    from summit_tf.progress import Progress

    iv = Intervener(held.model, held.mode, held.means)
    args, opts = (iv, held.images, held.outputs), (held.batch_size, held.mask_batch)
    per_class = (1 + random_sets) * (2 if edges else 1)
    progress = Progress("faithfulness", (1 + len(graphs) * per_class) * len(held.images), unit="image passes")
    base = evaluate(*args, [Ablation()], *opts, progress)
    rows, summaries, raw = [], {}, {"p-none": base[0], "top1-none": base[1]}
    for c, g in graphs.items():
        rand_ch, rand_ed = random_ablations(held.model, g, random_sets, rng)
        ablations = [Ablation(channels=g.channels), *rand_ch]
        if edges:
            ablations += [Ablation(edges=g.edges), *rand_ed]
        p, top = evaluate(*args, ablations, *opts, progress)
        raw[f"p-{c}"], raw[f"top1-{c}"] = p, top
        n_ch, n_ed = Ablation(channels=g.channels).size()[0], Ablation(edges=g.edges).size()[1]
        r = 1 + random_sets
        blocks = {"none": (0, *base), "graph-channels": (n_ch, p[:1], top[:1]),
                  "random-channels": (n_ch, p[1:r], top[1:r])}
        if edges:
            blocks |= {"graph-edges": (n_ed, p[r:r + 1], top[r:r + 1]),
                       "random-edges": (n_ed, p[r + 1:], top[r + 1:])}
        mine = rows_for_class(c, imagenet.short_name(c), held.labels, blocks)
        rows += mine
        summaries[c] = class_summary(mine)
        if g.uncut_edges:
            summaries[c]["uncut_edges"] = g.uncut_edges
    progress.finish()
    return rows, summaries, raw


def run(run_dir: Path, data: str, classes: Sequence[int] | None, images_per_class: int, random_sets: int,
        mode: str, means_data: str | None, means_images_per_class: int, batch_size: int, mask_batch: int,
        seed: int, out_dir: Path) -> list[Path]:
    """The whole experiment (see the module docstring); returns the files written."""
    from summit_tf import store
    from summit_tf.models import load as load_model

    for name, value, least in (("images_per_class", images_per_class, 1), ("random_sets", random_sets, 2),
                               ("batch_size", batch_size, 1), ("mask_batch", mask_batch, 1),
                               ("means_images_per_class", means_images_per_class, 1)):
        if value < least:
            raise ValueError(f"--{name} must be >= {least}, got {value}")
    with store.load(run_dir / "aggregates.h5") as agg:
        cfg, present = dict(agg.config), [int(c) for c in agg.classes]
    chosen = list(classes) if classes else present
    missing = [c for c in chosen if c not in present or not (run_dir / "ag" / f"ag-{c}.json").exists()]
    if missing:
        raise ValueError(f"classes {missing} have no graph in {run_dir} (classes: {present})")
    model = load_model(cfg["model"], layers=cfg.get("layers"), summit_compat=cfg.get("summit_compat", False))
    graphs = {c: read_graph(run_dir / "ag" / f"ag-{c}.json", model) for c in chosen}
    means = ensure_means(run_dir, model, cfg, means_data, means_images_per_class, 32) if mode == "mean" \
        else None
    images, labels = load_held_out(data, present, images_per_class, model.input_size,
                                   cfg.get("resize", "squash"), cfg.get("summit_compat", False))
    outputs = model.class_to_output[labels].astype(np.int32)
    if (outputs < 0).any():
        raise ValueError(f"{model.spec} has no output for some classes of {data}")
    log.info("held out: %d images of %d classes; %d classes to ablate", len(images), len(set(labels)),
             len(chosen))
    held = HeldOut(model, images, labels, outputs, mode, means, batch_size, mask_batch)
    rows, summaries, raw = score(held, graphs, random_sets, np.random.default_rng(seed))
    meta = {"model": cfg["model"], "mode": mode, "images_per_class": images_per_class,
            "random_sets": random_sets, "data": data,
            "held_out_images": len(images), "seed": seed, "means_data": means_data,
            "means_images_per_class": means_images_per_class}
    save_parts(out_dir, run_dir, rows, summaries, raw, labels, meta)
    rows, summaries, raw = collect_parts(out_dir, run_dir, meta, raw)
    save_raw(out_dir / "faithfulness-raw.npz", labels, raw)
    return write_outputs(rows, summaries, out_dir, run_dir, meta)


def main(argv: Sequence[str]) -> int:
    from summit_tf.cli import require, run_command
    from summit_tf.spec_grammar import parse_classes

    def body() -> None:
        require(FLAGS, "run_dir", "data")
        run_dir = Path(FLAGS.run_dir)
        if not (run_dir / "aggregates.h5").exists():
            raise FileNotFoundError(f"--run_dir {run_dir}: no aggregates.h5 (run the pipeline first)")
        paths = run(run_dir, FLAGS.data, parse_classes(FLAGS.classes, "--classes"), FLAGS.images_per_class,
                    FLAGS.random_sets, FLAGS.mode, FLAGS.means_data, FLAGS.means_images_per_class,
                    FLAGS.batch_size, FLAGS.mask_batch, FLAGS.seed,
                    Path(FLAGS.out_dir) if FLAGS.out_dir else run_dir / "faithfulness")
        print(paths[1].read_text())
        print("wrote " + ", ".join(str(p) for p in paths))

    return run_command(FLAGS, argv, __doc__ or "", body)


if __name__ == "__main__":
    from summit_tf.cli import entry_point

    entry_point(main)()
