"""Benchmark formulations of the per-pair spatial max of a k x k link (the one influence without a
closed form) against the forward conv of the same layer: time and peak extra memory.

``python -m benchmarks.influence_kernels [--reps=5]``: each (shape, formulation) runs in a fresh
subprocess so its peak RSS is its own; prints a table. The chosen formulation (``module``) lives in
summit_tf/aggregation/influence.py; BUILD_NOTES.md records the figures.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

from benchmarks import machine

SHAPES = {  # name: (x shape, kernel shape), InceptionV1 links at batch 8
    "mixed4b/3x3": ((8, 14, 14, 96), (3, 3, 96, 208)),
    "mixed4b/5x5": ((8, 14, 14, 16), (5, 5, 16, 48)),
    "mixed3a/3x3": ((8, 28, 28, 96), (3, 3, 96, 128)),
}
METHODS = ("conv", "naive", "depthwise16", "depthwise4", "shifted_xla", "im2col16", "module")

flags.DEFINE_integer("reps", 5, "timed repetitions (the minimum is reported)")
flags.DEFINE_string("only", "", "run one 'shape,method' in this process (internal)")
FLAGS = flags.FLAGS


def _build(method: str, kernel: np.ndarray):
    import tensorflow as tf

    from summit_tf.aggregation.influence import link_influence
    from summit_tf.models.base import Link

    kh, kw, cin, cout = kernel.shape
    k = tf.constant(kernel)

    def depthwise_blocks(x, block):
        outs = []
        for j0 in range(0, cout, block):
            kb = k[:, :, :, j0:j0 + block]
            n = kb.shape[-1]
            peak = tf.reduce_max(tf.nn.depthwise_conv2d(x, kb, [1, 1, 1, 1], "SAME"), axis=[1, 2])
            outs.append(tf.transpose(tf.reshape(peak, [-1, cin, n]), [0, 2, 1]))
        return tf.concat(outs, axis=1)

    def shifted(x, block):
        ho, wo = x.shape[1], x.shape[2]
        xp = tf.pad(x, [[0, 0], [kh // 2, (kh - 1) // 2], [kw // 2, (kw - 1) // 2], [0, 0]])
        outs = []
        for j0 in range(0, cout, block):
            kt = tf.transpose(k[:, :, :, j0:j0 + block], [0, 1, 3, 2])  # [kh, kw, n, cin]
            acc = None
            for dy in range(kh):
                for dx in range(kw):
                    term = xp[:, dy:dy + ho, dx:dx + wo, None, :] * kt[dy, dx]
                    acc = term if acc is None else acc + term
            outs.append(tf.reduce_max(acc, axis=[1, 2]))
        return tf.concat(outs, axis=1)

    def im2col(x, block):
        patches = tf.image.extract_patches(x, [1, kh, kw, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
        b, ho, wo = x.shape[0], x.shape[1], x.shape[2]
        patches = tf.reshape(patches, [b * ho * wo, kh * kw, cin])  # tap-major, channel-minor
        taps = tf.reshape(k, [kh * kw, cin, cout])
        outs = []
        for j0 in range(0, cout, block):
            prod = tf.einsum("pdi,dij->ipj", patches, taps[:, :, j0:j0 + block])  # batched over i
            prod = tf.reshape(prod, [cin, b, ho * wo, -1])
            outs.append(tf.transpose(tf.reduce_max(prod, axis=2), [1, 2, 0]))
        return tf.concat(outs, axis=1)

    link = Link("b", src="a", dst="b", input="a", kernel=kernel, kind="conv")
    fns = {
        "conv": lambda x: tf.nn.conv2d(x, k, 1, "SAME"),
        "naive": lambda x: depthwise_blocks(x, cout),
        "depthwise16": lambda x: depthwise_blocks(x, 16),
        "depthwise4": lambda x: depthwise_blocks(x, 4),
        "shifted_xla": lambda x: shifted(x, cout),
        "im2col16": lambda x: im2col(x, 16),
        "module": lambda x: link_influence(x, link, "max"),
    }
    return tf.function(fns[method], jit_compile=method == "shifted_xla")


def _run_one(shape: str, method: str, reps: int) -> dict:
    import tensorflow as tf

    xs, ks = SHAPES[shape]
    rng = np.random.default_rng(0)
    x = tf.constant(np.maximum(rng.normal(0, 1, xs), 0).astype(np.float32))
    kernel = rng.normal(0, 0.1, ks).astype(np.float32)
    fn = _build(method, kernel)
    base = machine.rss_mib()
    out = fn(x)  # trace / compile
    _ = out.numpy()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"ms": 1000 * min(times), "extra_mb": max(peak - base, 0.0)}
    if method not in ("conv",):
        ref = _build("naive", kernel)(x).numpy()
        result["max_rel_err"] = float(np.abs(out.numpy() - ref).max() / np.abs(ref).max())
    return result


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.only:
        shape, method = FLAGS.only.split(",")
        print(json.dumps(_run_one(shape, method, FLAGS.reps)))
        return
    for shape, (xs, ks) in SHAPES.items():
        macs = math.prod(xs[:3]) * math.prod(ks)
        print(f"{shape}: x {list(xs)} k {list(ks)}, {macs / 1e6:.0f} M multiply-adds")
        conv_ms = None
        for method in METHODS:
            cmd = [sys.executable, "-m", "benchmarks.influence_kernels", f"--only={shape},{method}",
                   f"--reps={FLAGS.reps}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(f"  {method:18s} failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            conv_ms = r["ms"] if method == "conv" else conv_ms
            err = f"  err {r['max_rel_err']:.1e}" if "max_rel_err" in r else ""
            print(f"  {method:18s} {r['ms']:8.2f} ms  x{r['ms'] / conv_ms:5.1f} conv  "
                  f"peak extra {r['extra_mb']:6.0f} MB{err}", flush=True)


if __name__ == "__main__":
    app.run(main)
