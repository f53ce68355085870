"""A local HTML page in headless Chromium: its rendered DOM and a screenshot.

Chromium runs with no network use beyond the file itself (file:// pages here), so a
page that needs a CDN shows up as blank. Needs Chromium (`apt-get install chromium`).

Example: python -m a3lign_dfer report-page ... --screenshot reports/index.png
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@dataclass(frozen=True)
class Rendered:
    dom: str                 # the DOM after scripts ran (--dump-dom)
    screenshot: Path | None


def find_chromium() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _chromium(browser: str, *args: str, width: int, height: int, timeout: float) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", f"--window-size={width},{height}", "--virtual-time-budget=15000",
           *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def render(page: Path, screenshot: Path | None = None, width: int = 1280, height: int = 2400,
           timeout: float = 120) -> Rendered:
    """The page's DOM after its scripts ran, and (optionally) a screenshot of the top `height` pixels."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found (looked for chromium, chromium-browser, google-chrome): "
                                "apt-get install chromium")
    url = page.resolve().as_uri()
    dom = _chromium(browser, "--dump-dom", url, width=width, height=height, timeout=timeout)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        _chromium(browser, f"--screenshot={screenshot.resolve()}", url, width=width, height=height, timeout=timeout)
    return Rendered(dom, screenshot)


def image_spread(path: Path) -> float:
    """Standard deviation of an image's RGB values in [0, 1]: about 0 for a blank page or plot."""
    import matplotlib.image

    image = matplotlib.image.imread(path)
    return float(image[..., :3].std())
