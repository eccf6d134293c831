"""The words settings are made of: reducers, channel selections, resize modes. One source for the flags,
the config checks and the kernels, free of TensorFlow so ``--help`` stays fast."""

from __future__ import annotations

ACTIVATION_REDUCERS = ("max", "mean", "sum", "l2")  # how a channel's map becomes one score (A)
INFLUENCE_REDUCERS = ("max", "sum", "l2")  # how a pair's influence map becomes one value (I)
SELECTION_KINDS = ("mass", "topk")
SELECT_HELP = "mass:TAU (0 < TAU <= 1) or topk:K (K >= 1)"
RESIZE_MODES = ("squash", "center_crop")
JPEG_RATIOS = (1, 2, 4, 8)  # DCT-domain JPEG downscaling denominators libjpeg decodes to directly


def parse_select(spec: str) -> tuple[str, float | int]:
    """``"mass:0.03"`` -> ``("mass", 0.03)``, ``"topk:5"`` -> ``("topk", 5)``; ValueError otherwise."""
    kind, sep, arg = str(spec).strip().partition(":")
    if not sep or kind not in SELECTION_KINDS:
        raise ValueError(f"bad selection {spec!r}; expected {SELECT_HELP}")
    if kind == "mass":
        try:
            tau = float(arg)
        except ValueError:
            raise ValueError(f"bad selection {spec!r}: TAU must be a number in (0, 1]") from None
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"bad selection {spec!r}: TAU must be in (0, 1]")
        return "mass", tau
    try:
        k = int(arg)
    except ValueError:
        raise ValueError(f"bad selection {spec!r}: K must be a positive integer") from None
    if k < 1:
        raise ValueError(f"bad selection {spec!r}: K must be a positive integer")
    return "topk", k

# How a run spreads over devices (tf.distribute): ``auto`` is MirroredStrategy when more than one GPU is
# visible, else one device; ``multi_worker`` reads its cluster from TF_CONFIG.
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
