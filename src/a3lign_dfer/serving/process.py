"""The service as its own process, on 127.0.0.1 by default: what the load test, the benchmark and the page check
talk to."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServiceProcess:
    url: str
    process: subprocess.Popen
    log: Path                        # its stdout and stderr so far

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def service_process(serve_args: list[str], cwd: Path, params: Path | None = None, env: dict | None = None,
                    timeout: float = 180, host: str = "127.0.0.1") -> Iterator[ServiceProcess]:
    """`python -m a3lign_dfer serve <serve_args>` bound to `host` on a free port, once /health says ready (its URL
    on 127.0.0.1, which 0.0.0.0 includes); stopped with SIGINT (uvicorn's graceful shutdown) on exit, unless it
    is gone already (a test may kill it). RuntimeError with its output if it never gets ready."""
    port = free_port()
    cmd = [sys.executable, "-m", "a3lign_dfer", *(["--params", str(params)] if params else []), "serve",
           *serve_args, "--host", host, "--port", str(port)]
    log = Path(tempfile.mkstemp(prefix="a3lign-serve-", suffix=".log")[1])
    with log.open("w") as out:
        process = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out,
                                   stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service was not ready after {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield ServiceProcess(url, process, log)
    finally:
        stop_process(process, signal.SIGINT, 30)
        log.unlink(missing_ok=True)


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20) -> None:
    """Ask a child process to stop with `sig`, killed when it has not exited after `grace` seconds (unless it is
    gone already)."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_service(serve_args: list[str], cwd: Path, params: Path | None = None, env: dict | None = None,
                    timeout: float = 180, host: str = "127.0.0.1") -> Iterator[str]:
    """service_process's URL alone: what most callers need."""
    with service_process(serve_args, cwd, params, env, timeout, host) as service:
        yield service.url
