"""The paper's experiments, each run as ``python -m experiments.<name>``."""

import sys

if sys.argv[:1] == ["-m"]:  # ``python -m experiments.<tool>``: runpy imports this package first, argv[0] "-m"
    from summit_tf.cli import quiet_tensorflow

    quiet_tensorflow()
