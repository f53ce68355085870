"""Browser check of the Prefect UI: the deployments must be on the rendered page.

Starts a throwaway `prefect server` on a free 127.0.0.1 port (state in a
temporary PREFECT_HOME), serves flows/deployments.py against it, loads the UI's
deployments page in headless Chromium, checks the rendered DOM for every
deployment name and saves a screenshot. Needs Chromium (`apt-get install chromium`).

    python -m a3lign_research.ui_check            # screenshot to reports/prefect_ui/deployments.png
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from a3lign_dfer.serving.process import free_port
from a3lign_research import ROOT
from a3lign_research.browser import find_chromium, render_in_chromium

DEPLOYMENTS = ("a3lign-dfer-pipeline", "weekly", "a3lign-dfer-release", "on-demand", "a3lign-dfer-monitor", "daily")


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


def check_ui(out_dir: Path, timeout: float = 120) -> dict:
    if find_chromium() is None:
        raise FileNotFoundError("no Chromium found (looked for chromium, chromium-browser, google-chrome): "
                                "apt-get install chromium")
    port = free_port()
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
            _wait("deployments served", lambda: set(DEPLOYMENTS[1::2]) <= _deployment_names(api), timeout, procs)
            screenshot = out_dir / "deployments.png"
            dom = render_in_chromium(f"http://127.0.0.1:{port}/deployments", screenshot, width=1440, height=900).dom
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
