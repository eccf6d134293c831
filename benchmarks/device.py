"""All device figures in one command: one table, written to ``benchmarks/results/<device-name>.json``.

    python -m benchmarks.device            # on whatever device is present (a GPU: under 8 minutes)
    python -m benchmarks.device --smoke    # the same code on tiny sizes, seconds on a CPU (CI runs it)

Rows (each from the benchmark module that owns the measurement, imported, not copied):
- aggregation images/s and its ratio to the plain forward pass (``benchmarks.aggregate``), MobileNetV1
  and the InceptionV1 structural fixture, batch 64 and 256, XLA off and (at batch 64) on (the engine's
  step traced again with ``jit_compile``; the first call, compile included, is reported apart);
- feature vis channels/s one at a time vs batched 64, 128 px, 512-step renders (``benchmarks.feature_vis``,
  timed steps after warm-up), and the projected time for all 5,484 InceptionV1 channels;
- input pipeline images/s, decode + resize of 500x375 JPEGs, all cores (``benchmarks.input_pipeline``);
- mirrored scaling: aggregation images/s of the engine's step on one GPU vs ``mirrored`` over all N GPUs
  at N times the global batch, efficiency rate_N / (N x rate_1) (``benchmarks.scaling``); skipped with
  fewer than 2 GPUs; ``--smoke`` runs it on 2 logical CPU devices (the code path only, no real figure);
- host-resident accumulators: the host's int32 scatter-add rate (indices/s, one core and all cores) on a
  real step's indices, and what counting on the host would cost at the measured aggregation rate vs the
  class-group passes the engine makes when the counters exceed the device (``benchmarks.host_scatter``);
- the projected wall time of ImageNet-train (1,281,167 images) A + all I for InceptionV1 at stride 1, and
  whether compute or input bounds it.
Timings are the fastest of a few passes, the sides of each ratio interleaved; every row records the load
average before and after its timed part, and the table's head the load before and after the whole run.
"""

from __future__ import annotations

import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import tensorflow as tf
from absl import flags

from benchmarks import aggregate as agg_bench
from benchmarks import feature_vis as fv_bench
from benchmarks import host_scatter, input_pipeline, machine, scaling
from summit_tf import atomic
from summit_tf.aggregation import memory_plan
from summit_tf.aggregation import plan as run_plan
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.cli import entry_point, run_command
from summit_tf.models.base import SummitModel

FLAGS = flags.FlagValues()
flags.DEFINE_bool("smoke", False, "tiny sizes: the same code in seconds on a CPU", flag_values=FLAGS)
flags.DEFINE_bool("xla", None, "also time the aggregation step compiled by XLA (default: yes, but not with "
                  "--smoke: compiling takes minutes on a CPU)", flag_values=FLAGS)
flags.DEFINE_string("out", None, "the JSON file (default benchmarks/results/<device-name>.json)",
                    flag_values=FLAGS)

IMAGENET_TRAIN = 1_281_167
INCEPTION_CHANNELS = 5_484
INCEPTION = "inception_v1 (fixture)"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sizes:
    """What one run measures: the full device run or the CI smoke run."""

    batch_sizes: tuple[int, ...]
    batches: int  # timed batches per configuration
    repeats: int  # passes over them, the fastest counts
    layers: dict[str, int] | None  # per model: the first N SUMMIT layers (None: all)
    fv_layer: str  # the InceptionV1 fixture layer rendered
    fv_size: int
    fv_batch: int
    fv_timed_steps: int
    pipeline_images: int
    pipeline_shape: tuple[int, int]  # width, height
    scaling_models: tuple[str, ...]  # mirrored scaling, at the first batch size per device
    scaling_steps: int  # timed global batches


FULL = Sizes(batch_sizes=(64, 256), batches=3, repeats=2, layers=None, fv_layer="mixed4d", fv_size=128,
             fv_batch=64, fv_timed_steps=8, pipeline_images=512, pipeline_shape=(500, 375),
             scaling_models=("mobilenet_v1", INCEPTION), scaling_steps=4)
SMOKE = Sizes(batch_sizes=(2,), batches=1, repeats=1, layers={"mobilenet_v1": 2, INCEPTION: 1},
              fv_layer="mixed3a", fv_size=32, fv_batch=4,
              fv_timed_steps=1, pipeline_images=8, pipeline_shape=(40, 30),
              scaling_models=(INCEPTION,), scaling_steps=1)
SMOKE_DEVICES = 2  # logical CPU devices of the smoke run's mirrored row
FV_FULL_STEPS = 512  # Lucid's renders: steps 0..512


def device_name() -> str:
    """The accelerator's name (the first GPU's), else the CPU's model and core count."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{details.get('device_name', 'gpu')}" + (f" x{len(gpus)}" if len(gpus) > 1 else "")
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} {os.cpu_count()} cores"


def file_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".json"


def config(label: str, model: SummitModel, sizes: Sizes) -> AggregateConfig:
    """The aggregation settings measured (smoke: the model's first layers only)."""
    layers = tuple(model.layers[:sizes.layers[label]]) if sizes.layers else None
    return AggregateConfig(model=model.spec, data="random", out="-", layers=layers)


def aggregation_rows(label: str, model: SummitModel, sizes: Sizes, xla: bool) -> list[dict]:
    """Forward and aggregation images/s per batch size and XLA setting, on random images."""
    cfg = config(label, model, sizes)
    rows = []
    for batch_size in sizes.batch_sizes:
        batches = agg_bench.make_batches(model.input_size, batch_size, sizes.batches)
        plan = run_plan.make_plan(model, cfg, sorted({int(c) for _, y in batches for c in y}))
        # XLA only at the first batch size: each compile of a whole step takes minutes
        for jit in (False, True) if xla and batch_size == sizes.batch_sizes[0] else (False,):
            run_forward, run_step, acc = agg_bench.forward_and_step(model, plan, cfg, jit=jit)
            start = time.perf_counter()
            run_forward(*batches[0])
            run_step(*batches[0])
            first = time.perf_counter() - start
            agg_bench.zero(acc)
            before = machine.load()
            best = agg_bench.fastest({"forward": run_forward, "aggregate": run_step}, batches, sizes.repeats)
            n = batch_size * sizes.batches
            rows.append({"model": label,
                         "batch": batch_size, "xla": jit, "forward_images_per_s": n / best["forward"],
                         "aggregate_images_per_s": n / best["aggregate"],
                         "ratio": best["forward"] / best["aggregate"], "first_call_s": first,
                         "layers": len(plan.layers), "model_layers": len(model.layers),
                         "links": len(plan.links), "load": machine.since(before)})
            print(f"  aggregate {rows[-1]['model']} batch {batch_size} xla {jit}: "
                  f"{rows[-1]['aggregate_images_per_s']:.1f} images/s", flush=True)
    return rows


def feature_vis_row(model: SummitModel, sizes: Sizes) -> dict:
    """Channels/s of full renders, one at a time vs batched, and all InceptionV1 channels projected."""
    before = machine.load()
    steps = fv_bench.time_steps(model, sizes.fv_layer, (1, sizes.fv_batch), sizes.fv_size,
                                sizes.fv_timed_steps, repeats=sizes.repeats)
    (single, _), (batched, _) = steps[1], steps[sizes.fv_batch]
    updates = FV_FULL_STEPS + 1
    one_rate, batch_rate = 1 / (single * updates), sizes.fv_batch / (batched * updates)
    return {"model": INCEPTION, "layer": sizes.fv_layer, "size": sizes.fv_size,
            "steps": FV_FULL_STEPS, "batch": sizes.fv_batch, "one_at_a_time_channels_per_s": one_rate,
            "batched_channels_per_s": batch_rate, "speedup": batch_rate / one_rate,
            "all_inception_channels_minutes": INCEPTION_CHANNELS / batch_rate / 60,
            "load": machine.since(before)}


def pipeline_row(sizes: Sizes) -> dict:
    width, height = sizes.pipeline_shape
    before = machine.load()
    rates = input_pipeline.report(sizes.pipeline_images, width, height, 224, threads=(1, None), ratios=(1,),
                                  repeats=sizes.repeats + 1)
    return {"jpeg": f"{width}x{height}", "images": sizes.pipeline_images, "cores": os.cpu_count(),
            "images_per_s": rates["threads=all ratio=1"]["images_per_s"],
            "one_thread_images_per_s": rates["threads=1 ratio=1"]["images_per_s"],
            "load": machine.since(before)}


def scaling_row(models: dict[str, SummitModel], sizes: Sizes, smoke_devices: str | None) -> dict:
    """One device vs ``mirrored`` over all GPUs (smoke: over the logical CPUs); ``smoke_devices`` is why
    the CPU could not be split, if it could not."""
    smoke = sizes is SMOKE
    names = scaling.devices("CPU" if smoke else "GPU")
    if smoke and smoke_devices:
        return {"devices": len(names), "status": f"skipped: {smoke_devices}", "rows": []}
    if len(names) < 2:
        return {"devices": len(names), "status": f"skipped: {len(names)} GPU(s), mirrored scaling needs 2 or "
                "more", "rows": []}
    rows = []
    for label in sizes.scaling_models:
        model = models[label]
        before = machine.load()
        row = scaling.scaling(model, label, config(label, model, sizes), names, sizes.batch_sizes[0],
                              sizes.scaling_steps, sizes.repeats)
        rows.append({**row, "load": machine.since(before)})
        print(f"  mirrored {label} on {len(names)} devices: efficiency {rows[-1]['efficiency']:.2f}",
              flush=True)
    note = (f"smoke: {len(names)} logical CPU devices sharing the cores, a check of the code path, no "
            "scaling figure" if smoke else f"{len(names)} GPUs")
    return {"devices": len(names), "status": "measured", "note": note, "rows": rows}


def host_rows(models: dict[str, SummitModel], sizes: Sizes, agg_rows: list[dict]) -> list[dict]:
    """Per model: the host's scatter-add rate on the step's indices, and host accumulators vs class-group
    passes for ImageNet train at the model's fastest engine rate (XLA off, as the engine runs)."""
    budget = memory_plan.default_budget()
    rows = []
    for label, model in models.items():
        cfg = config(label, model, sizes)
        batches = agg_bench.make_batches(model.input_size, sizes.batch_sizes[0], sizes.batches)
        before = machine.load()
        host = host_scatter.host_scatter(model, cfg, batches, sizes.repeats + 1)
        load = machine.since(before)
        rate = max(r["aggregate_images_per_s"] for r in agg_rows if r["model"] == label and not r["xla"])
        plan = run_plan.make_plan(model, cfg, [0])
        per_class = memory_plan.bytes_per_class(model, plan)
        rows.append({"model": label, **host, "per_class_bytes": per_class, "budget_bytes": budget,
                     **host_scatter.compare(host, rate, per_class, budget, IMAGENET_TRAIN), "load": load})
        print(f"  host scatter {label}: {host['one_core_indices_per_s'] / 1e6:.1f} M indices/s on one core",
              flush=True)
    return rows


def projection(agg_rows: list[dict], pipeline: dict) -> dict:
    """ImageNet-train A + all I for InceptionV1 at the fastest measured rate, bounded by compute or input."""
    best = max([r for r in agg_rows if r["model"] == INCEPTION], key=lambda r: r["aggregate_images_per_s"])
    compute_s = IMAGENET_TRAIN / best["aggregate_images_per_s"]
    input_s = IMAGENET_TRAIN / pipeline["images_per_s"]
    return {"images": IMAGENET_TRAIN, "from": f"batch {best['batch']}, xla {best['xla']}",
            "compute_minutes": compute_s / 60, "input_minutes": input_s / 60,
            "minutes": max(compute_s, input_s) / 60, "bound": "compute" if compute_s >= input_s else "input",
            "all_layers": best["layers"] == best["model_layers"]}


def table(result: dict) -> str:
    lines = [f"device: {result['device']}   (whole run: {result['load']})", "",
             "aggregation        batch  xla   forward img/s  aggregate img/s  ratio  first call s  load"]
    for r in result["aggregation"]:
        lines.append(f"{r['model']:22s} {r['batch']:4d}  {'on ' if r['xla'] else 'off'} "
                     f"{r['forward_images_per_s']:13.1f} {r['aggregate_images_per_s']:16.1f} "
                     f"{r['ratio']:6.2f} {r['first_call_s']:12.1f}  {r['load']}")
    fv = result["feature_vis"]
    lines += ["", f"feature vis {fv['model']} {fv['layer']}, {fv['size']} px, steps 0..{fv['steps']}: "
              f"one at a time {fv['one_at_a_time_channels_per_s'] * 60:.2f} channels/min, batched "
              f"{fv['batch']} {fv['batched_channels_per_s'] * 60:.2f} channels/min ({fv['speedup']:.1f}x); "
              f"all {INCEPTION_CHANNELS:,} channels {fv['all_inception_channels_minutes']:.1f} min "
              f"({fv['load']})"]
    p = result["input_pipeline"]
    lines.append(f"input pipeline: {p['images_per_s']:.0f} images/s decode + resize of {p['jpeg']} JPEGs, "
                 f"{p['cores']} cores ({p['one_thread_images_per_s']:.0f} images/s on one thread; "
                 f"{p['load']})")
    m = result["mirrored"]
    lines.append(f"mirrored scaling: {m['status']}" + (f" ({m['note']})" if m.get("note") else ""))
    for r in m["rows"]:
        lines.append(f"  {r['model']:22s} batch {r['per_device_batch']} per device: one device "
                     f"{r['one_device_images_per_s']:.1f} images/s, {r['devices']} devices "
                     f"{r['mirrored_images_per_s']:.1f} images/s, efficiency {r['efficiency']:.2f} "
                     f"({r['load']})")
    lines.append("host accumulators (int32 scatter-add of the step's indices on the host) vs class-group "
                 "passes, ImageNet train, 1,000 classes" + (" (smoke: first layers only, no real figures):"
                                                           if result["smoke"] else ":"))
    for r in result["host_accumulators"]:
        budget = "no limit" if r["budget_bytes"] is None else memory_plan.mib(r["budget_bytes"])
        lines.append(f"  {r['model']:22s} {r['indices_per_image']:,.0f} indices/image: "
                     f"{r['one_core_indices_per_s'] / 1e6:.1f} M indices/s on one core, "
                     f"{r['all_cores_indices_per_s'] / 1e6:.1f} M/s on {r['cores']} cores ({r['load']})")
        lines.append(f"  {'':22s} at {r['device_images_per_s']:.1f} images/s: {r['cores_needed']:.1f} "
                     f"cores of scatter, {r['index_mb_per_s']:.0f} MB/s of indices; host "
                     f"{r['host_minutes']:.1f} min vs {r['passes']} pass(es) {r['passes_minutes']:.1f} min "
                     f"(budget {budget}): {r['cheaper']}"
                     f"; the host pays only beyond {r['break_even_passes']:.1f} passes")
    j = result["projection"]
    lines.append(f"ImageNet-train A + all I, InceptionV1 ({j['from']}): {j['minutes']:.1f} min, bound by "
                 f"{j['bound']} (compute {j['compute_minutes']:.1f} min, input {j['input_minutes']:.1f} min)"
                 + ("" if j["all_layers"] else "; smoke: not all layers, not a real projection"))
    return "\n".join(lines)


def run(sizes: Sizes, xla: bool, out: Path | None, smoke_devices: str | None = None) -> dict:
    """Every row; the JSON written atomically to ``out`` (default: ``benchmarks/results/<device>.json``).
    ``smoke_devices``: why the CPU could not be split for the smoke run's mirrored row (None: it was)."""
    tf.get_logger().setLevel("ERROR")
    name = device_name()
    start, before = time.perf_counter(), machine.load()
    models = {"mobilenet_v1": agg_bench.load_model("mobilenet_v1"),
              INCEPTION: agg_bench.load_model(agg_bench.FIXTURE)}
    rows = [row for label, model in models.items() for row in aggregation_rows(label, model, sizes, xla)]
    pipeline = pipeline_row(sizes)
    result = {"device": name, "smoke": sizes is SMOKE, "sizes": asdict(sizes), "aggregation": rows,
              "feature_vis": feature_vis_row(models[INCEPTION], sizes), "input_pipeline": pipeline,
              "mirrored": scaling_row(models, sizes, smoke_devices),
              "host_accumulators": host_rows(models, sizes, rows), "projection": projection(rows, pipeline),
              "load": machine.since(before), "seconds": None}
    result["seconds"] = time.perf_counter() - start
    atomic.write_json(out or RESULTS / file_name(name), result, indent=1)
    return result


def main(argv: list[str]) -> int:
    def body() -> None:
        xla = not FLAGS.smoke if FLAGS.xla is None else FLAGS.xla
        # before any TensorFlow work: devices are fixed at start-up
        smoke_devices = scaling.split_cpu(SMOKE_DEVICES) if FLAGS.smoke else None
        result = run(SMOKE if FLAGS.smoke else FULL, xla, Path(FLAGS.out) if FLAGS.out else None,
                     smoke_devices)
        print(table(result))
        print(f"{result['seconds']:.0f} s; written {FLAGS.out or RESULTS / file_name(result['device'])}")

    return run_command(FLAGS, argv, __doc__ or "", body, logs=False)


if __name__ == "__main__":
    entry_point(main)()
