"""Parameterizations and transforms of feature_vis against float64 NumPy/SciPy references."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from feature_vis import param, transform


def reference_frequencies(h: int, w: int) -> np.ndarray:
    """Radial frequency (cycles/pixel) of every rfft2 coefficient, by explicit loops."""
    out = np.zeros((h, w // 2 + 1))
    for ky in range(h):
        fy = (ky if ky < (h + 1) // 2 else ky - h) / h
        for kx in range(w // 2 + 1):
            out[ky, kx] = np.hypot(fy, kx / w)
    return out


@pytest.mark.parametrize("h,w,decay", [(7, 9, 1.0), (8, 8, 1.0), (11, 6, 2.0)])
def test_spectrum_scale_is_inverse_frequency(h, w, decay):
    freqs = reference_frequencies(h, w)
    expected = np.sqrt(h * w) / np.maximum(freqs, 1.0 / max(h, w)) ** decay
    np.testing.assert_allclose(param.spectrum_scale(h, w, decay), expected, rtol=1e-6)
    # The DC term is capped at the lowest frequency, every other term is exactly 1/f.
    assert param.spectrum_scale(h, w)[0, 0] == pytest.approx(np.sqrt(h * w) * max(h, w))


def test_fft_image_matches_numpy_inverse_fft():
    rng = np.random.default_rng(3)
    image = param.FFTImage(2, 13, sd=0.3, rng=rng)
    spectrum = image.spectrum.numpy().astype(np.float64)
    scaled = (spectrum[0] + 1j * spectrum[1]) * param.spectrum_scale(13, 13)
    spatial = np.fft.irfft2(scaled, s=(13, 13)).transpose(0, 2, 3, 1) / 4.0
    rgb = spatial @ param.COLOR_MIX.T.astype(np.float64)
    expected = 1.0 / (1.0 + np.exp(-rgb))
    got = image().numpy()
    assert got.shape == (2, 13, 13, 3)
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_fft_image_default_start_is_grey_and_in_range():
    images = param.FFTImage(3, 32, rng=np.random.default_rng(0))().numpy()
    assert images.shape == (3, 32, 32, 3) and images.min() > 0.0 and images.max() < 1.0
    assert abs(images.mean() - 0.5) < 0.05 and images.std() > 1e-3


def test_unit_spectrum_coefficient_gives_its_scale():
    """One non-DC coefficient of amplitude a makes a cosine whose rfft2 coefficient is a * scale / 4."""
    image = param.FFTImage(1, 16, sd=0.0, decorrelate=False)
    values = np.zeros(image.spectrum.shape, np.float32)
    values[0, 0, 1, 3, 2] = 1.0
    image.spectrum.assign(values)
    spatial = image.spatial().numpy()[0, :, :, 1].astype(np.float64)
    recovered = np.fft.rfft2(spatial)
    assert recovered[3, 2].real == pytest.approx(param.spectrum_scale(16, 16)[3, 2] / 4.0, rel=1e-4)
    recovered[3, 2] = 0.0
    assert np.abs(recovered).max() < 1e-3


def test_colour_decorrelation_mixes_by_the_normalized_matrix():
    x = np.random.default_rng(1).normal(size=(5, 7, 3))
    rgb = param.decorrelated_to_rgb(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(rgb, x @ param.COLOR_MIX.T, atol=1e-5)
    assert np.linalg.norm(param.COLOR_MIX, axis=0).max() == pytest.approx(1.0)


def test_pixel_image_seeded_and_bounded():
    a = param.image_param("pixel", 2, 9, rng=np.random.default_rng(5))().numpy()
    b = param.image_param("pixel", 2, 9, rng=np.random.default_rng(5))().numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 9, 9, 3) and 0.0 < a.min() and a.max() < 1.0
    with pytest.raises(ValueError, match="unknown parameterization"):
        param.image_param("laplacian", 1, 8)


def test_pad_and_jitter_shapes_and_crops():
    images = tf.constant(np.random.default_rng(0).random((6, 11, 13, 3)), tf.float32)
    padded = transform.pad(2)(images, None).numpy()
    assert padded.shape == (6, 15, 17, 3)
    assert np.all(padded[:, :2] == 0.5) and np.all(padded[:, :, -2:] == 0.5)
    gen = tf.random.Generator.from_seed(1)
    crops = transform.jitter(4)(images, gen).numpy()
    assert crops.shape == (6, 7, 9, 3)
    src = images.numpy()
    offsets = []
    for b in range(6):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(crops[b], src[b, dy:dy + 7, dx:dx + 9])]
        assert len(hits) == 1
        offsets.append(hits[0])
    assert len(set(offsets)) > 1  # per-image draws
    same = np.repeat(src[:1], 6, axis=0)
    shared = transform.jitter(4, per_image=False)(tf.constant(same), gen).numpy()
    assert all(np.array_equal(shared[0], shared[b]) for b in range(6))


@pytest.mark.parametrize("h,w,out_h,out_w", [(13, 17, 13, 17), (16, 16, 11, 19)])
def test_resample_matches_scipy_bilinear(h, w, out_h, out_w):
    rng = np.random.default_rng(h)
    images = rng.random((3, h, w, 2))
    angles, scales = np.array([7.0, -30.0, 90.0]), np.array([1.1, 0.9, 1.0])
    matrices = (transform.rotation_matrices(tf.constant(angles, tf.float32)).numpy().astype(np.float64)
                / scales[:, None, None])
    offsets = rng.uniform(-3, 5, (3, 2))
    got = transform.resample(tf.constant(images, tf.float32), tf.constant(matrices, tf.float32),
                             tf.constant(offsets, tf.float32), out_h, out_w, fill=0.25).numpy()
    assert got.shape == (3, out_h, out_w, 2)
    rows, cols = np.meshgrid(np.arange(out_h), np.arange(out_w), indexing="ij")
    for b in range(3):
        src = np.einsum("ij,jhw->ihw", matrices[b], np.stack([rows, cols])) + offsets[b][:, None, None]
        for c in range(2):
            expected = ndimage.map_coordinates(images[b, :, :, c], src, order=1, mode="grid-constant",
                                               cval=0.25)
            np.testing.assert_allclose(got[b, :, :, c], expected, atol=2e-5)


def test_rotate_90_is_rot90_and_scale_1_is_identity():
    images = np.random.default_rng(2).random((1, 9, 9, 3)).astype(np.float32)
    rotated = transform.random_rotate([90])(tf.constant(images), tf.random.Generator.from_seed(0)).numpy()
    np.testing.assert_allclose(rotated[0], np.rot90(images[0]), atol=1e-5)
    same = transform.random_scale([1.0])(tf.constant(images), tf.random.Generator.from_seed(0)).numpy()
    np.testing.assert_allclose(same, images, atol=1e-6)


@pytest.mark.parametrize("scale", [1.1, 0.9])
def test_random_scale_zooms_about_the_centre_like_scipy(scale):
    """Zoom about the centre pixel ((h - 1) / 2, (w - 1) / 2), canvas kept: SciPy's float64 bilinear
    ``affine_transform`` with matrix I / s and offset c - c / s; the uncovered border (s < 1) is pad grey."""
    images = np.random.default_rng(8).uniform(0.1, 1.0, (2, 11, 13, 3))
    got = transform.random_scale([scale])(tf.constant(images, tf.float32),
                                          tf.random.Generator.from_seed(0)).numpy()
    assert got.shape == images.shape
    centre = np.array([5.0, 6.0])
    for b in range(2):
        for c in range(3):
            expected = ndimage.affine_transform(images[b, :, :, c], np.eye(2) / scale,
                                                centre - centre / scale, order=1, mode="grid-constant",
                                                cval=transform.PAD_VALUE)
            np.testing.assert_allclose(got[b, :, :, c], expected, atol=2e-6)
    np.testing.assert_allclose(got[:, 5, 6], images[:, 5, 6], atol=1e-6)  # the centre stays
    assert np.abs(got - images).max() > 0.05


def test_fill_of_every_stage_in_an_on_grid_chain():
    """pad 3 (grey) -> jitter 2 -> rotate 90 (fill 0) -> jitter 1 on 11 x 13 images: every sampling point
    is a pixel centre (the 15 x 17 canvas rotates about (7, 8); up to float32's cos 90 deg = -4e-8, hence
    1e-5), so the fused resampling equals the stages one after another in float64 NumPy/SciPy, grey and
    zero fill included. The jitter draws are found by
    trying all of them (after the rotation some pairs of draws give the same crop)."""
    images = np.random.default_rng(9).uniform(0.1, 1.0, (4, 11, 13, 3))
    chain = [transform.pad(3), transform.jitter(2), transform.random_rotate([90]), transform.jitter(1)]
    got = transform.compose(chain)(tf.constant(images, tf.float32), tf.random.Generator.from_seed(3)).numpy()
    assert got.shape == (4, 14, 16, 3)

    def sequential(image, first, second):
        padded = np.pad(image, [(3, 3), (3, 3), (0, 0)], constant_values=transform.PAD_VALUE)
        crop = padded[first[0]:first[0] + 15, first[1]:first[1] + 17]
        rotated = ndimage.rotate(crop, 90, axes=(0, 1), reshape=False, order=1, mode="grid-constant",
                                 cval=0.0)
        return rotated[second[0]:second[0] + 14, second[1]:second[1] + 16]

    draws = [(first, second) for first in np.ndindex(3, 3) for second in np.ndindex(2, 2)]
    found = []
    for b in range(4):
        matches = [d for d in draws if np.abs(got[b] - sequential(images[b], *d)).max() < 1e-5]
        assert matches, b
        found.append(tuple(matches))
        expected = sequential(images[b], *matches[0])
        assert (expected == 0.0).any() and (expected == transform.PAD_VALUE).any()  # both fills are in it
    assert len(set(found)) > 1  # per-image draws


def test_rotation_corners_are_zero_after_grey_padding():
    """Lucid pads with grey 0.5, then rotates with ``tf.contrib.image.rotate``, which fills with 0. One fused
    resampling equals padding then SciPy's float64 bilinear rotation with ``cval=0``; the corners are 0."""
    images = np.random.default_rng(6).uniform(0.1, 1.0, (2, 11, 13, 3))
    chain = transform.compose([transform.pad(3), transform.random_rotate([25])])
    got = chain(tf.constant(images, tf.float32), tf.random.Generator.from_seed(0)).numpy()
    assert got.shape == (2, 17, 19, 3)
    for b in range(2):
        for c in range(3):
            padded = np.pad(images[b, :, :, c], 3, constant_values=0.5)
            expected = ndimage.rotate(padded, 25, reshape=False, order=1, mode="grid-constant", cval=0.0)
            np.testing.assert_allclose(got[b, :, :, c], expected, atol=2e-6)
    assert np.all(got[:, [0, 0, -1, -1], [0, -1, 0, -1]] == 0.0)
    assert np.abs(got - 0.5).min() < 1e-6  # the pad grey where the rotation stays inside the canvas
    fills = [t.fill for t in transform.standard_transforms()]
    assert fills == [0.5, transform.PAD_VALUE, transform.PAD_VALUE, 0.0, transform.PAD_VALUE]


def test_resample_gradient_is_exact_adjoint():
    rng = np.random.default_rng(4)
    x = tf.constant(rng.random((2, 9, 11, 3)), tf.float32)
    y = tf.constant(rng.random((2, 7, 12, 3)), tf.float32)
    m = transform.rotation_matrices(tf.constant([13.0, -4.0])) * 0.9
    t = tf.constant([[1.5, -0.5], [0.0, 2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = transform.resample(x, m, t, 7, 12, fill=0.0)
    adjoint_y = tape.gradient(out, x, output_gradients=y)
    # Linear in x when fill is 0: <A x, y> == <x, A^T y>, and A is the bilinear map checked above.
    assert float(tf.reduce_sum(out * y)) == pytest.approx(float(tf.reduce_sum(x * adjoint_y)), rel=1e-5)


def test_fused_chain_is_the_sequential_chain():
    """One resampling of the composed map = the transforms one after another, wherever no fill is involved.

    Bilinear interpolation of a linear function is exact, so coordinate images agree exactly."""
    rows, cols = np.meshgrid(np.linspace(0, 1, 33), np.linspace(0, 1, 33), indexing="ij")
    images = tf.constant(np.repeat(np.stack([rows, cols, np.ones_like(rows)], -1)[None], 6, 0), tf.float32)
    chain = transform.standard_transforms()
    fused = transform.compose(chain)(images, tf.random.Generator.from_seed(5)).numpy()
    generator, sequential = tf.random.Generator.from_seed(5), images
    for step in chain:
        sequential = step(sequential, generator)
    sequential = sequential.numpy()
    inside = (fused[..., 2] > 1 - 1e-5) & (sequential[..., 2] > 1 - 1e-5)
    assert inside.mean() > 0.3
    np.testing.assert_allclose(fused[..., :2][inside], sequential[..., :2][inside], atol=1e-4)
    assert np.abs(fused[..., 0] - fused[:1, ..., 0]).max() > 0.01  # the images got different draws


def test_standard_transforms_shape_range_determinism_and_draws():
    images = tf.constant(np.repeat(np.random.default_rng(0).random((1, 33, 33, 3)), 8, 0), tf.float32)
    per_image = transform.compose(transform.standard_transforms())
    a = per_image(images, tf.random.Generator.from_seed(7)).numpy()
    b = per_image(images, tf.random.Generator.from_seed(7)).numpy()
    assert a.shape == (8, 45, 45, 3) and a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not all(np.allclose(a[0], a[i]) for i in range(1, 8))
    shared = transform.compose(transform.standard_transforms(per_image=False))
    s = shared(images, tf.random.Generator.from_seed(7)).numpy()
    assert all(np.allclose(s[0], s[i], atol=1e-6) for i in range(1, 8))
    assert len(transform.STANDARD_SCALES) == 11 and transform.STANDARD_SCALES[0] == pytest.approx(0.9)
    assert transform.STANDARD_ANGLES.count(0) == 6 and len(transform.STANDARD_ANGLES) == 26
