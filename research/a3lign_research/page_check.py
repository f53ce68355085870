"""The service's browser page in headless Chromium: choose a video, press Predict, read the result (and the
timeline chart the page draws under it for a video longer than one window).

Example (after `make repro`; writes the README's screenshot):
    python -m a3lign_research.page_check data/raw/videos/syn_00028.mp4 --out reports/serving/page.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.serving.process import running_service
from a3lign_research.browser import DevToolsTab

RESULT = """(() => ({
  label: document.getElementById('label').textContent,
  bars: [...document.querySelectorAll('#bars .name')].map(e => e.textContent),
  widths: [...document.querySelectorAll('#bars .fill')].map(e => e.style.width),
  crops: [...document.querySelectorAll('#crops img')].filter(i => i.complete && i.naturalWidth > 0).length,
  status: document.getElementById('status').textContent,
  timeline: !document.getElementById('timeline').classList.contains('hidden'),
  timeline_lines: [...document.querySelectorAll('#timeline-chart polyline')].map(e => e.dataset.class),
  external: [...document.querySelectorAll('script[src], link[href], img[src]')]
      .map(e => e.src || e.href).filter(u => !u.startsWith(location.origin) && !u.startsWith('data:')),
}))()"""


def check_page(base_url: str, video: Path, screenshot: Path | None = None, api_key: str | None = None) -> dict:
    """What the page shows after predicting `video`: label, bar names and widths, crops drawn, status line,
    whether the timeline chart shows and the classes it draws, and any resource it would load from outside the
    service (none expected). `api_key` is typed into the page's key field, which a service with a key makes it
    show."""
    with DevToolsTab() as tab:
        tab.open(f"{base_url}/")
        if api_key is not None:
            tab.wait_for("!document.getElementById('key-card').classList.contains('hidden')")
            tab.evaluate(f"document.getElementById('api-key').value = {json.dumps(api_key)}; "
                         "document.getElementById('key-submit').click()")
        tab.wait_for("!document.getElementById('submit').disabled")       # /metadata answered
        tab.choose_files("#video", [video])
        tab.evaluate("document.getElementById('submit').click()")
        tab.wait_for("document.getElementById('label').textContent !== '' || "
                     "document.getElementById('status').className === 'error'")
        tab.wait_for("[...document.querySelectorAll('#crops img')].every(i => i.complete)")
        tab.wait_for("!document.getElementById('status').textContent.includes('reading its timeline')")
        shown = tab.evaluate(RESULT)
        if screenshot is not None:
            tab.screenshot(screenshot)
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--artifact", default=str(DEPLOY_DIR))
    parser.add_argument("--out", default="reports/serving/page.png")
    args = parser.parse_args()
    with running_service(["--artifact", args.artifact], Path.cwd()) as url:
        print(json.dumps(check_page(url, Path(args.video), Path(args.out)), indent=2))


if __name__ == "__main__":
    main()
