"""Proof on the real MobileNetV1: renders excite their channels more than real images do, and diversity
images differ. One batched optimization (16 channels across 6 layers + a diversity group + a control
group) keeps it to a couple of minutes on two busy cores."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import feature_vis as fv
from feature_vis import objectives
from summit_tf.models import load

LAYERS = [f"Conv2d_{k}_pointwise" for k in (3, 5, 7, 9, 11, 13)]
DIVERSE = ("Conv2d_9_pointwise", 7)
STEPS, SIZE = 32, 128  # Lucid: steps 0..512; the claims already hold after 0..32


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(shared):
    return load("mobilenet_v1", layers=LAYERS)


@pytest.fixture(scope="module")
def sample(model):
    rng = np.random.default_rng(0)
    picks = [(layer, int(c)) for layer in LAYERS for c in rng.choice(model.channels[layer], 3, replace=False)]
    return picks[:16]


@pytest.fixture(scope="module")
def rendered(model, sample):
    """16 sampled channels, then 4 plain images of DIVERSE, then its 4 diversity images: one batch."""
    batch = len(sample) + 8
    diverse = np.zeros(batch, np.float32)
    diverse[20:24] = 1.0
    read = fv.objective_tensors(model, LAYERS)  # the default: pre-ReLU6 channels, as Lucid's pre_relu
    plain = objectives.layer_channels(sample + [DIVERSE] * 8, read)
    objective = (1 - diverse) * plain + diverse * objectives.diverse_layer_channels([DIVERSE] * batch, 4,
                                                                                   tensors=read)
    settings = fv.RenderSettings(size=SIZE, steps=STEPS, seed=0)
    return fv.render_vis(model, objective, batch, settings)


def val_images(shared, per_class=4):
    root = shared / "datasets" / "imagenette2-224" / "val"
    files = [f for folder in sorted(root.iterdir()) for f in sorted(folder.glob("*.JPEG"))[:per_class]]
    pixels = [np.asarray(Image.open(f).convert("RGB").resize((224, 224)), np.float32) for f in files]
    return np.stack(pixels) / 255.0


def test_renders_beat_the_top_dataset_example(shared, model, sample, rendered):
    real = model.features(tf.constant(val_images(shared)))
    ours = model.features(tf.constant(rendered[:16]))
    wins = 0
    for i, (layer, ch) in enumerate(sample):
        best_real = real[layer].numpy()[..., ch].mean(axis=(1, 2)).max()
        wins += ours[layer].numpy()[i, ..., ch].mean() > best_real
    assert real[LAYERS[0]].shape[0] >= 40
    assert wins >= 0.9 * len(sample), f"only {wins}/{len(sample)} renders beat the best of 40 real images"


def pixel_cosine(images: np.ndarray) -> float:
    """Mean pairwise cosine of the images' deviations from grey."""
    v = (images - 0.5).reshape(len(images), -1)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    cos = v @ v.T
    return float(cos[~np.eye(len(v), dtype=bool)].mean())


def test_diversity_images_differ(model, rendered):
    plain, diverse = rendered[16:20], rendered[20:24]
    assert pixel_cosine(diverse) < 0.5 * pixel_cosine(plain)
    acts = model.features(tf.constant(np.concatenate([plain, diverse])))[DIVERSE[0]]
    grams = objectives.gram_cosines(acts, 4).numpy()
    off = ~np.eye(4, dtype=bool)
    assert grams[1][off].mean() < grams[0][off].mean() - 0.1
