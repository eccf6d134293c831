"""Where real assets come from: the assets folder (:mod:`paths`) and the cache or a download
(:mod:`download`). Command line: ``python -m summit_tf.download``."""

from summit_tf.assets.paths import ENV_VAR, shared_dir, shared_path

__all__ = ["ENV_VAR", "shared_dir", "shared_path"]
