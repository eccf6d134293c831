"""Dataset examples: for every channel, the image patches of a data set that excite it most.

Pass 1 streams the data once and keeps, on the device, the top ``n`` images of every channel of the chosen
layers by the channel's spatial maximum, with where that maximum is (``[C, n]`` state per layer, merged
batch by batch with ``top_k``; equal values keep the lower image index). Pass 2 streams the same,
deterministic source again and crops, for every kept (channel, image), the receptive field of the unit at
that maximum: the input pixels that can change it, found as the footprint of the gradient of the unit
w.r.t. the input (union over a few random images, so units that are dead on one image still show their
field), clipped to the image. Patches are saved with SUMMIT's published names
``OUT/feature-vis/dataset-p/<layer>-<channel>-dataset-p-<rank>.jpg`` (rank 0 = strongest), next to
``dataset-p.json`` with the values, image indices and positions.

Modules: :mod:`top` (pass 1), :mod:`fields` (receptive fields), :mod:`patches` (pass 2), :mod:`runner`
(both, resumable, from an :class:`ExamplesConfig`)::

    python -m summit_tf.examples --model=mobilenet_v1 --data=folder:DIR --out_dir=OUT [--layers=...]
        [--num_examples=10] [--channels='Conv2d_3_pointwise:1,2;Conv2d_5_pointwise:7']
"""

from summit_tf.examples.fields import receptive_fields
from summit_tf.examples.patches import SUBDIR, patch_path, save_patches
from summit_tf.examples.runner import INDEX_FILE, ExamplesConfig, run
from summit_tf.examples.top import Examples, from_json, to_json, top_examples

__all__ = ["INDEX_FILE", "SUBDIR", "Examples", "ExamplesConfig", "from_json", "patch_path",
           "receptive_fields", "run", "save_patches", "to_json", "top_examples"]
