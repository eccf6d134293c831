"""Feature visualization throughput: channels per second rendered one at a time vs batched, side by side.

Times optimization steps after warm-up (tracing is reported apart; each time waits for the device) and
converts to channels per second for full renders of steps 0..``--full_steps`` (Lucid: 0..512, 513
updates), one at a time and batched interleaved, the fastest of ``--repeats`` renders. Then times whole
batches as ``render_to_dir`` renders them, ``--batches`` batches of ``--batch_steps`` updates (the first
half ReLU-redirected): traced for every batch (``render``) vs once (a reused ``ChannelRenderer``), batch by
batch in turn. The load average is printed with the figures. Optionally renders a sprite of real channels
for the README (``--sprite_out``).

    python -m benchmarks.feature_vis --model=mobilenet_v1 --layer=Conv2d_9_pointwise --batch=32
    python -m benchmarks.feature_vis --sprite_out=docs/images/feature_vis_mobilenet_v1.jpg --timed_steps=0
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import flags

import feature_vis as fv
from benchmarks import machine
from feature_vis import objectives, outputs, sprite
from summit_tf.cli import entry_point, run_command
from summit_tf.models import SummitModel, load

FLAGS = flags.FlagValues()  # private: benchmarks.device imports this module beside others
flags.DEFINE_string("model", "mobilenet_v1", "Model spec.", flag_values=FLAGS)
flags.DEFINE_string("layer", "Conv2d_9_pointwise", "Layer whose channels are rendered.", flag_values=FLAGS)
flags.DEFINE_integer("batch", 32, "Channels per batched optimization.", flag_values=FLAGS)
flags.DEFINE_integer("size", 128, "Image size.", flag_values=FLAGS)
flags.DEFINE_integer("timed_steps", 8, "Steps timed per configuration after 2 warm-up steps (0: no timing).",
                     flag_values=FLAGS)
flags.DEFINE_integer("repeats", 2, "Timed renders per configuration, the configurations interleaved (the "
                     "fastest counts).", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("full_steps", 512, "Last step of a full render (steps 0..N), to convert step times "
                     "to channels/s.", flag_values=FLAGS)
flags.DEFINE_integer("batches", 2, "Batches timed traced per batch vs by one ChannelRenderer (0: skip).",
                     flag_values=FLAGS)
flags.DEFINE_integer("batch_steps", 16, "Updates per batch in that comparison (half with the ReLU redirect).",
                     lower_bound=2, flag_values=FLAGS)
flags.DEFINE_string("sprite_out", None, "If set, render a sprite of --sprite_channels channels here.",
                    flag_values=FLAGS)
flags.DEFINE_integer("sprite_channels", 16, "Channels in the README sprite (first ones of --layer).",
                     flag_values=FLAGS)
flags.DEFINE_integer("sprite_steps", 512, "Last step of the README sprite's renders (steps 0..N).",
                     flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seed.", flag_values=FLAGS)


def finish(optimization: fv.Optimization) -> None:
    """Wait until the device has done the steps run so far. A step only enqueues its work on a GPU, so a time
    stamped without waiting measures the launch, not the compute; a step's last write is the image
    parameters, so reading their sum waits for it."""
    for variable in optimization.image.trainable_variables:
        tf.reduce_sum(variable).numpy()


def time_steps(model: SummitModel, layer: str, batches: Sequence[int], size: int, steps: int,
               seed: int = 0, repeats: int = 1) -> dict[int, tuple[float, float]]:
    """Per channel count in ``batches``: (seconds per step after 2 warm-up steps, the fastest of ``repeats``
    renders, the counts' renders interleaved; seconds of the first render's first step, tracing included)."""
    # 2 warm-up updates, then ``steps`` timed ones (steps 0..steps + 1), never redirected.
    settings = fv.RenderSettings(size=size, steps=steps + 1, seed=seed, relu_redirect_steps=None)
    tensor = fv.objective_tensors(model, [layer])[layer]  # the default: the pre-activation

    def timed_render(batch: int) -> Callable[[], tuple[float, float]]:
        objective = objectives.channel(tensor, [c % model.channels[layer] for c in range(batch)])
        optimization = fv.Optimization(model, objective, batch, settings)

        def render() -> tuple[float, float]:
            stamps: list[float] = []

            def on_step(i: int) -> None:
                if i in (0, 1, steps + 1):  # the first step, the end of the warm-up, the last step
                    finish(optimization)
                    stamps.append(time.perf_counter())

            start = time.perf_counter()
            optimization.run(on_step=on_step)
            return (stamps[2] - stamps[1]) / steps, stamps[0] - start

        return render

    renders = machine.interleaved({batch: timed_render(batch) for batch in batches}, repeats)
    return {batch: (min(per_step for per_step, _ in runs), runs[0][1]) for batch, runs in renders.items()}


def time_batches(model: SummitModel, layer: str, batch: int, size: int, steps: int,
                 count: int, seed: int = 0) -> dict[str, list[float]]:
    """Seconds per batch of ``count`` batches: steps traced for each (``render``) vs once (renderer), the
    two interleaved batch by batch."""
    settings = fv.RenderSettings(size=size, steps=steps - 1, seed=seed,
                                 relu_redirect_steps=steps // 2 - 1)
    channels = model.channels[layer]
    batches = [[(layer, (k * batch + c) % channels) for c in range(batch)] for k in range(count)]
    renderer = fv.ChannelRenderer(model, [layer], batch, settings)

    def traced(pairs: list[tuple[str, int]]) -> None:
        objective = objectives.layer_channels(pairs, fv.objective_tensors(model, [layer]))
        fv.render_vis(model, objective, batch, settings, key=fv.channels.channel_key(pairs))

    def timed(render: Callable[[list[tuple[str, int]]], object]) -> Callable[[], float]:
        queue = iter(batches)

        def one() -> float:
            pairs = next(queue)
            start = time.perf_counter()
            render(pairs)  # both return the images as NumPy: the device has finished
            return time.perf_counter() - start

        return one

    return machine.interleaved({"traced_per_batch_s": timed(traced), "traced_once_s": timed(renderer.render)},
                               count)


def main(argv: list[str]) -> int:
    return run_command(FLAGS, argv, __doc__ or "", report, logs=False)


def report() -> None:
    model = load(FLAGS.model, layers=[FLAGS.layer])
    out: dict[str, object] = {"model": FLAGS.model, "layer": FLAGS.layer, "size": FLAGS.size}
    if FLAGS.timed_steps:
        before = machine.load()
        steps = time_steps(model, FLAGS.layer, (1, FLAGS.batch), FLAGS.size, FLAGS.timed_steps, FLAGS.seed,
                           FLAGS.repeats)
        (single, single_trace), (batched, batched_trace) = steps[1], steps[FLAGS.batch]
        under = machine.since(before)
        updates = FLAGS.full_steps + 1
        one_rate = 1.0 / (single * updates)
        batch_rate = FLAGS.batch / (batched * updates)
        out.update({
            "one_at_a_time": {"s_per_step": single, "channels_per_s": one_rate, "first_step_s": single_trace},
            f"batched_{FLAGS.batch}": {"s_per_step": batched, "channels_per_s": batch_rate,
                                       "first_step_s": batched_trace},
            "speedup": batch_rate / one_rate, "load": under,
        })
        print(f"one at a time: {single:.3f} s/step -> {one_rate * 3600:.1f} channels/h | "
              f"batched x{FLAGS.batch}: {batched:.3f} s/step -> {batch_rate * 3600:.1f} channels/h | "
              f"speedup {batch_rate / one_rate:.1f}x ({updates}-update renders, {FLAGS.size} px; {under})",
              file=sys.stderr)
    if FLAGS.timed_steps and FLAGS.batches:
        before = machine.load()
        times = time_batches(model, FLAGS.layer, FLAGS.batch, FLAGS.size, FLAGS.batch_steps, FLAGS.batches,
                             FLAGS.seed)
        under = machine.since(before)
        out[f"batches_of_{FLAGS.batch}x{FLAGS.batch_steps}_steps"] = {**times, "load": under}
        print(f"{FLAGS.batches} batches of {FLAGS.batch_steps} steps: traced per batch "
              f"{sum(times['traced_per_batch_s']):.1f} s, traced once {sum(times['traced_once_s']):.1f} s "
              f"({under})", file=sys.stderr)
    if FLAGS.sprite_out:
        channels = list(range(FLAGS.sprite_channels))
        settings = fv.RenderSettings(size=FLAGS.size, steps=FLAGS.sprite_steps, seed=FLAGS.seed)
        start = time.perf_counter()
        images = fv.render_channels(model, [(FLAGS.layer, c) for c in channels], settings,
                                        progress_label=f"sprite {FLAGS.layer}")
        out["sprite_seconds"] = time.perf_counter() - start
        sheet, _ = sprite.sprite_sheet(outputs.to_uint8(images), columns=int(np.ceil(np.sqrt(len(channels)))))
        outputs.save_jpeg(FLAGS.sprite_out, sheet, quality=90)
        out["sprite"] = FLAGS.sprite_out
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    entry_point(main)()
