"""Per-pair influence of input channel i on output channel j of a link, reduced over space.

The map of a pair is ``X[:, :, i]`` cross-correlated with ``K[:, :, i, j]`` with the conv's own stride
(times ``stride``, SUMMIT's subsampling) and padding, TF semantics, no bias. Reducers: max (SUMMIT),
sum, l2. Output ``[B, Cout, Cin]`` float32. Graph-safe: static shapes, no Python side effects.

Formulations, by cost:
- Identity links (residual shortcuts, concatenated layers, per-channel scales): only the pairs (j, j)
  exist, each with the map ``K_jj X_j``; ``link_influence`` gives the other pairs ``-inf`` (no map).
  Their top-k (:mod:`influence_topk`) has one candidate per output channel.
- 1x1 and separable links: closed form, no maps. ``max_xy K X = K max X`` if ``K >= 0`` else
  ``K min X`` (exact: rounding is monotone), ``sum = K sum X``, ``l2 = |K| ||X||``, over the positions
  the strided conv visits (a 1x1 kernel never reaches the padding). The max form is one XLA-fused
  pass over the ``[B, Cout, Cin]`` result. The aggregation engine does not take this result:
  :mod:`influence_topk` ranks the same values by groups of 8 inputs without materializing them,
  with identical indices, which is 2.5-3x faster than ``top_k`` over every pair.
- k x k links, sum and l2: closed forms too. ``sum_p (X (*) K)_p = sum_d K_d S_d`` with ``S_d`` the sum
  of the input window shifted by tap d; ``||X (*) K||^2 = K^T G K`` with ``G`` the Gram matrix of the
  shifted windows of each input channel (``[kh*kw, kh*kw]`` per image and channel). Cost
  ``B Cin (P kk^2 + kk^2 Cout)`` instead of ``B P kk Cin Cout`` for P output positions.
- k x k links, max: the maps are needed. The time goes into writing and re-reading them (every pair's
  map, B x P floats: mixed3b's 3x3 link writes 2.5 GB per batch of 32), so they are made and reduced
  one cache-sized block at a time: a chunk of images x a few output channels, at most ``CHUNK_BYTES`` of
  maps, one depthwise conv with channel multiplier 1 over the input tiled once per output channel,
  then a spatial max. Blocks run one after another (control dependencies inside a sequential loop
  over image chunks), so one block of maps is alive at a time. Larger blocks fall out of cache, smaller
  ones lose to the per-op overhead, channel multipliers above 1 and XLA or im2col + matmul were slower
  (figures in BUILD_NOTES.md). A GPU may prefer other blocks (``CHUNK_BYTES`` is a module constant).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from summit_tf.models.base import Link
from summit_tf.vocabulary import INFLUENCE_REDUCERS

CHUNK_BYTES = 4 * 2**20  # one block of per-pair maps: cache-sized, and the extra memory of a max link
BATCH_HINT = 32  # the default --batch_size: images per block when the batch dimension is not static
POINTWISE_KINDS = ("1x1", "separable", "identity")  # link kinds with the closed form


def _checked_input(x: tf.Tensor, link: Link, reduce: str, stride: int) -> tf.Tensor:
    if reduce not in INFLUENCE_REDUCERS:
        expected = ", ".join(INFLUENCE_REDUCERS)
        raise ValueError(f"unknown influence reducer {reduce!r}; expected one of {expected}")
    if int(stride) < 1:
        raise ValueError(f"influence stride must be >= 1, got {stride}")
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 4 or x.shape[-1] != link.cin:
        raise ValueError(f"link {link.name}: input must be [B, H, W, {link.cin}], got {x.shape}")
    return x


def link_influence(x: tf.Tensor, link: Link, reduce: str = "max", stride: int = 1) -> tf.Tensor:
    """Influence of every input channel on every output channel of ``link``: ``[B, Cout, Cin]``."""
    x = _checked_input(x, link, reduce, stride)
    kh, kw = int(link.kernel.shape[0]), int(link.kernel.shape[1])
    if link.kind in POINTWISE_KINDS:
        k, hi, lo = pointwise_factors(x, link, reduce, stride)
        values = _signed_products(tf.transpose(k)[None], hi[:, None, :], lo[:, None, :])
        if link.kind == "identity":  # pairs (i, j != i) do not exist: no map, no influence
            values = tf.where(tf.eye(link.cout, dtype=tf.bool)[None], values, float("-inf"))
        return values
    step = int(link.stride) * int(stride)
    if reduce == "max":
        return _conv_max(x, link.kernel.astype(np.float32), step, link.padding)
    kernel = tf.constant(link.kernel, tf.float32)
    windows = _windows(x, kh, kw, step, link.padding)  # [B, P, kk, Cin]
    taps = tf.reshape(kernel, [kh * kw, link.cin, link.cout])  # [kk, Cin, Cout]
    if reduce == "sum":
        return tf.einsum("bdi,dij->bji", tf.reduce_sum(windows, axis=1), taps)
    gram = tf.einsum("bpdi,bpei->bide", windows, windows)
    squared = tf.einsum("dij,bide,eij->bji", taps, gram, taps)
    return tf.sqrt(tf.nn.relu(squared))  # the quadratic form is >= 0; rounding may dip below


def pointwise_factors(x: tf.Tensor, link: Link, reduce: str = "max",
                      stride: int = 1) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The closed form of a 1x1/separable link as ``(k [Cin, Cout], hi [B, Cin], lo [B, Cin])``: the
    influence of i on j is ``k[i, j] * hi[:, i]`` where ``k[i, j] >= 0``, else ``k[i, j] * lo[:, i]``.

    ``hi >= lo`` always. For l2 ``k`` is ``|K|`` (``hi = lo = ||X||``), for sum ``hi = lo = sum X``; one
    form serves every reducer, so :mod:`influence_topk` ranks exactly what ``link_influence`` returns.
    """
    x = _checked_input(x, link, reduce, stride)
    kh, kw = int(link.kernel.shape[0]), int(link.kernel.shape[1])
    if link.kind not in POINTWISE_KINDS:
        raise ValueError(f"link {link.name}: kind {link.kind} has no pointwise closed form")
    if (kh, kw) != (1, 1):
        raise ValueError(f"link {link.name}: kind {link.kind} needs a 1x1 kernel, got {kh}x{kw}")
    step = int(link.stride) * int(stride)
    x = x[:, ::step, ::step, :]  # the positions the strided conv visits (a 1x1 kernel never pads)
    k = tf.constant(link.kernel[0, 0], tf.float32)
    if reduce == "max":
        return (k, *_extremes(x))
    if reduce == "sum":
        total = tf.reduce_sum(x, axis=[1, 2])
        return k, total, total
    norm = tf.sqrt(tf.reduce_sum(tf.square(x), axis=[1, 2]))
    return tf.abs(k), norm, norm


@tf.function(jit_compile=True, autograph=False)
def _extremes(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Spatial max and min per channel in one XLA pass over ``x`` (~30 % faster than two TF reductions;
    exact either way)."""
    return tf.reduce_max(x, axis=[1, 2]), tf.reduce_min(x, axis=[1, 2])


@tf.function(jit_compile=True, reduce_retracing=True)
def _signed_products(kt: tf.Tensor, hi: tf.Tensor, lo: tf.Tensor) -> tf.Tensor:
    """``K max X`` where ``K >= 0``, else ``K min X``. XLA fuses it into one pass over the ``[B, Cout, Cin]``
    output (2-4x faster than TF's three passes on CPU); products are exact either way."""
    return tf.where(kt >= 0, kt * hi, kt * lo)


def _same_pads(size: int, k: int, step: int) -> tuple[int, int, int]:
    """TF SAME padding: (output size, pad before, pad after)."""
    out = -(-size // step)
    total = max((out - 1) * step + k - size, 0)
    return out, total // 2, total - total // 2


def _windows(x: tf.Tensor, kh: int, kw: int, step: int, padding: str) -> tf.Tensor:
    """Input values under each kernel tap at each visited output position: ``[B, P, kh*kw, Cin]``."""
    h, w = int(x.shape[1]), int(x.shape[2])
    if padding == "SAME":
        ho, top, bottom = _same_pads(h, kh, step)
        wo, left, right = _same_pads(w, kw, step)
        x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    else:
        ho, wo = (h - kh) // step + 1, (w - kw) // step + 1
    taps = [x[:, dy:dy + (ho - 1) * step + 1:step, dx:dx + (wo - 1) * step + 1:step, :]
            for dy in range(kh) for dx in range(kw)]
    stacked = tf.stack(taps, axis=3)  # [B, Ho, Wo, kk, Cin]
    return tf.reshape(stacked, [tf.shape(x)[0], ho * wo, kh * kw, int(x.shape[-1])])


def _out_size(size: int, k: int, step: int, padding: str) -> int:
    return -(-size // step) if padding == "SAME" else (size - k) // step + 1


def _conv_max(x: tf.Tensor, kernel: np.ndarray, step: int, padding: str) -> tf.Tensor:
    """Spatial max of every pair map, in blocks of images x output channels of at most ``CHUNK_BYTES``.

    A block is one depthwise conv with channel multiplier 1 over the input tiled once per output channel
    of the block (module docstring: why). Images per chunk are as many as fit, up to the batch
    (``BATCH_HINT`` where unknown); then output channels per block as many as fit.
    """
    kh, kw, cin, cout = kernel.shape
    out_h = _out_size(int(x.shape[1]), kh, step, padding)
    out_w = _out_size(int(x.shape[2]), kw, step, padding)
    per_image = out_h * out_w * cin * 4  # bytes of one image's maps of one output channel
    images = max(1, min(x.shape[0] or BATCH_HINT, CHUNK_BYTES // per_image))
    outputs = max(1, min(cout, CHUNK_BYTES // (images * per_image)))
    filters = [tf.constant(np.ascontiguousarray(kernel[:, :, :, s:s + outputs].transpose(0, 1, 3, 2))
                           .reshape(kh, kw, -1, 1)) for s in range(0, cout, outputs)]  # channel j * cin + i

    def maxima(chunk: tf.Tensor) -> tf.Tensor:
        outs, previous = [], []
        for f in filters:
            n = f.shape[2] // cin
            with tf.control_dependencies(previous):
                tiled = chunk if n == 1 else tf.tile(chunk, [1, 1, 1, n])
                maps = tf.nn.depthwise_conv2d(tiled, f, [1, step, step, 1], padding)
                peak = tf.reduce_max(maps, axis=[1, 2])
            previous = [peak]
            outs.append(tf.reshape(peak, [-1, n, cin]))
        return tf.concat(outs, axis=1)

    chunks = (tf.shape(x)[0] + images - 1) // images
    parts = tf.TensorArray(tf.float32, size=chunks, infer_shape=False, element_shape=[None, cout, cin])
    _, parts = tf.while_loop(lambda i, _: i < chunks,
                             lambda i, ta: (i + 1, ta.write(i, maxima(x[i * images:(i + 1) * images]))),
                             [0, parts], parallel_iterations=1)
    return tf.ensure_shape(parts.concat(), [x.shape[0], cout, cin])
