"""Input pipeline speed: JPEG decode + resize images/s, on one core and on all, full vs DCT-downscaled decode.

    python -m benchmarks.input_pipeline [--images=256] [--width=500 --height=375] [--agreement]

ImageNet's JPEGs are ~500x375; the real images in ``shared/`` are 224-227 px, so the benchmark upscales
them (bicubic, JPEG quality 90) into a temporary folder: smoother than camera photos, so a full decode
may be somewhat faster than on real ImageNet files. The pipeline is the one the aggregation reads
through (``summit_tf.data.load(folder:...)``: read, decode, resize, batch; AUTOTUNE parallel map);
``threads`` caps tf.data's private thread pool. ``--agreement`` counts A and I on MobileNetV1 twice over
the same real images upscaled to ``2x`` the input size, decoded in full and at ratio 2, and reports how
many counts differ.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import flags
from PIL import Image

from benchmarks import machine
from summit_tf import assets
from summit_tf.cli import entry_point, run_command
from summit_tf.data import source

FLAGS = flags.FlagValues()  # private: benchmarks.device imports this module beside others
flags.DEFINE_integer("images", 256, "JPEGs written and decoded", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("width", 500, "JPEG width (ImageNet's typical 500x375)", lower_bound=8,
                     flag_values=FLAGS)
flags.DEFINE_integer("height", 375, "JPEG height", lower_bound=8, flag_values=FLAGS)
flags.DEFINE_integer("image_size", 224, "the model's input size the pipeline resizes to", flag_values=FLAGS)
flags.DEFINE_bool("agreement", False, "also measure the count agreement of ratio-2 vs full decoding",
                  flag_values=FLAGS)

SOURCE_FOLDER = ("datasets", "imagenette2-224", "val")


def make_jpegs(out_dir: Path, count: int, width: int, height: int, quality: int = 90) -> Path:
    """``count`` real Imagenette validation images, upscaled to ``width x height``, as a ``folder:`` tree
    (``out_dir/<synset>/*.JPEG``); returns ``out_dir``."""
    src = assets.shared_path(*SOURCE_FOLDER)
    files = sorted(src.glob("*/*.JPEG"))
    if not files:
        raise FileNotFoundError(f"no JPEGs under {src}")
    picked = [files[i] for i in np.linspace(0, len(files) - 1, count).astype(int)]
    for i, path in enumerate(picked):
        target = out_dir / path.parent.name / f"{i:05d}.JPEG"
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            image.convert("RGB").resize((width, height), Image.BICUBIC).save(target, quality=quality)
    return out_dir


def pipeline_pass(folder: Path, image_size: int, threads: int | None, max_jpeg_ratio: int = 1,
                  batch_size: int = 64) -> Callable[[], float]:
    """One pass of ``summit_tf.data.load(folder:...)`` read to the end, as images/s; ``threads`` None:
    tf.data's default pool (all cores)."""
    loaded = source.load(f"folder:{folder}", image_size=image_size, batch_size=batch_size,
                         max_jpeg_ratio=max_jpeg_ratio)
    dataset = loaded.dataset
    if threads is not None:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        dataset = dataset.with_options(options)

    def one_pass() -> float:
        start, count = time.perf_counter(), 0
        for batch in dataset:
            count += int(batch["label"].shape[0])
        return count / (time.perf_counter() - start)

    return one_pass


def count_agreement(folder: Path, model_spec: str = "mobilenet_v1", batch_size: int = 16) -> dict[str, float]:
    """A and I counts of ``folder`` decoded in full vs at ratio 2: the share of count entries that differ,
    the summed absolute difference relative to the summed counts, and the images counted."""
    from summit_tf import models
    from summit_tf.aggregation import plan as run_plan
    from summit_tf.aggregation import step as run_step
    from summit_tf.aggregation.config import AggregateConfig

    model = models.load(model_spec)
    counts = []
    for ratio in (1, 2):
        loaded = source.load(f"folder:{folder}", image_size=model.input_size, batch_size=batch_size,
                             max_jpeg_ratio=ratio)
        cfg = AggregateConfig(model=model_spec, data=loaded.spec, out="-", batch_size=batch_size)
        plan = run_plan.make_plan(model, cfg, loaded.classes)
        acc = run_step.Accumulators(model, plan)
        step = run_step.make_step(model, plan, acc, cfg)
        table = plan.slot_table()
        for batch in loaded.dataset:
            labels = batch["label"].numpy()
            assert (table[labels] >= 0).all()
            step(batch["image"], tf.constant(labels, tf.int32))
        counts.append({name: var.numpy() for name, var in acc.vars.items()
                       if name.startswith(("A/", "I/"))})
    full, half = counts
    differ = sum(int((full[k] != half[k]).sum()) for k in full)
    entries = sum(int(full[k].size) for k in full)
    nonzero = sum(int((full[k] > 0).sum()) for k in full)
    diff = sum(int(np.abs(full[k].astype(np.int64) - half[k]).sum()) for k in full)
    total = sum(int(full[k].sum()) for k in full)
    return {"images": int(sum(1 for _ in folder.glob("*/*.JPEG"))), "entries": entries,
            "nonzero_entries": nonzero, "differing_entries": differ,
            "differing_share_of_nonzero": differ / max(nonzero, 1), "abs_diff_share": diff / max(total, 1)}


def report(images: int, width: int, height: int, image_size: int, threads: Sequence[int | None],
           ratios: Sequence[int] = (1, 2), repeats: int = 2) -> dict[str, dict[str, float]]:
    """Images/s per (threads, ratio), keyed ``"threads=N ratio=R"`` (N ``all`` for the default pool): the
    fastest of ``repeats`` passes, the settings interleaved pass by pass (the first pass also warms the file
    cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_jpegs(Path(tmp), images, width, height)
        passes = {f"threads={n or 'all'} ratio={ratio}": pipeline_pass(folder, image_size, n, ratio)
                  for n in threads for ratio in ratios}
        rates = machine.interleaved(passes, repeats)
    return {key: {"images_per_s": max(values)} for key, values in rates.items()}


def main(argv: list[str]) -> int:
    def body() -> None:
        before = machine.load()
        rates = report(FLAGS.images, FLAGS.width, FLAGS.height, FLAGS.image_size, (1, None))
        print(f"{FLAGS.images} JPEGs {FLAGS.width}x{FLAGS.height} -> {FLAGS.image_size} px, "
              f"{os.cpu_count()} CPUs, {machine.since(before)}")
        for key, value in rates.items():
            print(f"  {key:22s} {value['images_per_s']:8.1f} images/s")
        if FLAGS.agreement:
            with tempfile.TemporaryDirectory() as tmp:
                size = 2 * FLAGS.image_size
                agreement = count_agreement(make_jpegs(Path(tmp), FLAGS.images, size, size))
            print(f"ratio 2 vs full decode on {agreement['images']} images ({size} px): "
                  f"{agreement['differing_entries']} of {agreement['nonzero_entries']} non-zero A/I count "
                  f"entries differ ({100 * agreement['differing_share_of_nonzero']:.2f} %), summed |diff| "
                  f"{100 * agreement['abs_diff_share']:.2f} % of the counts")

    return run_command(FLAGS, argv, __doc__ or "", body, logs=False)

if __name__ == "__main__":
    entry_point(main)()
