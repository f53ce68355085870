"""Browser check of the Prefect UI: the deployments must be on the rendered page.

Starts a throwaway `prefect server` on a free 127.0.0.1 port (state in a
temporary PREFECT_HOME), serves flows/deployments.py against it, loads the UI's
deployments page in headless Chromium, checks the rendered DOM for every
deployment name and saves a screenshot. Needs Chromium (`apt-get install chromium`).

    python -m flows.ui_check            # screenshot to reports/prefect_ui/deployments.png
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = ("a3lign-dfer-pipeline", "weekly", "a3lign-dfer-release", "on-demand")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready, timeout: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: {proc.args[:3]} exited with {proc.returncode}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")


def _deployment_names(api: str) -> set[str]:
    request = urllib.request.Request(f"{api}/deployments/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return {d["name"] for d in json.load(response)}


def _chromium(browser: str, *args: str, timeout: float = 120) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--window-size=1440,900", "--virtual-time-budget=15000", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def check_ui(out_dir: Path, timeout: float = 120) -> dict:
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found (looked for chromium, chromium-browser, google-chrome): "
                                "apt-get install chromium")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PREFECT_HOME": home, "PREFECT_API_URL": api, "DO_NOT_TRACK": "1",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT)}
        logs = open(Path(home) / "processes.log", "w")
        prefect = str(Path(sys.executable).parent / "prefect")
        procs = [subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=logs, stderr=subprocess.STDOUT)]
        try:
            _wait("prefect server", lambda: urllib.request.urlopen(f"{api}/health", timeout=5).status == 200,
                  timeout, procs)
            procs.append(subprocess.Popen([sys.executable, "-m", "flows.deployments"], cwd=ROOT, env=env,
                                          stdout=logs, stderr=subprocess.STDOUT))
            _wait("deployments served", lambda: {"weekly", "on-demand"} <= _deployment_names(api), timeout, procs)
            page = f"http://127.0.0.1:{port}/deployments"
            dom = _chromium(browser, "--dump-dom", page)
            screenshot = out_dir / "deployments.png"
            _chromium(browser, f"--screenshot={screenshot}", page)
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            logs.close()
    missing = [name for name in DEPLOYMENTS if name not in dom]
    result = {"page": "/deployments", "found": [n for n in DEPLOYMENTS if n not in missing], "missing": missing,
              "screenshot": str(screenshot), "screenshot_bytes": screenshot.stat().st_size}
    if missing:
        raise AssertionError(f"deployments missing from the rendered UI page: {missing}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "reports/prefect_ui"))
    print(json.dumps(check_ui(Path(parser.parse_args().out)), indent=2))
