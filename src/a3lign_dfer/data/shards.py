"""Shards of a data stage: what a stage can resume from, and what it never reads half-written.

A shard is a run of consecutive clips, written by one task to a temporary name and
renamed when complete (a rename is atomic), so any file under its final name is whole.
Beside it, under <out>/.keys/ (in .dvcignore: not part of the DVC output, so the output's
bytes never depend on it), a record of what made it: the key (the config, its clips, the
content of their inputs, the model's, the package's source) and the shard file's sha256.
A re-run reuses a shard only if both still match, so DVC may keep the outputs between
runs (`persist`) without ever serving a shard computed from other inputs or code, or one
that a checkout replaced. Hashing inputs is cheap beside decoding or encoding them, and a
worker does it for its own shard. The stage ends by deleting whatever is not part of its
plan, so the output folder holds one run's files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

TMP_MARK = ".tmp-"
KEYS = ".keys"                  # <out>/.keys/<shard path>.json: the record of how each shard was made


def plan(count: int, size: int) -> list[slice]:
    """The rows of `count` clips in shards of `size` (the last one shorter)."""
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def name(index: int) -> str:
    return f"{index:05d}"


def key(*parts: Any) -> str:
    """A digest of JSON-able parts (dataclasses as dicts beforehand)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, in name order);
    "missing" when there is nothing (a missing input is the worker's to reject)."""
    path = Path(path)
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path] if path.is_file() else []
    return digest_files(path, files) if files else "missing"


def code_digest() -> str:
    """sha256 of this package's source: a shard made by other code is never reused."""
    package = Path(__file__).resolve().parents[1]
    return digest_files(package, sorted(package.rglob("*.py")))


def digest_files(base: Path, files: list[Path]) -> str:
    total = hashlib.sha256()
    for f in files:
        total.update(str(f.relative_to(base)).encode() if f != base else b"")
        with f.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                total.update(block)
    return total.hexdigest()


def record_of(out_dir: Path, shard: Path) -> Path:
    return out_dir / KEYS / f"{shard.relative_to(out_dir)}.json"


def reusable(out_dir: Path, shard: Path, key: str) -> bool:
    """Whether `shard` was made with `key` and is still the file that was written then."""
    try:
        record = json.loads(record_of(out_dir, shard).read_text())
    except (OSError, ValueError):
        return False
    return record.get("key") == key and shard.is_file() and digest(shard) == record.get("sha256")


def record(out_dir: Path, shard: Path, key: str) -> None:
    """After `shard` is complete under its final name: how it was made."""
    with written_atomically(record_of(out_dir, shard)) as tmp:
        tmp.write_text(json.dumps({"key": key, "sha256": digest(shard)}))


@contextmanager
def written_atomically(final: Path) -> Iterator[Path]:
    """A temporary path beside `final`, renamed to it when the block ends without error."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def keep_only(folder: Path, keep: Iterable[Path]) -> int:
    """Delete everything under `folder` that is neither in `keep` nor above something in it (stale shards
    of a larger plan, leftovers of a killed run, an older layout); returns how many."""
    keep = {Path(p) for p in keep}
    parents = {parent for p in keep for parent in p.parents}
    removed = 0
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path in keep:
            continue
        if path in parents and path.is_dir():
            removed += keep_only(path, keep)
            continue
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        removed += 1
    return removed
