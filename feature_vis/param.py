"""Image parameterizations: what the optimizer actually changes, and how it becomes an RGB image.

Lucid's default (and ours) is a Fourier-space parameterization whose spectrum is scaled by 1/frequency,
in a decorrelated colour space, squashed into [0, 1] by a sigmoid. Scaling the spectrum makes all spatial
frequencies learn at similar rates (a plain pixel parameterization over-weights high frequencies and
gives noise); decorrelating colour does the same for the strongly correlated RGB channels of natural
images. Both change the optimization's geometry only: any image is still reachable.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Square root of the ImageNet RGB colour-correlation matrix (Lucid's ``color_correlation_svd_sqrt``).
COLOR_CORRELATION_SQRT = np.array(
    [[0.26, 0.09, 0.02],
     [0.27, 0.00, -0.05],
     [0.27, -0.09, 0.03]], dtype=np.float32,
)
# Normalized by its largest column norm, so a unit step in the decorrelated space is at most a unit in RGB.
COLOR_MIX = COLOR_CORRELATION_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SQRT, axis=0))

DEFAULT_SD = 0.01
# Lucid divides the inverse FFT by 4 so that the initial sigmoid input stays near 0 (grey images).
FFT_OUTPUT_SCALE = 0.25


def decorrelated_to_rgb(t: tf.Tensor) -> tf.Tensor:
    """Map colours from the decorrelated space to (unbounded) RGB: ``t @ COLOR_MIX.T`` on the last axis."""
    return tf.tensordot(t, tf.constant(COLOR_MIX.T), axes=1)


def to_valid_rgb(t: tf.Tensor, decorrelate: bool = True) -> tf.Tensor:
    """Decorrelated (optional) colours squashed into [0, 1] by a sigmoid, Lucid's ``to_valid_rgb``."""
    if decorrelate:
        t = decorrelated_to_rgb(t)
    return tf.sigmoid(t)


def spectrum_scale(height: int, width: int, decay_power: float = 1.0) -> np.ndarray:
    """Per-frequency scale ``[height, width // 2 + 1]`` of the real 2-D spectrum.

    ``1 / max(f, 1 / max(h, w)) ** decay_power * sqrt(h * w)``, with ``f`` the radial frequency in cycles
    per pixel: the 1/f falloff of natural images, capped at the lowest non-zero frequency so the DC term
    is not infinite, times ``sqrt(h * w)`` so the inverse FFT is unitary (pixel-like learning rates).
    """
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    return (np.sqrt(height * width) / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power).astype(
        np.float32
    )


class PixelImage(tf.Module):
    """One free value per pixel and colour (in the pre-sigmoid, optionally decorrelated space)."""

    def __init__(self, batch: int, size: int, sd: float = DEFAULT_SD, decorrelate: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__(name="pixel_image")
        rng = rng if rng is not None else np.random.default_rng()
        self.decorrelate = decorrelate
        self.raw = tf.Variable(rng.normal(0.0, sd, (batch, size, size, 3)).astype(np.float32), name="pixels")

    def __call__(self) -> tf.Tensor:
        """The images, ``[batch, size, size, 3]`` in [0, 1]."""
        return to_valid_rgb(self.raw, self.decorrelate)


class FFTImage(tf.Module):
    """Real and imaginary parts of each image's 2-D spectrum, scaled by 1/frequency (Lucid's ``fft_image``).

    Uses the exact real-FFT grid (``width // 2 + 1`` frequency columns, ``fft_length = [size, size]``);
    Lucid keeps one extra column for odd widths and crops, which changes nothing for even sizes.
    """

    def __init__(self, batch: int, size: int, sd: float = DEFAULT_SD, decay_power: float = 1.0,
                 decorrelate: bool = True, rng: np.random.Generator | None = None) -> None:
        super().__init__(name="fft_image")
        rng = rng if rng is not None else np.random.default_rng()
        self.size = size
        self.decorrelate = decorrelate
        self.scale = tf.constant(spectrum_scale(size, size, decay_power))
        shape = (2, batch, 3, size, size // 2 + 1)
        self.spectrum = tf.Variable(rng.normal(0.0, sd, shape).astype(np.float32), name="spectrum")

    def spatial(self) -> tf.Tensor:
        """The pre-colour image ``[batch, size, size, 3]`` (inverse FFT of the scaled spectrum, / 4)."""
        scale = tf.complex(self.scale, tf.zeros_like(self.scale))
        spectrum = tf.complex(self.spectrum[0], self.spectrum[1]) * scale
        planes = tf.signal.irfft2d(spectrum, fft_length=[self.size, self.size])
        return tf.transpose(planes, (0, 2, 3, 1)) * FFT_OUTPUT_SCALE

    def __call__(self) -> tf.Tensor:
        """The images, ``[batch, size, size, 3]`` in [0, 1]."""
        return to_valid_rgb(self.spatial(), self.decorrelate)


PARAMETERIZATIONS = ("fft", "pixel")


def image_param(kind: str, batch: int, size: int, sd: float = DEFAULT_SD, decay_power: float = 1.0,
                decorrelate: bool = True, rng: np.random.Generator | None = None) -> PixelImage | FFTImage:
    """Build a parameterization by name (``fft`` is Lucid's default)."""
    if kind == "fft":
        return FFTImage(batch, size, sd=sd, decay_power=decay_power, decorrelate=decorrelate, rng=rng)
    if kind == "pixel":
        return PixelImage(batch, size, sd=sd, decorrelate=decorrelate, rng=rng)
    raise ValueError(f"unknown parameterization {kind!r}; expected one of {PARAMETERIZATIONS}")
