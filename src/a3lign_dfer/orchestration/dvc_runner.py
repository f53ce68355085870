"""The DVC command line as this project runs it: `python -m dvc` of this interpreter, in a repository.

One place builds the command and its environment, so every caller runs the DVC of the environment
the project is installed in (not whichever `dvc` is first on PATH), and its stages' `python` too.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path


class DvcFailed(RuntimeError):
    """A DVC command exited non-zero; the message names it and ends with its output."""


def dvc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """dvc.yaml's cmds say `python`: make it this interpreter, as `make` does with the venv; `extra` on top."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **(extra or {})}


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def run_dvc(args: Sequence[str], repo: Path, *, check: bool = True, capture: bool = True,
            env_extra: dict | None = None) -> subprocess.CompletedProcess[str]:
    """`dvc ARGS` in `repo` (its output captured as text unless `capture` is False); with `check`, DvcFailed
    carrying the output when it fails. Output is captured through files, not pipes: a process DVC starts may
    outlive it holding them (`dvc queue start`'s worker), and reading a pipe to its end would wait for it."""
    if not capture:
        done = subprocess.run(_command(args), cwd=repo, env=dvc_env(env_extra), text=True)
    else:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            done = subprocess.run(_command(args), cwd=repo, env=dvc_env(env_extra), stdout=out, stderr=err, text=True)
            out.seek(0)
            err.seek(0)
            done.stdout, done.stderr = out.read(), err.read()
    if check and done.returncode != 0:
        output = ((done.stdout or "") + (done.stderr or "")).strip()[-2000:]
        raise DvcFailed(f"dvc {' '.join(map(str, args))} failed in {repo} (exit {done.returncode}):\n{output}")
    return done


def stream_dvc(args: Sequence[str], repo: Path, on_line: Callable[[str], None],
               env_extra: dict | None = None) -> int:
    """`dvc ARGS` in `repo` with each output line (stdout and stderr) handed to `on_line` as it comes; the exit
    status. For long commands (`dvc repro`) whose progress is worth seeing before they end."""
    with subprocess.Popen(_command(args), cwd=repo, env=dvc_env(env_extra), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            on_line(line.rstrip("\n"))
    return proc.returncode
