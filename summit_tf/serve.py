"""Serve the interactive SUMMIT viewer over one run directory, read-only, on the local machine.

``python -m summit_tf.serve --run_dir=DIR [--port=8000] [--host=127.0.0.1] [--open]``

The server itself is :mod:`summit_tf.viewer.server`.
"""

from __future__ import annotations

import errno
import sys
import threading
import webbrowser
from collections.abc import Sequence

from absl import flags

from summit_tf.cli import entry_point, require, run_command
from summit_tf.viewer.server import make_server

FLAGS = flags.FlagValues()
flags.DEFINE_string("run_dir", None, "run directory (classes.json, ag/, feature-vis/)", flag_values=FLAGS)
flags.DEFINE_integer("port", 8000, "TCP port (0 picks a free one).", flag_values=FLAGS)
flags.DEFINE_string("host", "127.0.0.1", "interface to bind; the default keeps the viewer local",
                    flag_values=FLAGS)
flags.DEFINE_bool("open", False, "Open the viewer in the default web browser.", flag_values=FLAGS)
flags.DEFINE_bool("access_log", False, "Log every request on stderr.", flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Run the CLI on ``argv`` (program name first) until Ctrl-C; returns the exit code."""
    def body() -> None:
        require(FLAGS, "run_dir")
        if not 0 <= FLAGS.port <= 65535:
            raise ValueError(f"--port must be in 0..65535, got {FLAGS.port}")
        try:
            server = make_server(FLAGS.run_dir, FLAGS.host, FLAGS.port, FLAGS.access_log)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ValueError(f"port {FLAGS.port} on {FLAGS.host} is busy; pick another with --port") \
                    from None
            raise ValueError(f"cannot listen on {FLAGS.host}:{FLAGS.port}: {exc.strerror or exc}") \
                from None
        host, port = server.server_address[:2]
        url = f"http://{'localhost' if server.loopback else host}:{port}/"
        if not server.loopback:
            print(f"warning: listening on {host}: other machines can read this run", file=sys.stderr)
        print(f"summit-tf viewer for {server.run_dir} at {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
        if FLAGS.open:
            threading.Timer(0.3, webbrowser.open, args=(url,)).start()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    return run_command(FLAGS, argv, __doc__ or "", body, logs=False)


run = entry_point(main)  # console script and ``python -m``


if __name__ == "__main__":
    run()
