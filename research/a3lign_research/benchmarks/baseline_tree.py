"""Today's code beside the working tree's, in one benchmark run: a commit's `src` and `params.yaml` extracted with
`git archive`, and a function run in a fresh process whose `a3lign_dfer` comes from that tree.

The venv installs the working tree's `src` editable (a path entry in site-packages), so a child that puts a
tree's `src` on PYTHONPATH imports that tree instead; the child checks `a3lign_dfer.__file__` before it runs
anything. `a3lign_research` (the task functions) always comes from the working tree: a task imports
`a3lign_dfer` inside its body and returns plain values (numbers, dicts, numpy arrays), never the tree's objects.

    tree = extract(BASELINE_REV, tmp / "baseline")
    result = run_in_tree(tree, "a3lign_research.benchmarks.video_cost:measure", "today", "clip.mp4", spec)
"""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from a3lign_research import ROOT

BASELINE_REV = "f43490f"        # today's path: OpenCV decode, a whole-file face track, then a second pass

# The child: a3lign_dfer first (from the intended tree, or it stops), then the task's module and the task.
_RUNNER = """
import importlib, pickle, sys
from pathlib import Path
src, task, folder = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
import a3lign_dfer
if not Path(a3lign_dfer.__file__).resolve().is_relative_to(src):
    raise ImportError(f"a3lign_dfer came from {a3lign_dfer.__file__}, not from {src}")
module, name = task.split(":")
result = getattr(importlib.import_module(module), name)(*pickle.loads((folder / "args").read_bytes()))
(folder / "result").write_bytes(pickle.dumps(result))
"""


def extract(rev: str, dest: Path) -> Path:
    """`src` and `params.yaml` of commit `rev` into `dest` (created); returns `dest`, whose code is dest/"src"."""
    archive = subprocess.run(["git", "archive", rev, "src", "params.yaml"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run_in_tree(tree: Path | None, fn: str, *args, timeout: float = 3600) -> object:
    """`fn` ("package.module:function") called with `args` in a fresh process importing `a3lign_dfer` from
    tree/"src" (the working tree when None); its result. RuntimeError with the child's output when it fails."""
    src = ((tree or ROOT) / "src").resolve()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with tempfile.TemporaryDirectory(prefix="a3lign-tree-") as folder:
        (Path(folder) / "args").write_bytes(pickle.dumps(args))
        done = subprocess.run([sys.executable, "-c", _RUNNER, str(src), fn, folder], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode:
            raise RuntimeError(f"{fn} in {src} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
        return pickle.loads((Path(folder) / "result").read_bytes())
