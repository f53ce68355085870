"""A registered version of the deployment artifact, fetched by registry stage (`serve --stage`).

GTO says which version holds the stage; `dvc artifacts get` downloads it; the folder is then
verified like any other (inference.artifact). GTO and DVC are the `registry` extra: a service
that serves a folder imports neither this module nor them.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from a3lign_dfer.inference.artifact import Artifact, ArtifactError, verify
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_dfer.registry.versions import stages_held


def fetch_registered(repo: str, name: str, stage: str, dest: Path) -> Artifact:
    """The version of artifact `name` holding `stage` in the registry (GTO tags of `repo`), downloaded
    into `dest` with `dvc artifacts get` and verified."""
    missing = [package for package in ("gto", "dvc") if importlib.util.find_spec(package) is None]
    if missing:
        raise ArtifactError(f"serving a registry stage needs GTO and DVC (not installed: {', '.join(missing)}): "
                            "pip install 'a3lign-dfer[registry]', or serve a folder with --artifact")
    try:
        held = stages_held(repo, name)
    except Exception as err:                     # not a git repo, unreachable URL, no GTO tags readable
        raise ArtifactError(f"cannot read the model registry of {repo}: {err}") from err
    if stage not in held:
        raise ArtifactError(f"no version of {name} holds stage {stage!r} in the registry of {repo} "
                            f"(stages held: {held or 'none'}); release one first: python -m a3lign_dfer release")
    version = held[stage]
    # Run beside `dest`, not in the caller's folder: that may be a DVC workspace whose lock others hold.
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = str(Path(repo).resolve()) if Path(repo).exists() else repo       # a local path or a git URL
    done = run_dvc(["artifacts", "get", source, name, "--rev", version, "--out", str(dest), "--force"], dest.parent,
                   check=False)
    if done.returncode != 0:
        raise ArtifactError(f"dvc artifacts get {repo} {name} --rev {version} failed: "
                            f"{(done.stdout + done.stderr).strip()[-800:]}")
    return verify(dest, version, stage)
