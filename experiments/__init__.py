"""The paper's experiments, each run as ``python -m experiments.<name>``."""

import summit_tf  # noqa: F401  first: under ``python -m`` it keeps TensorFlow's start-up records quiet
