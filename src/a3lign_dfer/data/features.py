"""Frozen CLIP image features for every stored frame, computed once.

CLIP is frozen, so its image features never change during training: caching them
(plus a few augmented views of each training clip) removes the image encoder
from every training step, the main speed lever of the whole method.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from a3lign_dfer.config.model import FeaturesConfig
from a3lign_dfer.data.manifest import SPLITS
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.model.clip_backbone import FrozenCLIP


def load_frames(frame_dir: Path) -> np.ndarray:
    """All JPEG frames of a clip, in file-name order, as RGB uint8 (N, H, W, 3)."""
    files = sorted(frame_dir.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no .jpg frames in {frame_dir}")
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


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


def build_feature_cache(crops: pd.DataFrame, crops_root: Path, clip: FrozenCLIP, cfg: FeaturesConfig,
                        seed: int, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"embed_dim": clip.embed_dim}
    start, total_frames = time.perf_counter(), 0
    for split in SPLITS:
        rows = crops[crops["split"] == split].reset_index(drop=True)
        views = 1 + (cfg.augmented_views if split == "train" else 0)
        feats, offsets = [], [0]
        for i, row in enumerate(tqdm(rows.itertuples(), total=len(rows), desc=f"features {split}", unit="clip")):
            frames = torch.from_numpy(load_frames(crops_root / row.path))
            rng = np.random.default_rng([seed, SPLITS.index(split), i])
            clip_views = [frames] + [augment_clip(frames, rng) for _ in range(views - 1)]
            batch = torch.cat(clip_views)
            encoded = torch.cat([clip.encode_frames(chunk) for chunk in batch.split(cfg.batch_size)])
            feats.append(encoded.view(views, len(frames), -1).transpose(0, 1).half().cpu())
            offsets.append(offsets[-1] + len(frames))
            total_frames += len(batch)
        tensor = torch.cat(feats) if feats else torch.zeros(0, views, clip.embed_dim, dtype=torch.float16)
        save_feature_set(tensor, torch.tensor(offsets, dtype=torch.int64), rows, out_dir, split)
        metrics[f"{split}_clips"] = len(rows)
        metrics[f"{split}_views"] = views
    seconds = time.perf_counter() - start
    metrics.update(images_encoded=total_frames, seconds=round(seconds, 2),
                   images_per_second=round(total_frames / max(seconds, 1e-9), 1))
    (out_dir / "meta.json").write_text(json.dumps({"embed_dim": clip.embed_dim}, indent=2))
    return metrics


@dataclass
class FeatureSet:
    """One split of the cache: frames of clip i are feats[offsets[i]:offsets[i+1]]."""

    feats: torch.Tensor      # (total_frames, views, D) float16
    offsets: torch.Tensor    # (clips + 1,)
    labels: torch.Tensor     # (clips,)
    clips: pd.DataFrame

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def embed_dim(self) -> int:
        return self.feats.shape[-1]

    def gather(self, idx: np.ndarray, num: int, train: bool, rng: np.random.Generator | None = None,
               permute: np.random.Generator | None = None) -> torch.Tensor:
        """(B, num, D) float features of clips `idx`: segment-sampled, a random cached view in
        training, view 0 at evaluation; `permute` shuffles frame order (paper Table 5)."""
        rows = []
        for i in idx:
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            frames = start + segment_indices(end - start, num, train, rng)
            if permute is not None:
                frames = frames[permute.permutation(num)]
            view = int(rng.integers(self.feats.shape[1])) if train else 0
            rows.append(self.feats[frames, view])
        return torch.stack(rows).float()


def save_feature_set(feats: torch.Tensor, offsets: torch.Tensor, clips: pd.DataFrame, cache_dir: Path,
                     split: str) -> None:
    """One split of the cache: (frames, views, D) float16 features, clip offsets, the clips' manifest rows."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_file({"feats": feats.half().contiguous(), "offsets": offsets.to(torch.int64)}, cache_dir / f"{split}.safetensors")
    clips.to_parquet(cache_dir / f"{split}.parquet", index=False)


def load_feature_set(cache_dir: Path, split: str, classes: tuple[str, ...]) -> FeatureSet:
    path = cache_dir / f"{split}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"feature cache missing: {path} (run the features stage)")
    tensors = load_file(path)
    clips = pd.read_parquet(cache_dir / f"{split}.parquet")
    unknown = sorted(set(clips["label_name"]) - set(classes))
    if unknown:
        raise ValueError(f"{path}: labels {unknown} are not in the class set {list(classes)}")
    labels = torch.tensor(clips["label_name"].map({c: i for i, c in enumerate(classes)}).to_numpy())
    return FeatureSet(tensors["feats"], tensors["offsets"], labels, clips)
