"""Feature visualization in TF2, faithful to Lucid's defaults and batched: one optimization renders many
channels (each image its own objective), standing only on the model adapters (``summit_tf.models``).

Modules: :mod:`param` (FFT / pixel images, decorrelated colour), :mod:`transform` (Lucid's standard
transforms as one fused resampling), :mod:`objectives` (per-image objectives with arithmetic),
:mod:`render` (the loop and batched rendering into SUMMIT's files), :mod:`sprite` (sheets + index),
:mod:`outputs` (file names, atomic writes, selections), :mod:`cli` (``python -m feature_vis.render``).
"""

import sys

if sys.argv[:1] == ["-m"]:  # ``python -m feature_vis.<tool>``: runpy imports this package first, argv[0] "-m"
    from summit_tf.cli import quiet_tensorflow

    quiet_tensorflow()
