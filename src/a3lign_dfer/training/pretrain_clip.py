"""Contrastive pretraining of the small embedded CLIP on captioned face crops.

Only for the embedded default: with a real CLIP in params clip.model this stage
does nothing. The captions name a few discrete action units, so there are only a
few dozen distinct ones and a batch holds many frames of the same caption. The
softmax of each frame therefore runs over every distinct caption (CLIP's
image-to-text loss with the whole caption set as negatives): in-batch contrast
would treat same-caption frames as negatives and, measured here, learned nothing.
No augmentation: with a ViT this small and a few hundred steps, crop jitter and
flips measurably stopped it from learning at all.

Example (CPU): python -m a3lign_dfer pretrain-clip --crops data/crops --raw data/raw \
    --out models/clip_small --metrics reports/pretrain_clip.json
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from a3lign_dfer.config.model import PretrainClipConfig
from a3lign_dfer.data.frame_folders import load_frames
from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.model.image_spec import ImageSpec
from a3lign_dfer.model.small_clip import build_small_clip, save_clip


def captioned_frames(crops: pd.DataFrame, crops_root: Path, captions: pd.DataFrame, split: str,
                     size: int) -> tuple[torch.Tensor, list[str]]:
    """All frames of a split's captioned clips at CLIP resolution, with the caption of each frame (clips a
    data.extra_sources folder adds have no captions and take no part)."""
    by_clip = {cid: grp.sort_values("frame_idx")["caption"].tolist() for cid, grp in captions.groupby("clip_id")}
    images, texts = [], []
    rows = crops[(crops["split"] == split) & crops["clip_id"].isin(by_clip.keys())]
    for row in tqdm(rows.itertuples(), total=len(rows), desc=f"load {split} crops", unit="clip"):
        frames = torch.from_numpy(load_frames(crops_root / row.path)).permute(0, 3, 1, 2).float()
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        images.append(frames.round().to(torch.uint8).permute(0, 2, 3, 1))
        texts += by_clip[row.clip_id][: len(frames)]
    return torch.cat(images), texts


def zero_shot_accuracy(clip: FrozenCLIP, images: torch.Tensor, texts: list[str], prompts: dict[str, str]) -> dict:
    """Frames whose caption is one of the class prompts, classified among the distinct prompts.

    Accuracy and UAR over the prompts: about half the frames are neutral, so plain
    accuracy alone would flatter a model that calls everything neutral.

    Classes whose apex frames look alike by construction (surprise/fear) share one
    prompt, so they count as one choice here; telling them apart needs time.
    """
    choices = sorted(set(prompts.values()))
    keep = [i for i, t in enumerate(texts) if t in choices]
    if not keep:
        return {"zero_shot_frame_accuracy": None, "zero_shot_frames": 0}
    target = torch.tensor([choices.index(texts[i]) for i in keep])
    with torch.no_grad():
        text = F.normalize(clip.encode_texts(choices), dim=-1)
        image = torch.cat([F.normalize(clip.encode_frames(chunk), dim=-1) for chunk in images[keep].split(512)])
    pred = (image @ text.T).argmax(1).cpu()
    recall = recall_metrics(target.numpy(), pred.numpy(), tuple(choices))
    return {"zero_shot_frame_accuracy": recall["war"], "zero_shot_frame_uar": recall["uar"],
            "zero_shot_frames": len(keep), "zero_shot_choices": len(choices), "zero_shot_chance": 1 / len(choices)}


def pretrain_small_clip(crops: pd.DataFrame, crops_root: Path, captions: pd.DataFrame, prompts: dict[str, str],
                        cfg: PretrainClipConfig, seed: int, out_dir: Path, device: str = "cpu") -> dict:
    start = time.perf_counter()
    model, tokenizer, processor = build_small_clip(cfg, seed)
    model.to(device)
    clip = FrozenCLIP(model, tokenizer, ImageSpec(cfg.image_size, tuple(processor.image_mean),
                                                  tuple(processor.image_std)))
    images, texts = captioned_frames(crops, crops_root, captions, "train", cfg.image_size)
    val_images, val_texts = captioned_frames(crops, crops_root, captions, "val", cfg.image_size)
    before = zero_shot_accuracy(clip, val_images, val_texts, prompts)

    unique = sorted(set(texts))
    caption_id = torch.tensor([unique.index(t) for t in texts], device=device)
    tokens = tokenizer(unique, padding=True, return_tensors="pt").to(device)
    model.train().requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(images), generator=gen)
        bar = tqdm(order.split(cfg.batch_size), desc=f"clip epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        for idx in bar:
            image = model.get_image_features(pixel_values=clip.preprocess(images[idx])).pooler_output
            text = model.get_text_features(**tokens).pooler_output  # every distinct caption, once
            logits = model.logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
            loss = F.cross_entropy(logits, caption_id[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
    clip = FrozenCLIP(model, tokenizer, clip.image_spec)
    after = zero_shot_accuracy(clip, val_images, val_texts, prompts)
    save_clip(model.cpu(), tokenizer, processor, out_dir)
    return {"skipped": False, "train_frames": len(images), "distinct_captions": len(unique),
            "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "zero_shot_frame_uar_before": before["zero_shot_frame_uar"], **after,
            "device": str(device), "seconds": round(time.perf_counter() - start, 2)}


def skip(out_dir: Path, clip_model: str) -> dict:
    """A real CLIP is configured: record that nothing was pretrained, and why."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reason = f"params clip.model is {clip_model!r}, not this stage's output; the small CLIP is not needed"
    (out_dir / "SKIPPED.json").write_text(json.dumps({"skipped": True, "reason": reason}, indent=2))
    return {"skipped": True, "reason": reason}
