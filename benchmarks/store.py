"""The aggregates file's influence layouts side by side: sparse (version 2) vs dense (version 1).

    python -m benchmarks.store [--classes=100]

Data: synthetic aggregates with InceptionV1's layers (``synthetic.aggregates.inception_like``: 5,484
channels, ~245k non-zero influence counts per class, as SUMMIT's published full graphs). The influence rows
are generated once, before timing, so both writers get the same in-memory arrays. Prints, per layout: the
file size, the write time, and the graph stage's read (every link of one class, as
``graph.build.full_graph`` reads it) per class, median over the classes; then the projection to 1,000
classes (sizes and write times grow linearly with the classes: the writers handle one class at a time).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import flags

from benchmarks import machine
from summit_tf import store
from summit_tf.cli import entry_point, run_command
from synthetic import aggregates as synthetic

FLAGS = flags.FlagValues()
flags.DEFINE_integer("classes", 100, "classes written and read", lower_bound=1, flag_values=FLAGS)


def _measure(agg: store.Aggregates, path: Path, layout: str) -> tuple[float, int, float]:
    t0 = time.perf_counter()
    store.save(path, agg, layout=layout)
    write = time.perf_counter() - t0
    reads = []
    with store.load(path) as back:
        for slot in range(back.classes.size):
            t0 = time.perf_counter()
            for name in back.links:
                back.I[name][slot]
            reads.append(time.perf_counter() - t0)
        for name in agg.links:  # both layouts hold exactly the counts written
            for slot in (0, back.classes.size - 1):
                if not np.array_equal(back.I[name][slot], agg.I[name][slot]):
                    raise AssertionError(f"{layout}: {name} class row {slot} differs")
    return write, path.stat().st_size, statistics.median(reads)


def main(argv: list[str]) -> int:
    return run_command(FLAGS, argv, __doc__ or "", report, logs=False)


def report() -> None:
    k = FLAGS.classes
    agg = synthetic.inception_like(k, seed=0)
    agg.I = {name: np.stack([counts[c] for c in range(k)]) for name, counts in agg.I.items()}
    nonzero = sum(int(np.count_nonzero(counts)) for counts in agg.I.values())
    dense_entries = sum(counts.size for counts in agg.I.values())
    print(f"{k} InceptionV1-shaped classes: {nonzero / k:,.0f} non-zero influence counts per class, "
          f"{nonzero / dense_entries:.2%} of the {dense_entries // k:,} entries; "
          f"{machine.load()}", flush=True)
    before = machine.load()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("dense", "sparse", "dense", "sparse"):  # interleaved: the second round counts
            results[layout] = _measure(agg, Path(tmp) / f"{layout}.h5", layout)
    for layout, (write, size, read) in results.items():
        print(f"{layout:>6} (version {store.VERSIONS[layout]}): {size / 2**20:8.1f} MiB, "
              f"write {write:6.1f} s, read one class (all links) {read * 1e3:6.1f} ms | 1,000 classes: "
              f"{size / 2**20 * 1000 / k:,.0f} MiB, write {write * 1000 / k:,.0f} s")
    (dw, ds, dr), (sw, ss, sr) = results["dense"], results["sparse"]
    print(f"sparse vs dense: size {ss / ds:.2f}x, write time {sw / dw:.2f}x, read time {sr / dr:.2f}x; "
          f"{machine.since(before)}")


if __name__ == "__main__":
    entry_point(main)()
