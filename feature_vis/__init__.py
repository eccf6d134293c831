"""Feature visualization in TF2, faithful to Lucid's defaults and batched: one optimization renders many
channels (each image its own objective), standing only on the model adapters (``summit_tf.models``).

Modules: :mod:`param` (FFT / pixel images, decorrelated colour), :mod:`transform` (Lucid's standard
transforms as one fused resampling), :mod:`objectives` (per-image objectives with arithmetic),
:mod:`optimize` (the loop; parameterization and optimizer can be passed in), :mod:`channels` (batches of
channel and diversity images traced once), :mod:`to_disk` (SUMMIT's files, resumable), :mod:`sprite`
(sheets + index), :mod:`outputs` (file names), :mod:`render` (``python -m feature_vis.render``).
"""

import summit_tf  # noqa: F401  first: under ``python -m`` it keeps TensorFlow's start-up records quiet

# isort: split
from feature_vis.channels import ChannelRenderer, objective_tensors, render_channels
from feature_vis.optimize import Optimization, RenderSettings, lucid_adam, render_vis
from feature_vis.to_disk import render_to_dir, select_channels

__all__ = ["ChannelRenderer", "Optimization", "RenderSettings", "lucid_adam", "objective_tensors",
           "render_channels", "render_to_dir", "render_vis", "select_channels"]
