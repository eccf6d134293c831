"""summit-tf: per-class activation and attribution summaries of CNNs (SUMMIT, VAST 2019) in TensorFlow 2.

Data flows one way: ``data`` -> ``models`` -> aggregation -> HDF5 store -> ``graph`` -> export / viewer.
"""

__version__ = "0.1.0"
