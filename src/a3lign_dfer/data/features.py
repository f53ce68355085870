"""The features stage: frozen CLIP image features of every stored frame, computed once.

CLIP is frozen, so its image features never change during training: caching them
(plus a few augmented views of each training clip) removes the image encoder
from every training step, the main speed lever of the whole method. Shards of
clips run on the Dask cluster, each written whole (data.feature_cache has the
layout) so that a killed run resumes from the shards it finished (data.shards).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open

from a3lign_dfer.config.data import ScaleConfig
from a3lign_dfer.config.model import FeaturesConfig
from a3lign_dfer.data import shards
from a3lign_dfer.data.cluster import dask_client, limit_threads, map_shards
from a3lign_dfer.data.feature_cache import FORMAT, placement, write_shard
from a3lign_dfer.data.frame_folders import load_frames
from a3lign_dfer.data.manifest import SPLITS



def augment_clip(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One random view of a clip: the same scale-jittered crop (as the paper's 120 -> 112),
    flip and colour change on every frame, so the augmentation never invents motion."""
    n, h, w, _ = frames.shape
    side = int(round(min(h, w) * rng.uniform(0.9, 1.0)))
    y0, x0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    x = frames[:, y0:y0 + side, x0:x0 + side].permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    if rng.random() < 0.5:
        x = x.flip(-1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2)
    return x.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1)


class Encoder(Protocol):
    embed_dim: int

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class ClipEncoder:
    """What a worker loads to encode frames: the frozen CLIP `model` (hub name or absolute folder) on `device`
    ("auto": the worker's GPU where it has one, so each GPU worker of a cluster uses its own). `digest` is
    the folder's content: a long-lived worker reloads a folder whose weights changed."""

    model: str
    device: str = "auto"
    digest: str = ""

    @classmethod
    def of(cls, model: str, device: str = "auto") -> "ClipEncoder":
        """A folder resolved here (workers run elsewhere) and hashed; a hub name as it is."""
        folder = Path(model)
        return cls(str(folder.resolve()), device, shards.digest(folder)) if folder.is_dir() else cls(model, device, model)

    def load(self) -> Encoder:
        from a3lign_dfer.model.clip_backbone import FrozenCLIP

        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        if (self, device) not in _LOADED:                   # once per worker process and model content
            _LOADED[(self, device)] = FrozenCLIP.load(self.model, device)
        return _LOADED[(self, device)]

    def identity(self) -> str:
        """What a shard key records of the model: its folder's content, or the hub name."""
        return self.digest


_LOADED: dict[tuple[Any, str], Encoder] = {}


@dataclass(frozen=True)
class _ShardTask:
    path: Path
    out_dir: Path
    split: str
    first: int                            # the split's row of the shard's first clip (it seeds augmentations)
    clips: list[tuple[str, Path]]         # (clip_id, its crops folder)
    encoder: Any
    made_by: list                         # the model's content digest (or hub name), this package's source digest
    cfg: FeaturesConfig
    seed: int
    threads: int

    @property
    def views(self) -> int:
        return views_of(self.cfg, self.split)


def views_of(cfg: FeaturesConfig, split: str) -> int:
    """Cached views of a clip: the clip itself, and augmented ones in training only."""
    return 1 + (cfg.augmented_views if split == "train" else 0)


def _encode_shard(task: _ShardTask) -> tuple[list[int], int, bool]:
    """Worker: one shard of clips -> its safetensors file; returns (frames per clip, embed_dim, reused)
    where an earlier run already finished this shard from the same inputs."""
    key = shards.key("features", FORMAT, dataclasses.asdict(task.cfg), task.seed, task.split, task.first,
                     task.made_by, [(clip_id, shards.digest(folder)) for clip_id, folder in task.clips])
    if shards.reusable(task.out_dir, task.path, key):
        return (*_shape(task.path), True)
    limit_threads(task.threads)
    clip = task.encoder.load()
    views = task.views
    feats, counts = [], []
    for j, (_, frame_dir) in enumerate(task.clips):
        frames = torch.from_numpy(load_frames(frame_dir))
        rng = np.random.default_rng([task.seed, SPLITS.index(task.split), task.first + j])
        batch = torch.cat([frames] + [augment_clip(frames, rng) for _ in range(views - 1)])
        encoded = torch.cat([clip.encode_frames(chunk) for chunk in batch.split(task.cfg.batch_size)])
        feats.append(encoded.view(views, len(frames), -1).transpose(0, 1).half().cpu())
        counts.append(len(frames))
    tensor = torch.cat(feats) if feats else torch.zeros(0, views, clip.embed_dim, dtype=torch.float16)
    write_shard(task.path, tensor, counts)
    shards.record(task.out_dir, task.path, key)
    return counts, clip.embed_dim, False


def _shape(path: Path) -> tuple[list[int], int]:
    """(frames per clip, embed_dim) of a finished shard, from its header and offsets."""
    with safe_open(path, framework="pt") as f:
        return np.diff(f.get_tensor("offsets").numpy()).tolist(), int(f.get_slice("feats").get_shape()[-1])


def build_feature_cache(crops: pd.DataFrame, crops_root: Path, encoder: Any, cfg: FeaturesConfig, seed: int,
                        out_dir: Path, scale: ScaleConfig) -> dict:
    """Every split of `crops` through `encoder` (a ClipEncoder, or anything with its load()/identity()),
    in shards on the Dask cluster; returns the stage's metrics."""
    out_dir, crops_root = Path(out_dir).resolve(), Path(crops_root).resolve()
    (out_dir / "meta.json").unlink(missing_ok=True)          # the cache is incomplete until it is rewritten
    start = time.perf_counter()
    code = [encoder.identity(), shards.code_digest()]
    tasks = []
    for split in SPLITS:
        rows = crops[crops["split"] == split].reset_index(drop=True)
        for n, part in enumerate(shards.plan(len(rows), scale.shard_size)):
            clips = [(c, crops_root / p) for c, p in zip(rows["clip_id"].iloc[part], rows["path"].iloc[part])]
            tasks.append(_ShardTask(out_dir / split / f"{shards.name(n)}.safetensors", out_dir, split, part.start,
                                    clips, encoder, code, cfg, seed, scale.torch_threads))
    with dask_client(scale) as client:
        workers = len(client.scheduler_info()["workers"])
        results = map_shards(client, _encode_shard, tasks, scale.retries, "features")
    dims = {dim for _, dim, _ in results}
    if len(dims) > 1:
        raise RuntimeError(f"feature shards disagree on the embedding width {sorted(dims)}")
    embed_dim = dims.pop() if dims else encoder.load().embed_dim
    metrics: dict = {"embed_dim": embed_dim}
    views = {}
    for split in SPLITS:
        rows = crops[crops["split"] == split].reset_index(drop=True)
        index = rows.copy()
        index["shard"], index["row_start"], index["row_end"] = placement(
            [(int(task.path.stem), counts) for task, (counts, _, _) in zip(tasks, results) if task.split == split])
        index.to_parquet(out_dir / f"{split}.parquet", index=False)
        views[split] = views_of(cfg, split)
        metrics[f"{split}_clips"] = len(rows)
        metrics[f"{split}_views"] = views[split]
    shards.keep_only(out_dir, [out_dir / "meta.json", *(out_dir / f"{s}.parquet" for s in SPLITS),
                               *(task.path for task in tasks), *(shards.record_of(out_dir, t.path) for t in tasks)])
    with shards.written_atomically(out_dir / "meta.json") as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, "embed_dim": embed_dim, "views": views}, indent=2))
    seconds = time.perf_counter() - start
    encoded = sum(sum(counts) * task.views for task, (counts, _, reused) in zip(tasks, results) if not reused)
    metrics.update(images_encoded=int(encoded), seconds=round(seconds, 2),
                   images_per_second=round(encoded / max(seconds, 1e-9), 1), shards=len(tasks),
                   shards_reused=sum(reused for _, _, reused in results), workers=workers)
    return metrics


