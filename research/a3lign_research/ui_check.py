"""Browser check of the Prefect UI: the deployments and the retrain automation must be on the rendered pages.

Starts a throwaway `prefect server` on a free 127.0.0.1 port (state in a
temporary PREFECT_HOME; the UI and the automation services on), serves
flows/deployments.py against it, loads the UI's deployments and automations pages
in headless Chromium, checks the rendered DOM for every deployment name and the
retrain trigger, and saves a screenshot of each. Serving creates the automation, so
no run is needed; no event is sent, so nothing runs in the workspace.
`run_page` shows a flow run (the retrain run and the subflow runs it caused) on a
server started by `running_prefect_server`, as tests/test_retrain_trigger.py does.
`--pipeline-run` also runs the pipeline flow on a clone of the workspace (sharing its DVC
cache, so with an up-to-date dvc.lock each stage's task only checks its stage and
publishes its metrics) and screenshots that run: one task per DVC stage.
Needs Chromium (`apt-get install chromium`).

    python -m a3lign_research.ui_check                  # screenshots to reports/prefect_ui/
    python -m a3lign_research.ui_check --pipeline-run   # and pipeline_run.png (about 2 minutes more)
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_dfer.orchestration.dvc_stages import pipeline_stages
from a3lign_dfer.serving.process import free_port, stop_process
from a3lign_research import ROOT
from a3lign_research.browser import DevToolsTab, find_chromium

DEPLOYMENTS = ("a3lign-dfer-pipeline", "weekly", "a3lign-dfer-release", "on-demand", "a3lign-dfer-monitor", "daily",
               "a3lign-dfer-retrain", "on-drift")
AUTOMATION = ("a3lign-dfer: retrain on drift", "a3lign-dfer.drift.detected")   # flows/deployments.py's trigger
PAGE = {"width": 1440, "height": 900}


@dataclass(frozen=True)
class PrefectServer:
    """A running throwaway server: `ui` is its address, `api` the API's, `env` what a client process needs."""

    ui: str
    api: str
    env: dict[str, str]
    home: Path


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


def _post(api: str, path: str, body: dict | None = None):
    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def _deployment_names(api: str) -> set[str]:
    return {d["name"] for d in _post(api, "/deployments/filter")}


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        stop_process(proc)


@contextlib.contextmanager
def running_prefect_server(timeout: float = 240) -> Iterator[PrefectServer]:
    """`prefect server start` on a free loopback port with its UI and every service (the triggers and actions that
    run automations included), state in a temporary PREFECT_HOME; stopped and removed on exit. Its output goes to
    <home>/processes.log, which `serve_deployments` appends to."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PREFECT_HOME": home, "PREFECT_API_URL": api, "DO_NOT_TRACK": "1",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT)}
        prefect = str(Path(sys.executable).parent / "prefect")
        with open(Path(home) / "processes.log", "w") as logs:
            procs = [subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                      env=env, stdout=logs, stderr=subprocess.STDOUT)]
            try:
                _wait("prefect server", lambda: urllib.request.urlopen(f"{api}/health", timeout=5).status == 200,
                      timeout, procs)
                yield PrefectServer(f"http://127.0.0.1:{port}", api, env, Path(home))
            finally:
                _stop(procs)


@contextlib.contextmanager
def serve_deployments(server: PrefectServer, command: list[str], names: set[str], timeout: float = 240,
                      cwd: Path = ROOT, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """`command` (a process that serves deployments, e.g. `python -m flows.deployments`) against the server until
    every deployment in `names` is registered; stopped on exit."""
    with open(server.home / "processes.log", "a") as logs:
        proc = subprocess.Popen(command, cwd=cwd, env={**server.env, **(env or {})}, stdout=logs,
                                stderr=subprocess.STDOUT)
        try:
            _wait("deployments served", lambda: names <= _deployment_names(server.api), timeout, [proc])
            yield proc
        finally:
            _stop([proc])


def _page(server: PrefectServer, path: str, screenshot: Path, expected: tuple[str, ...], wait: float = 60) -> dict:
    """The page in a headless Chromium tab once every expected name is in its DOM (or `wait` seconds passed): which
    were found, and a screenshot of the window. The UI loads its lists after the page, so a one-shot render can
    catch a list still empty; the graph of a run is drawn on a canvas, given two seconds more."""
    with DevToolsTab(**PAGE) as tab:
        tab.send("Emulation.setDeviceMetricsOverride", **PAGE, deviceScaleFactor=1, mobile=False)
        tab.open(f"{server.ui}{path}")
        names = json.dumps(list(expected))
        try:
            tab.wait_for(f"{names}.every(n => document.documentElement.outerHTML.includes(n))", timeout=wait)
        except TimeoutError:
            pass
        time.sleep(2)
        dom = tab.evaluate("document.documentElement.outerHTML")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(tab.send("Page.captureScreenshot", format="png")["data"]))
    missing = [name for name in expected if name not in dom]
    return {"page": path, "found": [n for n in expected if n not in missing], "missing": missing,
            "screenshot": str(screenshot), "screenshot_bytes": screenshot.stat().st_size}


def automations_page(server: PrefectServer, out_dir: Path) -> dict:
    """The Automations page: the retrain trigger's name and the event it expects."""
    return _page(server, "/automations", out_dir / "automations.png", AUTOMATION)


def run_page(server: PrefectServer, flow_run_id: str, out_dir: Path, expected: tuple[str, ...],
             name: str = "retrain_run.png") -> dict:
    """A flow run's page (its graph of task and subflow runs, then its logs) with `expected` names in the DOM."""
    return _page(server, f"/runs/flow-run/{flow_run_id}", out_dir / name, expected)


def pipeline_run_page(server: PrefectServer, workspace: Path, out_dir: Path, timeout: float = 600) -> dict:
    """The pipeline flow run on a clone of `workspace` (its committed state, its DVC cache) against `server`, and
    that run's page with every stage's task in the DOM: pipeline_run.png."""
    with tempfile.TemporaryDirectory(prefix="pipeline-run-") as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(workspace), str(repo)], check=True)
        run_dvc(["cache", "dir", "--local", str(Path(workspace).resolve() / ".dvc/cache")], repo)
        run_dvc(["checkout", "-q"], repo)
        done = subprocess.run([sys.executable, "-m", "flows.pipeline", "--repo", str(repo), "--no-commit"], cwd=ROOT,
                              env=server.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"the pipeline flow failed:\n{(done.stdout + done.stderr)[-3000:]}")
        run = next(r for r in _post(server.api, "/flow_runs/filter") if r["state_type"] == "COMPLETED")
        stages = tuple(stage.name for stage in pipeline_stages(repo))
    return run_page(server, run["id"], out_dir, stages, name="pipeline_run.png")


def check_ui(out_dir: Path, timeout: float = 120, pipeline_of: Path | None = None) -> dict:
    """The deployments page (every deployment) and the automations page (the retrain trigger), each a screenshot,
    and with `pipeline_of` (a workspace) a pipeline run's page; AssertionError naming what the rendered pages
    lack."""
    if find_chromium() is None:
        raise FileNotFoundError("no Chromium found (looked for chromium, chromium-browser, google-chrome): "
                                "apt-get install chromium")
    out_dir.mkdir(parents=True, exist_ok=True)
    with running_prefect_server(timeout) as server, \
            serve_deployments(server, [sys.executable, "-m", "flows.deployments"], set(DEPLOYMENTS[1::2]), timeout):
        result = _page(server, "/deployments", out_dir / "deployments.png", DEPLOYMENTS)
        result["automations"] = automations_page(server, out_dir)
        if pipeline_of is not None:
            result["pipeline_run"] = pipeline_run_page(server, pipeline_of, out_dir)
    missing = [name for page in (result, result["automations"], result.get("pipeline_run", {}))
               for name in page.get("missing", [])]
    if missing:
        raise AssertionError(f"missing from the rendered UI pages: {missing}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "reports/prefect_ui"))
    parser.add_argument("--pipeline-run", action="store_true",
                        help="also run the pipeline flow on a clone of this workspace and screenshot the run")
    args = parser.parse_args()
    print(json.dumps(check_ui(Path(args.out), pipeline_of=ROOT if args.pipeline_run else None), indent=2))
