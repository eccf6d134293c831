"""The aggregation engine against a float64 NumPy/SciPy reference of SUMMIT's whole definition.

The toy model's activations are taken as given; everything after them (channel reductions, mass and
top-k selection, per-pair influence maps via ``scipy.signal.correlate2d`` with TF's stride/padding,
top-k with ties by the lower index, excluded channels, top-1 and the probability histogram) is
recomputed here independently and the counts must be identical. Resume after an interruption and
the input errors are checked on the same toy setup.
"""

from __future__ import annotations

import dataclasses
import io
import json

import h5py
import numpy as np
import pytest
import tensorflow as tf
from scipy.signal import correlate2d
from toy import MemorySource, toy_model

from summit_tf import store
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.engine import AggregateError, aggregate, checkpoint_path

SIZE = 17
CLASSES = np.array([0, 5, 217, 999])


def make_data(n: int = 23, seed: int = 0, skipped: int = 3):
    """Random images (two of them constant, for exact ties), labels, and stream positions with gaps."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (n, SIZE, SIZE, 3)).astype(np.float32)
    images[1] = 0.0
    images[n // 2] = 0.5
    labels = rng.choice(CLASSES, n).astype(np.int32)
    index = np.sort(rng.choice(n + skipped, n, replace=False)).astype(np.int64)
    return images, labels, index


def opener(images, labels, index, batch_size, classes=CLASSES, fail_after=None, max_images=None):
    """``open_source`` over arrays; ``fail_after`` batches raises mid-stream (an interrupted run)."""
    num_records = int(index[-1]) + 1 + 2  # two unreadable records after the last good one
    if max_images is not None:  # like summit_tf.data: the cap counts records, readable or not
        num_records = min(num_records, max_images)

    def open_source(skip):
        keep = (index >= skip) & (index < num_records)
        ds = tf.data.Dataset.from_tensor_slices({"image": images[keep], "label": labels[keep],
                                                 "index": index[keep]})
        ds = ds.batch(batch_size)
        if fail_after is not None:
            def boom(i, batch):
                tf.debugging.assert_less(i, tf.constant(fail_after, tf.int64), message="simulated crash")
                return batch
            ds = ds.enumerate().map(boom)
        return MemorySource("memory", ds, num_records, None if classes is None else list(classes))

    return open_source


# ---------------------------------------------------------------- float64 reference


def ranked(values: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Allowed channel indices by decreasing value, ties by the lower index."""
    idx = np.flatnonzero(allowed)
    return idx[np.lexsort((idx, -values[idx]))]


def ref_reduce(x: np.ndarray, how: str) -> np.ndarray:
    """Reduce ``[..., H, W]`` maps over the last two axes."""
    if how == "max":
        return x.max(axis=(-2, -1))
    if how == "mean":
        return x.mean(axis=(-2, -1))
    if how == "sum":
        return x.sum(axis=(-2, -1))
    return np.sqrt((x ** 2).sum(axis=(-2, -1)))


def ref_select(score: np.ndarray, spec: str, allowed: np.ndarray) -> np.ndarray:
    kind, arg = spec.split(":")
    order = ranked(score, allowed)
    if kind == "topk":
        return order[: int(arg)]
    mass = np.maximum(score[order], 0.0)
    total = mass.sum()
    if total == 0:
        return order[:1]
    before = (np.cumsum(mass) - mass) / total  # share held by the channels ranked above
    # take channels until the cumulative share reaches TAU (the crossing one included); channels
    # without mass only as the compulsory first one
    taken = (before < float(arg)) & (mass > 0)
    return order[: max(1, int(taken.sum()))]


def tf_correlate(x: np.ndarray, k: np.ndarray, step: int, padding: str) -> np.ndarray:
    """One 2-D cross-correlation with TF's stride and SAME/VALID padding."""
    (h, w), (kh, kw) = x.shape, k.shape
    if padding == "SAME":
        pads = []
        for size, ks in ((h, kh), (w, kw)):
            out = -(-size // step)
            total = max((out - 1) * step + ks - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, pads)
    return correlate2d(x, k, mode="valid")[::step, ::step]


def reference(model, cfg: AggregateConfig, images, labels, excluded: dict[str, np.ndarray]):
    feats = {k: np.asarray(v, np.float64) for k, v in model.features(tf.constant(images)).items()}
    classes = np.unique(labels)
    slot = {c: i for i, c in enumerate(classes)}
    K = classes.size
    A = {layer: np.zeros((K, model.channels[layer]), np.int64) for layer in model.layers}
    I = {link.name: np.zeros((K, link.cout, link.cin), np.int64) for link in model.links}
    count = np.zeros(K, np.int64)
    correct = np.zeros(K, np.int64)
    hist = np.zeros((K, 20), np.int64)
    step = cfg.stride
    for n, label in enumerate(labels):
        s = slot[label]
        count[s] += 1
        for layer in model.layers:
            act = np.moveaxis(feats[layer][n], -1, 0)  # [C, H, W]
            allowed = ~excluded.get(layer, np.zeros(act.shape[0], bool))
            score = ref_reduce(act, cfg.activation_reduce)
            A[layer][s, ref_select(score, cfg.activation_select, allowed)] += 1
        for link in model.links:
            x = feats[link.input][n]
            allowed = ~excluded.get(link.src, np.zeros(link.cin, bool))
            for j in range(link.cout):
                kernel = link.kernel[:, :, :, j].astype(np.float64)
                maps = [tf_correlate(x[:, :, i], kernel[:, :, i], link.stride * step, link.padding)
                        for i in range(link.cin)]
                values = ref_reduce(np.stack(maps), cfg.influence_reduce)
                I[link.name][s, j, ranked(values, allowed)[: cfg.influence_topk]] += 1
        logits = feats["logits"][n]
        target = model.class_to_output[label]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        hist[s, min(int(np.floor(p[target] * 20)), 19)] += 1
        correct[s] += int(np.argmax(logits) == target)
    return classes, count, A, I, correct, hist


def run(tmp_path, model, images, labels, index, batch_size=5, name="run.h5", **flags):
    cfg = AggregateConfig(model="toy", data="memory", out=str(tmp_path / name), batch_size=batch_size,
                          **flags)
    log = io.StringIO()
    summary = aggregate(cfg, model, opener(images, labels, index, batch_size, max_images=cfg.max_images),
                        stream=log)
    return cfg, summary, log.getvalue()


CONFIGS = [
    dict(),
    dict(activation_reduce="mean", activation_select="topk:3", influence_reduce="sum", influence_stride=2,
         influence_topk=3, exclude_channels={"conv1": (0, 5), "conv2": (11,)}),
    dict(activation_reduce="l2", activation_select="mass:0.3", influence_reduce="l2", influence_topk=2,
         summit_compat=True, exclude_channels={"conv2": (1, 2, 3)}),
    dict(activation_reduce="sum", activation_select="mass:1.0", influence_topk=1),
]


@pytest.mark.parametrize("flags", CONFIGS, ids=["summit", "topk-sum-excl", "l2-compat", "sum-all-mass"])
def test_counts_equal_float64_reference(tmp_path, flags):
    model = toy_model(size=SIZE, seed=1, num_outputs=1000)
    images, labels, index = make_data(seed=len(tmp_path.name))
    cfg, summary, log = run(tmp_path, model, images, labels, index, batch_size=5, **flags)
    excluded = {}
    for space, ids in cfg.exclude_channels.items():
        excluded[space] = np.zeros(model.channels[space], bool)
        excluded[space][list(ids)] = True
    classes, count, A, I, correct, hist = reference(model, cfg, images, labels, excluded)
    with store.load(cfg.out) as agg:
        np.testing.assert_array_equal(agg.classes, classes)
        np.testing.assert_array_equal(agg.class_count, count)
        for layer in model.layers:
            np.testing.assert_array_equal(agg.A[layer], A[layer], err_msg=layer)
        for name in I:
            np.testing.assert_array_equal(np.asarray(agg.I[name]), I[name], err_msg=name)
            assert agg.links[name].src == next(link.src for link in model.links if link.name == name)
        np.testing.assert_array_equal(agg.correct, correct)
        np.testing.assert_array_equal(agg.prob_hist, hist)
        assert agg.num_images == len(labels)
        # gaps in the stream positions plus the two unreadable records after the last image
        assert agg.num_skipped == int(index[-1]) + 1 - len(labels) + 2 == summary.skipped
        assert agg.config["influence_stride"] == cfg.stride
        assert agg.config["activation_select"] == cfg.activation_select
    assert f"{summary.skipped} skipped" in log
    assert not checkpoint_path(cfg.out).exists()


def tied_model():
    """The toy model with conv1 channels 2..5 forced to zero: exact ties in A and in conv2's inputs."""
    model = toy_model(size=SIZE, seed=1)
    mask = np.ones(8, np.float32)
    mask[2:6] = 0.0
    inner = model.features_fn

    @tf.function
    def features(images):
        feats = dict(inner(images))
        feats["conv1"] = feats["conv1"] * mask
        return feats

    return dataclasses.replace(model, features_fn=features)


def test_ties_go_to_the_lower_channel(tmp_path):
    model = tied_model()
    images, labels, index = make_data(seed=6)
    flags = dict(activation_select="topk:6", influence_topk=6, influence_reduce="max")
    cfg, _, _ = run(tmp_path, model, images, labels, index, **flags)
    classes, count, A, I, correct, hist = reference(model, cfg, images, labels, {})
    with store.load(cfg.out) as agg:
        # at most four live channels, then the zero-score ones by index: 2 and 3 always, 4 and 5 only
        # for an image whose live channels are not all positive
        np.testing.assert_array_equal(agg.A["conv1"][:, 2:4], np.stack([count, count], 1))
        assert agg.A["conv1"][:, 4].sum() < count.sum() // 4 and agg.A["conv1"][:, 5].sum() == 0
        np.testing.assert_array_equal(agg.A["conv1"], A["conv1"])
        np.testing.assert_array_equal(np.asarray(agg.I["conv2"]), I["conv2"])
        assert np.asarray(agg.I["conv2"])[:, :, 2].sum() > np.asarray(agg.I["conv2"])[:, :, 5].sum()


def test_interrupted_run_resumes_to_identical_counts(tmp_path):
    model = toy_model(size=SIZE, seed=2)
    images, labels, index = make_data(n=29, seed=3)
    whole, _, _ = run(tmp_path, model, images, labels, index, batch_size=4, name="whole.h5")

    out = tmp_path / "part.h5"
    cfg = AggregateConfig(model="toy", data="memory", out=str(out), batch_size=4, checkpoint_every=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="simulated crash"):
        aggregate(cfg, model, opener(images, labels, index, 4, fail_after=5), stream=io.StringIO())
    assert checkpoint_path(out).exists() and not out.exists()
    with pytest.raises(AggregateError, match="--resume"):
        aggregate(cfg, model, opener(images, labels, index, 4), stream=io.StringIO())
    stale = tmp_path / ".part.h5.ckpt.h5.abc123.tmp"  # what a kill during a checkpoint write leaves
    stale.write_bytes(b"partial")
    log = io.StringIO()
    summary = aggregate(dataclasses.replace(cfg, resume=True), model, opener(images, labels, index, 4),
                        stream=log)
    assert summary.resumed_from == 16 and "resuming" in log.getvalue()
    assert not checkpoint_path(out).exists() and not stale.exists()
    assert_same_datasets(whole.out, out)


def test_resume_reads_blocks_and_classes_first_checkpoints(tmp_path, monkeypatch):
    """Counters cross the device in blocks of a few entries (odd sizes, every block path), and a checkpoint
    written before the counters were flat (classes-first arrays) resumes to the same counts."""
    from summit_tf.aggregation import checkpoint, engine

    model = toy_model(size=SIZE, seed=2)
    images, labels, index = make_data(n=29, seed=6)
    whole, _, _ = run(tmp_path, model, images, labels, index, batch_size=4, name="whole.h5")
    monkeypatch.setattr(checkpoint, "READ_BLOCK", 7)
    monkeypatch.setattr(engine, "READ_BLOCK", 7)
    out = tmp_path / "part.h5"
    cfg = AggregateConfig(model="toy", data="memory", out=str(out), batch_size=4, checkpoint_every=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="simulated crash"):
        aggregate(cfg, model, opener(images, labels, index, 4, fail_after=5), stream=io.StringIO())
    links = {f"I/{store.link_key(link.name)}": (link.cout, link.cin) for link in model.links}
    with h5py.File(checkpoint_path(out), "r+") as f:
        k = f["classes"].size
        shapes = {"prob_hist": (store.PROB_BINS,), **links,
                  **{f"A/{layer}": (c,) for layer, c in model.channels.items()}}
        for name, rest in shapes.items():
            flat = f[name][()]
            assert flat.ndim == 1
            del f[name]
            f[name] = flat.reshape(k, *rest)
    aggregate(dataclasses.replace(cfg, resume=True), model, opener(images, labels, index, 4),
              stream=io.StringIO())
    assert_same_datasets(whole.out, out)


def assert_same_datasets(a, b) -> None:
    """Every dataset and count attribute of two aggregates files is identical."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names = []
        fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) else None)
        assert names and set(names) == set(_datasets(fb))
        for n in names:
            np.testing.assert_array_equal(fa[n][()], fb[n][()], err_msg=n)
        for key in ("model", "config", "num_images", "num_skipped"):
            assert fa.attrs[key] == fb.attrs[key], key


def _datasets(f):
    names = []
    f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
    return names


def test_max_images_and_resume_with_a_cap(tmp_path):
    model = toy_model(size=SIZE, seed=2)
    images, labels, index = make_data(n=29, seed=4)
    whole, summary, _ = run(tmp_path, model, images, labels, index, batch_size=4, name="whole.h5",
                            max_images=21)
    readable = int((index < 21).sum())
    assert summary.images == readable and summary.skipped == 21 - readable > 0
    out = tmp_path / "part.h5"
    cfg = AggregateConfig(model="toy", data="memory", out=str(out), batch_size=4, checkpoint_every=1,
                          max_images=21)
    with pytest.raises(tf.errors.InvalidArgumentError):
        aggregate(cfg, model, opener(images, labels, index, 4, fail_after=3, max_images=21),
                  stream=io.StringIO())
    aggregate(dataclasses.replace(cfg, resume=True), model, opener(images, labels, index, 4, max_images=21),
              stream=io.StringIO())
    assert_same_datasets(whole.out, out)


def test_resume_refuses_other_settings(tmp_path):
    model = toy_model(size=SIZE, seed=2)
    images, labels, index = make_data(n=12, seed=5)
    out = tmp_path / "r.h5"
    # checkpoints by time only: a tiny interval writes one after every batch
    cfg = AggregateConfig(model="toy", data="memory", out=str(out), batch_size=4, checkpoint_minutes=1e-9)
    with pytest.raises(tf.errors.InvalidArgumentError):
        aggregate(cfg, model, opener(images, labels, index, 4, fail_after=1), stream=io.StringIO())
    assert checkpoint_path(out).exists()
    other = dataclasses.replace(cfg, resume=True, influence_topk=2)
    with pytest.raises(AggregateError, match="other settings.*influence_topk"):
        aggregate(other, model, opener(images, labels, index, 4), stream=io.StringIO())
    # --overwrite discards the checkpoint and starts over
    aggregate(dataclasses.replace(cfg, overwrite=True), model, opener(images, labels, index, 4),
              stream=io.StringIO())
    assert out.exists() and not checkpoint_path(out).exists()
    with pytest.raises(AggregateError, match="exists"):
        aggregate(cfg, model, opener(images, labels, index, 4), stream=io.StringIO())


def _drop_setting(path, key: str) -> None:
    """Rewrite a file's stored config as a summit-tf from before ``key`` existed wrote it."""
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["config"])
        del config[key]
        f.attrs["config"] = json.dumps(config)


def test_resume_of_a_finished_run_checks_its_settings(tmp_path):
    """``--resume`` reuses a complete output only when it was counted with the run's settings (a file from
    before a setting existed counts as its default), else refuses with a pointer to --overwrite."""
    model = toy_model(size=SIZE, seed=2)
    images, labels, index = make_data(n=8, seed=5)
    cfg, _, _ = run(tmp_path, model, images, labels, index, batch_size=4)
    _drop_setting(cfg.out, "jpeg_max_ratio")
    log = io.StringIO()
    again = aggregate(dataclasses.replace(cfg, resume=True), model, opener(images, labels, index, 4),
                      stream=log)
    assert "nothing to do" in log.getvalue() and again.resumed_from == again.images
    for change in (dict(influence_topk=2), dict(jpeg_max_ratio=2), dict(layers=("conv1", "conv2")),
                   dict(max_images_per_class=1)):
        other = dataclasses.replace(cfg, resume=True, **change)
        with pytest.raises(AggregateError, match=f"complete but was counted with other settings.*"
                                                 f"{next(iter(change))}.*--overwrite"):
            aggregate(other, model, opener(images, labels, index, 4), stream=io.StringIO())


def test_checkpoint_from_before_a_setting_resumes_at_its_default(tmp_path):
    model = toy_model(size=SIZE, seed=2)
    images, labels, index = make_data(n=12, seed=5)
    whole, _, _ = run(tmp_path, model, images, labels, index, batch_size=4, name="whole.h5")
    cfg = AggregateConfig(model="toy", data="memory", out=str(tmp_path / "r.h5"), batch_size=4,
                          checkpoint_every=1)
    with pytest.raises(tf.errors.InvalidArgumentError):
        aggregate(cfg, model, opener(images, labels, index, 4, fail_after=1), stream=io.StringIO())
    _drop_setting(checkpoint_path(cfg.out), "jpeg_max_ratio")
    log = io.StringIO()
    aggregate(dataclasses.replace(cfg, resume=True), model, opener(images, labels, index, 4), stream=log)
    assert "resuming from" in log.getvalue()
    assert_same_datasets(whole.out, cfg.out)


@pytest.mark.parametrize("flags, message", [
    (dict(layers=("conv1", "nope")), "unknown layer"),
    (dict(exclude_channels={"conv9": (1,)}), "unknown layer 'conv9'"),
    (dict(exclude_channels={"conv1": (8,)}), "has 8 channels"),
    (dict(exclude_channels={"conv1": tuple(range(8))}), "every channel"),
    (dict(influence_topk=9), "exceeds the 8 selectable"),
])
def test_input_errors(tmp_path, flags, message):
    model = toy_model(size=SIZE)
    images, labels, index = make_data(n=6)
    with pytest.raises(AggregateError, match=message):
        run(tmp_path, model, images, labels, index, **flags)


def test_classes_the_model_cannot_output(tmp_path):
    model = toy_model(size=SIZE)
    outputs = model.class_to_output.copy()
    outputs[999] = -1
    model = dataclasses.replace(model, class_to_output=outputs)
    images, labels, index = make_data(n=6)
    with pytest.raises(AggregateError, match="does not fit the model"):
        run(tmp_path, model, images, labels, index)
    # with unknown source classes the run uses the model's classes and stops at the first stray label
    cfg = AggregateConfig(model="toy", data="memory", out=str(tmp_path / "x.h5"), batch_size=3)
    labels[4] = 999
    with pytest.raises(AggregateError, match=r"label\(s\) \[999\]"):
        aggregate(cfg, model, opener(images, labels, index, 3, classes=None), stream=io.StringIO())


def test_layer_subset_keeps_only_links_inside_it(tmp_path):
    model = toy_model(size=SIZE)
    images, labels, index = make_data(n=7)
    cfg, _, log = run(tmp_path, model, images, labels, index, layers=("conv2", "conv1"))
    with store.load(cfg.out) as agg:
        assert agg.layers == ["conv1", "conv2"] and list(agg.links) == ["conv2"]
        assert agg.config["layers"] == ["conv1", "conv2"]
        # every image selects at least one channel per layer
        assert (agg.A["conv1"].sum(axis=1) >= agg.class_count).all()
    assert "accumulators" in log


def test_graph_reads_a_run_excluding_channels_outside_its_layers(tmp_path):
    """Exclusions of an inner space and of a layer the run did not count are applied while counting; the
    graph then numbers the vertices of the run's own layers only."""
    from summit_tf.graph import build

    model = dataclasses.replace(toy_model(size=SIZE), inner_channels={"sep3/depthwise": 12})
    images, labels, index = make_data(n=7)
    cfg, _, _ = run(tmp_path, model, images, labels, index, layers=("conv2", "sep3"),
                    exclude_channels={"conv1": (0,), "sep3/depthwise": (1,), "conv2": (3,)})
    with store.load(cfg.out) as agg:
        st = build.structure(agg)
    assert list(st.excluded) == ["conv2"] and st.vertex["conv2"][3] == -1
    assert st.num_vertices == 12 - 1 + 16


def test_non_finite_model_outputs_stop_the_run(tmp_path):
    """A NaN inside the network (here: conv1 of one image) stops the run before any count of that batch
    is added, with the records of the batch; no output file is written."""
    model = toy_model(size=SIZE, seed=3)
    inner = model.features_fn

    @tf.function
    def features(images):
        feats = dict(inner(images))
        poisoned = tf.reduce_all(tf.equal(images, 0.5), axis=[1, 2, 3])[:, None, None, None]
        feats["conv1"] = tf.where(poisoned, float("nan"), feats["conv1"])
        feats["logits"] = tf.where(poisoned[:, :, 0, 0], float("nan"), feats["logits"])
        return feats

    model = dataclasses.replace(model, features_fn=features)
    images, labels, index = make_data(n=12, seed=4)  # image 6 is constant 0.5
    with pytest.raises(AggregateError, match=f"non-finite outputs .* records {index[5]}..{index[9]}"):
        run(tmp_path, model, images, labels, index, batch_size=5)
    assert not (tmp_path / "run.h5").exists()
