"""The deployment artifact predict, timelines and the service run: a folder checked file by file.

Export lists every file of models/deploy with its sha256 in manifest.json. A file that
is missing, changed or not listed means the folder is not what the pipeline built and
the release gate passed, so it is refused rather than run. (Fetching a registered
version is registry.fetch's: GTO and DVC are not needed to run a folder.)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.checksums import sha256
from a3lign_dfer.config.model import EMBEDDED_CLIP
from a3lign_dfer.errors import UserError
from a3lign_dfer.inference.video_input import PreprocessSpec
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

    @property
    def learned_synthetic_faces(self) -> bool:
        """Trained on the embedded synthetic benchmark: its CLIP is the small one pretrain_clip pretrains on
        that benchmark's captions, which no other dataset has."""
        return Path(self.manifest.clip_model) == EMBEDDED_CLIP

    def preprocess(self) -> PreprocessSpec:
        """Raw video -> graph input, as the artifact's preprocess.json states it."""
        return PreprocessSpec.load(self.path / "preprocess.json")

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
