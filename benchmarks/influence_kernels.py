"""Benchmark formulations of the per-pair spatial max of a k x k link (the one influence without a
closed form) against the forward conv of the same layer: time and peak extra memory.

``python -m benchmarks.influence_kernels [--reps=5]``: each (shape, formulation) runs in fresh subprocesses,
one timing it, one measuring its memory (so the peak RSS is its own); prints a table: the fastest of
``--reps`` calls and its ratio to the conv's, the peak RSS of a call above the RSS before it after a
warm-up call (the working memory), and apart the first call's (with tracing; for ``shifted_xla`` XLA
compilation), with the load average before and after. The chosen formulation (``module``) lives in
summit_tf/aggregation/influence.py; BUILD_NOTES.md records the figures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
from absl import flags

from benchmarks import machine
from summit_tf.cli import entry_point, run_command

SHAPES = {  # name: (x shape, kernel shape), InceptionV1 links at batch 8
    "mixed4b/3x3": ((8, 14, 14, 96), (3, 3, 96, 208)),
    "mixed4b/5x5": ((8, 14, 14, 16), (5, 5, 16, 48)),
    "mixed3a/3x3": ((8, 28, 28, 96), (3, 3, 96, 128)),
}
METHODS = ("conv", "naive", "depthwise16", "depthwise4", "shifted_xla", "im2col16", "module")

FLAGS = flags.FlagValues()
flags.DEFINE_integer("reps", 5, "timed repetitions (the minimum is reported)", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_string("only", "", "run one 'shape,method' in this process (internal)", flag_values=FLAGS)
flags.DEFINE_bool("memory", False, "with --only: measure its memory, not its time (internal; run with "
                  "RELEASING's environment)", flag_values=FLAGS)

# oneDNN keeps its primitives' buffers and glibc the freed blocks below its moving mmap threshold, so in a
# default process the RSS after one call already holds the call's working memory and a later call's peak
# shows none of it: memory is measured in a process where both give freed memory back.
RELEASING = {"TF_ENABLE_ONEDNN_OPTS": "0", "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


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


def _inputs(shape: str) -> tuple:
    import tensorflow as tf

    xs, ks = SHAPES[shape]
    rng = np.random.default_rng(0)
    x = tf.constant(np.maximum(rng.normal(0, 1, xs), 0).astype(np.float32))
    return x, rng.normal(0, 0.1, ks).astype(np.float32)


def _time_one(shape: str, method: str, reps: int) -> dict:
    """The fastest of ``reps`` calls after the first (tracing, compilation), ms; the error to ``naive``."""
    x, kernel = _inputs(shape)
    fn = _build(method, kernel)
    out = fn(x).numpy()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - t0)
    result = {"ms": 1000 * min(times)}
    if method != "conv":
        ref = _build("naive", kernel)(x).numpy()
        result["max_rel_err"] = float(np.abs(out - ref).max() / np.abs(ref).max())
    return result


def _memory_one(shape: str, method: str) -> dict:
    """Peak RSS above the RSS before the call, MiB: of a call after the first, and of the first."""
    x, kernel = _inputs(shape)
    fn = _build(method, kernel)
    peaks = []
    for _ in range(2):
        machine.reset_peak_rss()
        base = machine.rss_mib()
        fn(x).numpy()
        peaks.append(max(machine.peak_rss_mib() - base, 0.0))
    return {"extra_mb": peaks[1], "first_call_extra_mb": peaks[0]}


def _child(shape: str, method: str, memory: bool) -> dict | str:
    """One measurement in a fresh process: its figures, or why it failed."""
    cmd = [sys.executable, "-m", "benchmarks.influence_kernels", f"--only={shape},{method}",
           f"--reps={FLAGS.reps}", f"--memory={memory}"]
    env = {**os.environ, **RELEASING} if memory else None
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        return (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    return run_command(FLAGS, argv, __doc__ or "", report, logs=False)


def report() -> None:
    if FLAGS.only:
        shape, _, method = FLAGS.only.partition(",")
        if shape not in SHAPES or method not in METHODS:
            raise ValueError(f"--only must be 'shape,method' of {', '.join(SHAPES)} and "
                             f"{', '.join(METHODS)}, got {FLAGS.only!r}")
        result = _memory_one(shape, method) if FLAGS.memory else _time_one(shape, method, FLAGS.reps)
        print(json.dumps(result))
        return
    before = machine.load()
    print(f"{before}; peak extra: a call's after a warm-up call (first call: with tracing, XLA compilation), "
          f"measured with {' '.join(f'{k}={v}' for k, v in RELEASING.items())}", flush=True)
    for shape, (xs, ks) in SHAPES.items():
        macs = math.prod(xs[:3]) * math.prod(ks)
        print(f"{shape}: x {list(xs)} k {list(ks)}, {macs / 1e6:.0f} M multiply-adds")
        conv_ms = None
        for method in METHODS:
            timed, memory = _child(shape, method, False), _child(shape, method, True)
            failed = next((r for r in (timed, memory) if isinstance(r, str)), None)
            if failed is not None:
                print(f"  {method:18s} failed: {failed}", flush=True)
                continue
            conv_ms = timed["ms"] if method == "conv" else conv_ms
            err = f"  err {timed['max_rel_err']:.1e}" if "max_rel_err" in timed else ""
            ratio = "   (no conv)" if conv_ms is None else f"x{timed['ms'] / conv_ms:5.1f} conv"
            print(f"  {method:18s} {timed['ms']:8.2f} ms  {ratio}  peak extra {memory['extra_mb']:6.0f} MB "
                  f"(first call {memory['first_call_extra_mb']:4.0f} MB){err}", flush=True)
    print(machine.since(before))


if __name__ == "__main__":
    entry_point(main)()
