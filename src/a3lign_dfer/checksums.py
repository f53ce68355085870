"""sha256 of a file: what export writes into manifest.json and what serving checks against it.

Kept apart from both (stdlib only), so loading an artifact does not import the export stage.
"""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
