"""One deployment artifact ready to answer: its backend behind a micro-batcher, its split graphs (timelines), its
preprocessing and classes. A request takes the service's current one when it starts and finishes on it, so a swap
never changes the model under a request; a model swapped out is closed once its last request is done."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from a3lign_dfer.config.serving import ServeConfig
from a3lign_dfer.inference.artifact import Artifact
from a3lign_dfer.inference.backends import HEAD_FILE, SplitRunner, load_backend
from a3lign_dfer.serving.batcher import MicroBatcher
from a3lign_dfer.serving.schemas import ModelVersion


class LoadedModel:
    def __init__(self, artifact: Artifact, cfg: ServeConfig, backend: str, device: str, precision: str,
                 preparing: Callable[[], int], on_batch: Callable[[int], None], owned: Path | None = None) -> None:
        """Loads the graphs (seconds: call it off the event loop). `owned`: a fetched folder removed on close."""
        self.artifact, self.owned = artifact, owned
        self.spec = artifact.preprocess()
        self.classes: list[str] = list(artifact.manifest.classes)
        # Timelines run the split graphs (per-frame encoder, per-window head) on ONNX Runtime, whatever `backend`.
        self.split = SplitRunner(artifact.path, precision, device) if (artifact.path / HEAD_FILE).is_file() else None
        self.batcher = MicroBatcher(load_backend(artifact.path, backend, device, precision), cfg.max_batch,
                                    cfg.max_wait_ms / 1000, preparing, on_batch)
        self.version = ModelVersion(version=artifact.version, stage=artifact.stage,
                                    manifest_sha256=artifact.manifest_sha256)
        self.in_flight = 0               # requests holding it
        self.retired = False             # swapped out: closed when in_flight reaches 0

    def same_as(self, artifact: Artifact) -> bool:
        return (artifact.manifest_sha256, artifact.version) == (self.artifact.manifest_sha256, self.artifact.version)

    async def start(self) -> None:
        """The batcher running and one inference done: the first real request pays for no graph set-up."""
        await self.batcher.start()
        size = self.spec.image.size
        await self.batcher(np.zeros((self.spec.frames, 3, size, size), np.float32))

    async def close(self) -> None:
        await self.batcher.stop()
        self.batcher.run = self.split = None         # the sessions' memory goes with the last reference
        if self.owned is not None:
            shutil.rmtree(self.owned, ignore_errors=True)
