"""The feature cache on disk, and the readers training, evaluation and export use.

Per split: <split>/<n>.safetensors, one shard of consecutive clips (feats: (frames,
views, D) float16, offsets: (clips + 1,)) and
<split>.parquet, the split's clips with the shard and rows of each; meta.json, written
last, says the cache is complete. A reader fetches one clip's rows at a time with pread,
so no process holds a split in memory: the page cache does, outside the process.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from a3lign_dfer.data import shards
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.errors import ConfigError, MissingInput

FORMAT = 2
INDEX_COLUMNS = ("shard", "row_start", "row_end")   # where each clip's frames are: <split>/<shard>.safetensors rows


def write_shard(path: Path, feats: torch.Tensor, counts: list[int]) -> None:
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]), dtype=torch.int64)
    with shards.written_atomically(path) as tmp:
        save_file({"feats": feats.half().contiguous(), "offsets": offsets}, tmp)


def placement(parts: list[tuple[int, list[int]]]) -> tuple[list[int], list[int], list[int]]:
    """Index columns (shard, row_start, row_end) of a split's clips from each shard's frame counts."""
    shard, start, end = [], [], []
    for n, counts in parts:
        ends = np.cumsum(counts, dtype=np.int64).tolist()
        shard += [n] * len(counts)
        start += [e - c for e, c in zip(ends, counts)]
        end += ends
    return shard, start, end


class FrameSource(Protocol):
    """Where a split's frame features live; clip(i) is (frames, views, D) float16."""

    views: int
    embed_dim: int

    def clip(self, i: int) -> np.ndarray: ...


@dataclass
class InMemoryFrames:
    """Frames of clip i are feats[offsets[i]:offsets[i+1]] (small sets built in memory)."""

    feats: torch.Tensor      # (total_frames, views, D) float16
    offsets: torch.Tensor    # (clips + 1,)

    @property
    def views(self) -> int:
        return self.feats.shape[1]

    @property
    def embed_dim(self) -> int:
        return self.feats.shape[-1]

    def clip(self, i: int) -> np.ndarray:
        return self.feats[int(self.offsets[i]):int(self.offsets[i + 1])].numpy()


class ShardedFrames:
    """A split of the cache on disk: each clip's rows read with one pread, nothing mapped or kept."""

    def __init__(self, folder: Path, index: pd.DataFrame, views: int, embed_dim: int):
        self.folder, self.views, self.embed_dim = folder, views, embed_dim
        self._shard = index["shard"].to_numpy()
        self._start = index["row_start"].to_numpy()
        self._end = index["row_end"].to_numpy()
        self._data_start: dict[int, int] = {}

    def _path(self, shard: int) -> Path:
        return self.folder / f"{shards.name(shard)}.safetensors"

    def _feats_start(self, shard: int) -> int:
        """Byte offset of the shard's feats tensor (safetensors: u64 header size, JSON header, data)."""
        if shard not in self._data_start:
            with self._path(shard).open("rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                entry = json.loads(f.read(size))["feats"]
            if entry["dtype"] != "F16" or entry["shape"][1:] != [self.views, self.embed_dim]:
                raise ValueError(f"{self._path(shard)}: feats {entry['dtype']} {entry['shape']}, expected F16 "
                                 f"(frames, {self.views}, {self.embed_dim}): rebuild the features stage")
            self._data_start[shard] = 8 + size + entry["data_offsets"][0]
        return self._data_start[shard]

    def clip(self, i: int) -> np.ndarray:
        shard, start, end = int(self._shard[i]), int(self._start[i]), int(self._end[i])
        out = np.empty((end - start, self.views, self.embed_dim), dtype=np.float16)
        row = self.views * self.embed_dim * 2
        fd = os.open(self._path(shard), os.O_RDONLY)
        try:
            got = os.preadv(fd, [memoryview(out).cast("B")], self._feats_start(shard) + start * row)
        finally:
            os.close(fd)
        if got != out.nbytes:
            raise ValueError(f"{self._path(shard)}: clip {i} is cut short ({got} of {out.nbytes} bytes)")
        return out


@dataclass
class FeatureSet:
    """One split of the cache: its clips, their labels and where their frame features are."""

    frames: FrameSource
    labels: torch.Tensor     # (clips,)
    clips: pd.DataFrame

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def embed_dim(self) -> int:
        return self.frames.embed_dim

    def gather(self, idx: np.ndarray, num: int, train: bool, rng: np.random.Generator | None = None,
               permute: np.random.Generator | None = None) -> torch.Tensor:
        """(B, num, D) float features of clips `idx`: segment-sampled, a random cached view in
        training, view 0 at evaluation; `permute` shuffles frame order (paper Table 5)."""
        rows = []
        for i in idx:
            clip = self.frames.clip(int(i))
            frames = segment_indices(len(clip), num, train, rng)
            if permute is not None:
                frames = frames[permute.permutation(num)]
            view = int(rng.integers(self.frames.views)) if train else 0
            rows.append(clip[frames, view])
        return torch.from_numpy(np.stack(rows)).float()


def save_feature_set(feats: torch.Tensor, offsets: torch.Tensor, clips: pd.DataFrame, cache_dir: Path,
                     split: str) -> None:
    """One split as a one-shard cache (features built elsewhere, e.g. in memory); meta.json merged."""
    cache_dir = Path(cache_dir)
    counts = np.diff(offsets.numpy()).tolist()
    write_shard(cache_dir / split / f"{shards.name(0)}.safetensors", feats, counts)
    index = clips.copy()
    index["shard"], index["row_start"], index["row_end"] = 0, offsets[:-1].numpy(), offsets[1:].numpy()
    index.to_parquet(cache_dir / f"{split}.parquet", index=False)
    meta_path = cache_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"format": FORMAT, "views": {}}
    meta.update(embed_dim=int(feats.shape[-1]))
    meta["views"][split] = int(feats.shape[1])
    meta_path.write_text(json.dumps(meta, indent=2))


def load_feature_set(cache_dir: Path, split: str, classes: tuple[str, ...]) -> FeatureSet:
    cache_dir = Path(cache_dir)
    meta_path = cache_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("format") != FORMAT or split not in meta.get("views", {}):
        raise MissingInput(f"no complete feature cache for {split!r} in {cache_dir} (meta.json missing, or "
                                f"from another layout): run the features stage")
    clips = pd.read_parquet(cache_dir / f"{split}.parquet")
    unknown = sorted(set(clips["label_name"]) - set(classes))
    if unknown:
        raise ConfigError(f"{cache_dir / split}: labels {unknown} are not in data.classes {list(classes)}: fix "
                          "data.classes or rebuild the features stage")
    labels = torch.tensor(clips["label_name"].map({c: i for i, c in enumerate(classes)}).to_numpy())
    frames = ShardedFrames(cache_dir / split, clips[list(INDEX_COLUMNS)], meta["views"][split], meta["embed_dim"])
    return FeatureSet(frames, labels, clips.drop(columns=list(INDEX_COLUMNS)))
