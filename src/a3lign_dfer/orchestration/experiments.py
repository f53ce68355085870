"""What a run with changed params leaves behind: a DVC experiment, or a commit of its results.

A flow run with `set_params` (e.g. `stage3.lr.mat=0.003`, `data.dataset=csv`)
edits params.yaml only for its own duration: it starts from a clean committed
workspace, records the outcome with `dvc exp save` (params, dvc.lock, metrics
and cached outputs; `dvc exp show` lists it) and puts the workspace back to the
commit, so the next run never inherits an untracked edit. A run on the committed
params commits its dvc.lock and git-tracked outputs instead.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from a3lign_dfer.orchestration.dvc_runner import dvc_env, run_dvc
from a3lign_dfer.orchestration.dvc_stages import Stage


def run_checked(cmd: list[str], repo: Path) -> str:
    """stdout of a git command in the repo; its own error text when it fails."""
    done = subprocess.run(cmd, cwd=repo, env=dvc_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {repo}:\n{(done.stdout + done.stderr).strip()[-2000:]}")
    return done.stdout


def uncommitted(repo: Path) -> list[str]:
    return [line[3:] for line in run_checked(["git", "status", "--porcelain", "--untracked-files=no"], repo).splitlines()]


def apply_params(repo: Path, overrides: list[str]) -> None:
    """Edit params.yaml with DVC's own `-S` syntax (Hydra overrides), from a clean workspace only."""
    from dvc.utils.hydra import apply_overrides

    dirty = uncommitted(repo)
    if dirty:
        raise RuntimeError(f"a run with set_params needs a clean committed workspace, so the experiment records "
                           f"exactly what it ran; uncommitted: {', '.join(dirty)}")
    apply_overrides(str(repo / "params.yaml"), list(overrides))


def experiment_name(run_name: str) -> str:
    return "flow-" + re.sub(r"[^A-Za-z0-9_-]+", "-", run_name).strip("-")


def save_experiment(repo: Path, name: str, message: str) -> str:
    """`dvc exp save`: the workspace (params, dvc.lock, metrics, cached outputs) as a named experiment."""
    run_dvc(["exp", "save", "--force", "--name", name, "--message", message], repo)
    refs = [r for r in run_checked(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).split()
            if r.endswith(f"/{name}")]
    return run_checked(["git", "rev-parse", refs[0]], repo).strip()


def restore_committed(repo: Path) -> None:
    """Tracked files and DVC outputs back to HEAD (outputs come from DVC's cache)."""
    run_checked(["git", "checkout", "--", "."], repo)
    run_dvc(["checkout", "--force", "--quiet"], repo, check=False)   # outputs never built at HEAD stay absent


def commit_results(repo: Path, stages: list[Stage], message: str) -> str | None:
    """Commit dvc.lock and every git-tracked output (metrics, plots); None when nothing changed."""
    paths = ["dvc.lock", *[p for s in stages for p in s.git_outputs if (repo / p).exists()]]
    run_checked(["git", "add", "--", *paths], repo)
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=repo).returncode == 0:
        return None
    run_checked(["git", "commit", "-q", "-m", message], repo)
    return run_checked(["git", "rev-parse", "HEAD"], repo).strip()
