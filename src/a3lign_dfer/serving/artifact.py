"""The deployment artifact a service may load: checked file by file, or fetched from the registry.

Export lists every file of models/deploy with its sha256 in manifest.json. A file that
is missing, changed or not listed means the folder is not what the pipeline built and
the release gate passed, so the service refuses to start rather than serve it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.checksums import sha256
from a3lign_dfer.errors import UserError
from a3lign_dfer.report_files import DEPLOY_MANIFEST, DeployManifest, parse


class ArtifactError(UserError, RuntimeError):
    """The artifact cannot be served; the message says which files or which registry lookup failed."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: DeployManifest
    manifest_sha256: str        # identifies the exact build, registered or not
    version: str | None         # the registry version, when fetched by stage
    stage: str | None

    def require_precision(self, precision: str) -> None:
        """ArtifactError unless the artifact may run at `precision`: INT8 only where export wrote the INT8 image
        encoder and its gate on the test clips passed (manifest `int8.releasable`)."""
        if precision == "fp32":
            return
        int8 = self.manifest.int8
        if int8 is None or int8.file is None:
            raise ArtifactError(f"refusing --precision {precision}: {self.path} has no INT8 image encoder (export.int8"
                                ".method none, or exported before INT8 existed); use --precision fp32")
        if not int8.releasable:
            raise ArtifactError(f"refusing --precision {precision}: the INT8 image encoder of {self.path} missed its "
                                f"release gate ({int8.reason}); use --precision fp32")

    def describe(self) -> dict:
        return {"version": self.version, "stage": self.stage, "manifest_sha256": self.manifest_sha256,
                "source_checkpoint": self.manifest.source_checkpoint, "test_metrics": self.manifest.test_metrics}


def verify(path: Path, version: str | None = None, stage: str | None = None) -> Artifact:
    """The artifact in `path` when every file matches manifest.json; ArtifactError listing what does not."""
    manifest_path = path / DEPLOY_MANIFEST.path
    if not manifest_path.is_file():
        raise ArtifactError(f"{path} is not a deployment artifact: no manifest.json (run the export stage)")
    raw = manifest_path.read_bytes()
    manifest = parse(DeployManifest, raw.decode(), str(manifest_path))       # its contract, or a clear error
    listed = manifest.files
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    problems = [f"{name}: missing" for name in sorted(set(listed) - present)]
    problems += [f"{name}: sha256 {digest[:12]}... differs from the manifest's {listed[name][:12]}..."
                 for name in sorted(set(listed) & present) if (digest := sha256(path / name)) != listed[name]]
    problems += [f"{name}: not in the manifest" for name in sorted(present - set(listed))]
    if problems:
        raise ArtifactError(f"refusing to serve {path}: {len(problems)} file(s) do not match manifest.json: "
                            + "; ".join(problems[:10]))
    return Artifact(path, manifest, hashlib.sha256(raw).hexdigest(), version, stage)


def fetch_registered(repo: str, name: str, stage: str, dest: Path) -> Artifact:
    """The version of artifact `name` holding `stage` in the registry (GTO tags of `repo`), downloaded
    into `dest` with `dvc artifacts get` and verified. GTO and DVC are the `registry` extra, imported only here:
    a service that serves a folder does without them."""
    missing = [package for package in ("gto", "dvc") if importlib.util.find_spec(package) is None]
    if missing:
        raise ArtifactError(f"serving a registry stage needs GTO and DVC (not installed: {', '.join(missing)}): "
                            "pip install 'a3lign-dfer[registry]', or serve a folder with --artifact")
    from gto import api

    from a3lign_dfer.orchestration.dvc_stages import dvc_env

    try:
        held = dict(api.show(repo).get(name, {}).get("stage", {}))
    except Exception as err:                     # not a git repo, unreachable URL, no GTO tags readable
        raise ArtifactError(f"cannot read the model registry of {repo}: {err}") from err
    if stage not in held:
        raise ArtifactError(f"no version of {name} holds stage {stage!r} in the registry of {repo} "
                            f"(stages held: {held or 'none'}); release one first: python -m a3lign_dfer release")
    version = held[stage]
    done = subprocess.run([sys.executable, "-m", "dvc", "artifacts", "get", repo, name, "--rev", version,
                           "--out", str(dest), "--force"], env=dvc_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise ArtifactError(f"dvc artifacts get {repo} {name} --rev {version} failed: "
                            f"{(done.stdout + done.stderr).strip()[-800:]}")
    return verify(dest, version, stage)
