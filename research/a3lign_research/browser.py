"""A local HTML page in headless Chromium: its rendered DOM and a screenshot.

Chromium runs with no network use beyond the file itself (file:// pages here), so a
page that needs a CDN shows up as blank. Needs Chromium (`apt-get install chromium`).

DevToolsTab drives a tab over the DevTools protocol where a page needs a click or a
file chosen (the service's page, a3lign_research.page_check).

Example (after `make repro`): python -m a3lign_research.browser reports/index.html --out reports/index.png
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from websockets.sync.client import connect

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


def render_in_chromium(page: Path | str, screenshot: Path | None = None, width: int = 1280, height: int = 2400,
           timeout: float = 120) -> Rendered:
    """The DOM of a page (a file, or a URL as a string) after its scripts ran, and (optionally) a screenshot
    of the top `height` pixels."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found (looked for chromium, chromium-browser, google-chrome): "
                                "apt-get install chromium")
    url = page if isinstance(page, str) else page.resolve().as_uri()
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


class DevToolsTab:
    """One headless Chromium tab driven over the DevTools protocol: for pages that need a click or a file
    chosen (the service's page), where --dump-dom only loads. Use as a context manager."""

    def __init__(self, width: int = 1280, height: int = 1000, timeout: float = 60) -> None:
        self.width, self.height, self.timeout = width, height, timeout
        self._next_id = 0

    def __enter__(self) -> "DevToolsTab":
        browser = find_chromium()
        if browser is None:
            raise FileNotFoundError("no Chromium found (looked for chromium, chromium-browser, google-chrome): "
                                    "apt-get install chromium")
        self._profile = Path(tempfile.mkdtemp(prefix="a3lign-chromium-"))
        self._process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--window-size={self.width},{self.height}", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = self._profile / "DevToolsActivePort", time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=self.timeout)
        return self

    def __exit__(self, *_) -> None:
        if getattr(self, "_socket", None) is not None:
            self._socket.close()
        self._process.terminate()
        self._process.wait(timeout=30)
        shutil.rmtree(self._profile, ignore_errors=True)

    def send(self, method: str, **params) -> dict:
        """One DevTools command and its result (events arriving meanwhile are skipped)."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=self.timeout))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None):
        """Poll a page expression until it is truthy; its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {expression}")
            time.sleep(0.1)
        return value

    def open(self, url: str) -> None:
        self.send("Page.enable")
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def choose_files(self, selector: str, files: list[Path]) -> None:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(Path(f).resolve()) for f in files])

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        height = self.evaluate("document.documentElement.scrollHeight")
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def main(argv: list[str] | None = None) -> int:
    """`python -m a3lign_research.browser PAGE --out PNG`: a screenshot of a local page as Chromium renders it."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("page", help="an HTML file (reports/index.html)")
    parser.add_argument("--out", required=True, help="the screenshot (PNG)")
    args = parser.parse_args(argv)
    print(f"screenshot {render_in_chromium(Path(args.page), Path(args.out)).screenshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
