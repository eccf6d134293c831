"""summit-tf: per-class activation and attribution summaries of CNNs (SUMMIT, VAST 2019) in TensorFlow 2.

Data flows one way: ``data`` -> ``models`` -> aggregation -> HDF5 store -> ``graph`` -> export / viewer.
"""

import sys

if sys.argv[:1] == ["-m"]:  # ``python -m summit_tf.<tool>``: runpy imports this package first, argv[0] "-m"
    from summit_tf.cli import quiet_tensorflow

    quiet_tensorflow()

__version__ = "0.1.0"
