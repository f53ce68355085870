"""Where the service's model comes from: a deployment folder (models/deploy by default) or the registry version
holding a stage. The same fetch and verification run at start-up and at every swap (POST /admin/reload, or the
registry moving under `serve --follow`). GTO and DVC are the `registry` extra: imported only for a stage."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.inference.artifact import Artifact, verify


@dataclass(frozen=True)
class ModelSource:
    folder: Path | None              # a deployment folder, or
    stage: str | None                # the registry stage whose version is served (GTO tags of `repo`)
    repo: str                        # params serve.registry_repo
    name: str                        # the registry artifact (params release.artifact)

    def describe(self) -> str:
        return f"stage {self.stage} of {self.name} in {self.repo}" if self.stage else str(self.folder)


def fetch(source: ModelSource, dest: Path | None) -> Artifact:
    """The source's artifact, verified file by file (ArtifactError otherwise); a stage's version is downloaded
    into `dest` (dvc artifacts get)."""
    if source.stage is not None:
        from a3lign_dfer.registry.fetch import fetch_registered     # GTO and DVC: the `registry` extra

        return fetch_registered(source.repo, source.name, source.stage, dest)
    return verify(source.folder)


def held_version(source: ModelSource) -> str | None:
    """The version holding the source's stage now (GTO tags only, nothing downloaded): what a poll compares."""
    from a3lign_dfer.registry.versions import stages_held

    return stages_held(source.repo, source.name).get(source.stage)
