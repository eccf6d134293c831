"""The interactive viewer: its HTTP server (:mod:`server`), the static-site export (:mod:`static_site`)
and the browser app (``static/``). Command lines: ``python -m summit_tf.serve`` and
``python -m summit_tf.export_site``.
"""

from summit_tf.viewer.server import make_server
from summit_tf.viewer.static_site import export_site

__all__ = ["export_site", "make_server"]
