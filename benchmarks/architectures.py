"""Modern CNNs through the Keras adapter (issue #15): layers, links by kind, links missing and why, checked.

For each ``keras.applications`` architecture, built with random weights (BatchNorm statistics and layer
scales randomized too, so folding is exercised) at its smallest legal input size:

- *layers*: the adapter's layer tensors equal the Keras model's own intermediate outputs;
- *exact*: for every layer with incoming links, the difference of its pre-activation between two random
  images equals the sum over its links of ``kernel (*) difference of the link input`` in float64 (biases
  cancel in the difference) to 1e-4 of the tensor's largest value, i.e. the links are the whole linear
  piece; layers where part of the sum
  comes through a path that is no link (a pooled shortcut) are listed as *partial*;
- *influence*: sampled pairs of every link, ``link_influence`` against a float64 NumPy/SciPy map
  (``correlate2d`` of the zero-padded input channel with the pair's kernel, the conv's stride);
- *interventions*: links whose edges can be cut (an output tensor of their own, by kind, out of all); the
  call-by-call run that interventions use (``edited_tensors``, nothing edited) against the layers and
  logits of ``tensors()``; each link output tensor it edits against the pre-activation that *exact*
  rebuilds from the links (so a cut, ``x_I (*) K`` subtracted there, is those kernel entries zeroed);
- *smoke* (``--smoke``): a two-class aggregation -> graph -> feature visualization run, tiny.

``python -m benchmarks.architectures [--models=ResNet50,...] [--smoke]`` prints the BUILD_NOTES table.
``tests/test_architectures.py`` runs the same checks on a subset.
"""

from __future__ import annotations

import collections
import importlib
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import scipy.signal
import tensorflow as tf
from absl import flags

from summit_tf.aggregation.influence import link_influence
from summit_tf.cli import entry_point, run_command
from summit_tf.models import keras_model
from summit_tf.models.base import Link, SummitModel

SIZES = {"ResNet50": 32, "ResNet50V2": 32, "DenseNet121": 32, "EfficientNetB0": 32, "EfficientNetV2B0": 32,
         "MobileNetV2": 32, "MobileNetV3Small": 32, "ConvNeXtTiny": 32, "InceptionV3": 75, "Xception": 71,
         "VGG16": 32}

FLAGS = flags.FlagValues()
flags.DEFINE_list("models", list(SIZES), "keras.applications architectures checked", flag_values=FLAGS)
flags.DEFINE_bool("smoke", False, "also a two-class aggregation -> graph -> feature visualization run each",
                  flag_values=FLAGS)


@dataclass
class Built:
    name: str
    keras: keras.Model
    adapter: SummitModel
    missing: list[str] = field(default_factory=list)  # the loader's message on layers without links


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def randomize_statistics(model: keras.Model, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and layer scales (fresh ones are identities or 1e-6)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            shapes = [w.shape for w in layer.get_weights()]
            values = [rng.uniform(0.7, 1.3, s) if i in (0, len(shapes) - 1) else rng.normal(0, 0.1, s)
                      for i, s in enumerate(shapes)]
            layer.set_weights(values)
        elif kind == "LayerScale":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])


def build(name: str, seed: int = 0) -> Built:
    """The application with random weights and the adapter over it; the loader's log is captured."""
    keras.utils.set_random_seed(seed)
    size = SIZES[name]
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                              classifier_activation=None)
    randomize_statistics(model, seed)
    capture = _Capture()
    logger = logging.getLogger("summit_tf.models.graph_links")
    logger.addHandler(capture)
    try:
        adapter = keras_model.from_application(model, name, f"keras_app:{name}?weights=none&size={size}")
    finally:
        logger.removeHandler(capture)
    return Built(name, model, adapter, capture.messages)


def images(built: Built, count: int = 2, seed: int = 1) -> tf.Tensor:
    size = built.adapter.input_size
    return tf.random.stateless_uniform([count, size, size, 3], seed=[seed, 7])


def layer_error(built: Built, batch: tf.Tensor) -> float:
    """Largest difference, relative to the layer's largest value, between the adapter's layers and the
    Keras model's own outputs of those layers."""
    ops = {op.name: op for op in built.keras.operations}
    net = keras.Model(built.keras.inputs[0], [ops[layer].output for layer in built.adapter.layers])
    module = importlib.import_module(
        f"keras.applications.{getattr(keras.applications, built.name).__module__.rsplit('.', 1)[-1]}")
    expected = net(module.preprocess_input(batch.numpy() * 255.0))
    got = built.adapter.tensors(batch, built.adapter.layers)
    worst = 0.0
    for layer, want in zip(built.adapter.layers, expected, strict=True):
        want = np.asarray(want, np.float64)
        diff = np.abs(got[layer].numpy() - want).max()
        worst = max(worst, float(diff / max(np.abs(want).max(), 1e-12)))
    return worst


def conv64(x: np.ndarray, link: Link) -> np.ndarray:
    """float64 ``x (*) link.kernel`` with the link's stride and padding (TF semantics)."""
    kernel = link.kernel.astype(np.float64)
    return tf.nn.conv2d(x.astype(np.float64), kernel, link.stride, link.padding).numpy()


def reconstruction(built: Built, batch: tf.Tensor, rel: float = 1e-4) -> tuple[int, list[str]]:
    """Layers whose pre-activation differences the links rebuild exactly, and those they rebuild only in
    part (another path, not a link, contributes)."""
    adapter = built.adapter
    into = collections.defaultdict(list)
    for link in adapter.links:
        into[link.dst].append(link)
    pre = {dst: adapter.pre_activations.get(dst, dst) for dst in into}
    keys = list(dict.fromkeys([*pre.values(), *(link.input for link in adapter.links)]))
    feats = {k: v.numpy().astype(np.float64) for k, v in adapter.tensors(batch[:2], keys).items()}
    exact, partial = 0, []
    for dst, links in into.items():
        target = feats[pre[dst]][:1] - feats[pre[dst]][1:]
        rebuilt = np.zeros_like(target)
        covered = np.zeros(target.shape[-1], bool)
        for link in links:
            delta = feats[link.input][:1] - feats[link.input][1:]
            rebuilt[..., link.dst_offset:link.dst_offset + link.cout] += conv64(delta, link)
            covered[link.dst_offset:link.dst_offset + link.cout] = True
        # relative to the tensor's own values: with random weights two images can give nearly equal deep
        # activations, whose difference is then mostly float32 rounding
        scale = max(np.abs(feats[pre[dst]][..., covered]).max(), 1e-12)
        err = np.abs(rebuilt - target)[..., covered].max() / scale
        if err <= rel and covered.all():
            exact += 1
        else:
            partial.append(f"{dst} ({err:.1e}{'' if covered.all() else ', channels without link'})")
    return exact, partial


def pair_reference(x: np.ndarray, link: Link, i: int, j: int) -> float:
    """float64 max over space of input channel i cross-correlated with ``kernel[:, :, i, j]``."""
    kh, kw = link.kernel.shape[:2]
    channel = x[:, :, i].astype(np.float64)
    if link.padding == "SAME":
        pads = []
        for size, k in zip(channel.shape, (kh, kw), strict=True):
            out = -(-size // link.stride)
            total = max((out - 1) * link.stride + k - size, 0)
            pads.append((total // 2, total - total // 2))
        channel = np.pad(channel, pads)
    maps = scipy.signal.correlate2d(channel, link.kernel[:, :, i, j].astype(np.float64), mode="valid")
    return float(maps[::link.stride, ::link.stride].max())


def influence_error(built: Built, batch: tf.Tensor, pairs: int = 4, seed: int = 0) -> tuple[float, int]:
    """Largest relative difference of ``link_influence`` from the float64 reference over ``pairs`` sampled
    pairs of every link (identity links: diagonal pairs, and -inf elsewhere); and the pairs checked."""
    rng = np.random.default_rng(seed)
    adapter = built.adapter
    feats = adapter.tensors(batch[:1], list(dict.fromkeys(link.input for link in adapter.links)))
    worst, checked = 0.0, 0
    for link in adapter.links:
        x = feats[link.input]
        js = rng.integers(0, link.cout, pairs)
        is_ = js if link.kind == "identity" else rng.integers(0, link.cin, pairs)
        if link.kind == "identity":
            values = link_influence(x, link).numpy()[0]
            assert np.all(values[~np.eye(link.cout, dtype=bool)] == -np.inf), link.name
            rows = js
        else:  # only the sampled output channels: the same kernel columns, a fraction of the maps
            values = link_influence(x, replace(link, kernel=link.kernel[:, :, :, js])).numpy()[0]
            rows = np.arange(pairs)
        x = x.numpy()[0]
        for i, j, row in zip(is_, js, rows, strict=True):
            ref = pair_reference(x, link, int(i), int(j))
            scale = max(np.abs(x[:, :, i]).max() * np.abs(link.kernel[:, :, i, j]).sum(), 1e-12)
            worst = max(worst, abs(float(values[row, i]) - ref) / float(scale))
            checked += 1
    return worst, checked


def intervention_check(built: Built, batch: tf.Tensor) -> tuple[dict, float]:
    """Links with an output tensor (cuttable), by kind, and the largest relative difference of the
    call-by-call run (layers, logits, each link output tensor) from ``tensors()``."""
    adapter = built.adapter
    seen: dict[str, tf.Tensor] = {}

    def record(key, value, lookup):
        seen[key] = value
        return value

    keys = [*adapter.layers, "logits"]
    got = adapter.edited_tensors(batch, keys, record)
    pre = {link.dst: adapter.pre_activations.get(link.dst, link.dst) for link in adapter.links}
    want = adapter.tensors(batch, list(dict.fromkeys([*keys, *pre.values()])))
    pairs = [(got[k], want[k]) for k in keys]
    for link in adapter.links:
        if link.name in adapter.link_outputs:
            whole = want[pre[link.dst]][..., link.dst_offset:link.dst_offset + link.cout]
            pairs.append((seen[adapter.link_outputs[link.name]], whole))
    worst = max(float(np.abs(a.numpy() - b.numpy()).max() / max(np.abs(b.numpy()).max(), 1e-12))
                for a, b in pairs)
    cuttable = collections.Counter(link.kind for link in adapter.links if link.name in adapter.link_outputs)
    return dict(cuttable), worst


def link_table(built: Built) -> dict:
    kinds = collections.Counter(link.kind for link in built.adapter.links)
    skips = sum("/skip/" in link.name for link in built.adapter.links)
    return {"layers": len(built.adapter.layers), "links": len(built.adapter.links), "kinds": dict(kinds),
            "skip": skips}


def smoke(built: Built, folder: Path) -> str:
    """Two classes x 2 images: aggregation -> attribution graph -> 2-step feature vis of two graph nodes."""
    import feature_vis as fv
    from summit_tf import data
    from summit_tf.aggregation import engine
    from summit_tf.aggregation.config import AggregateConfig
    from summit_tf.graph.attribution import attribution_graph
    from summit_tf.store import load as load_aggregates

    size = built.adapter.input_size
    rng = np.random.default_rng(0)
    images_dir = folder / "images"
    for synset in ("n01440764", "n02102040"):
        (images_dir / synset).mkdir(parents=True, exist_ok=True)
        for k in range(2):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            tf.io.write_file(str(images_dir / synset / f"{k}.png"), tf.io.encode_png(pixels))
    cfg = AggregateConfig(model=built.adapter.spec, data=f"folder:{images_dir}", out=str(folder / "agg.h5"),
                          batch_size=4, influence_topk=2, overwrite=True)

    def open_source(skip: int):
        return data.load(cfg.data, image_size=size, batch_size=cfg.batch_size, skip_records=skip)

    engine.aggregate(cfg, built.adapter, open_source, stream=open(folder / "log.txt", "w"))
    with load_aggregates(cfg.out) as agg:
        graph = attribution_graph(agg, 0)
        nodes = graph.kept_nodes()
    pictures = fv.render_channels(built.adapter, nodes[-2:], fv.RenderSettings(steps=2, size=size, seed=0))
    return f"{len(nodes)} nodes, {len(pictures)} pictures"


def main(argv: list[str]) -> int:
    return run_command(FLAGS, argv, __doc__ or "", report, logs=False)


def report() -> None:
    import tempfile

    unknown = [name for name in FLAGS.models if name not in SIZES]
    if unknown:
        raise ValueError(f"--models: unknown {', '.join(unknown)}; known: {', '.join(SIZES)}")
    print("| model | size | layers | links (by kind) | skip links | layers w/o incoming link "
          "| exact / partial | layer err | influence err (pairs) | cuttable links (by kind) | edit-run err "
          "| smoke |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in FLAGS.models:
        t0 = time.monotonic()
        built = build(name)
        batch = images(built)
        table = link_table(built)
        exact, partial = reconstruction(built, batch)
        err, pairs = influence_error(built, batch)
        cuttable, edit_err = intervention_check(built, batch)
        cut = ", ".join(f"{k} {v}" for k, v in sorted(cuttable.items()))
        result = ""
        if FLAGS.smoke:
            with tempfile.TemporaryDirectory() as folder:
                result = smoke(built, Path(folder))
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(table["kinds"].items()))
        missing = "; ".join(built.missing) or "-"
        layer_err = layer_error(built, batch)
        print(f"| {name} | {SIZES[name]} | {table['layers']} | {table['links']} ({kinds}) | {table['skip']} "
              f"| {missing} | {exact} / {len(partial)} {', '.join(partial)} | {layer_err:.1e} "
              f"| {err:.1e} ({pairs}) | {sum(cuttable.values())} ({cut}) | {edit_err:.1e} "
              f"| {result} ({time.monotonic() - t0:.0f} s) |", flush=True)


if __name__ == "__main__":
    entry_point(main)()
