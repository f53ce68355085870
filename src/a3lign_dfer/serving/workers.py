"""The service's preprocessing workers (spawned processes that decode and face-crop uploads): each loads its face
detector once at start, and leaves when the service is gone, even when the service was killed (SIGKILL, the OOM
killer) and had no chance to stop it; otherwise it would wait for work forever. Imports neither torch nor ONNX
Runtime."""
from __future__ import annotations

import os
import threading
import time

from a3lign_dfer.config.data import FaceCropConfig
from a3lign_dfer.data.face_track import warm_detector

PARENT_CHECK_S = 1.0


def start_worker(cfg: FaceCropConfig) -> None:
    """A worker's initializer: watch the service, load the detector."""
    threading.Thread(target=_exit_with, args=(os.getppid(),), name="exit-with-service", daemon=True).start()
    warm_detector(cfg)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:              # a dead parent's children are adopted by another process
        time.sleep(PARENT_CHECK_S)
    os._exit(0)
