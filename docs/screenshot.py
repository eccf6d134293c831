"""Regenerate the README's viewer screenshot from a run directory (headless Chromium via Playwright).

    python docs/screenshot.py --run_dir=runs/quickstart --class_id=0 --compare=217
"""

from __future__ import annotations

import argparse
import shutil
import threading

from summit_tf.viewer import server as serve

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--class_id", type=int, default=0)
    parser.add_argument("--compare", type=int, default=None)
    parser.add_argument("--out", default="docs/images/viewer.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    httpd = serve.make_server(args.run_dir, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/#class={args.class_id}"
    if args.compare is not None:
        url += f"&compare={args.compare}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        # the graph is drawn, still and has its images (the viewer publishes this state on its SVG)
        page.wait_for_selector("svg.graph-svg[data-classes]:not([data-busy])")
        page.screenshot(path=args.out)
        browser.close()
    httpd.shutdown()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
