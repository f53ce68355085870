"""Contrastive pretraining of the small embedded CLIP on captioned face crops.

Only for the embedded default: with a real CLIP in params clip.model this stage
does nothing. Many frames share a caption (captions describe a few discrete
action units), so pairs with the same caption count as positives (soft targets)
instead of being pushed apart as false negatives.

Example (CPU): python -m a3lign_dfer pretrain-clip --crops data/crops \
    --captions data/raw/captions.parquet --prompts data/raw/class_prompts.json --out models/clip_small
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

from a3lign_dfer.config import PretrainClipConfig
from a3lign_dfer.data.features import augment_clip, load_frames
from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_dfer.model.clip_backbone import FrozenCLIP, ImageSpec
from a3lign_dfer.model.small_clip import build_small_clip, save_clip


def captioned_frames(crops: pd.DataFrame, crops_root: Path, captions: pd.DataFrame, split: str,
                     size: int) -> tuple[torch.Tensor, list[str]]:
    """All frames of a split at CLIP resolution, with the caption of each frame."""
    by_clip = {cid: grp.sort_values("frame_idx")["caption"].tolist() for cid, grp in captions.groupby("clip_id")}
    images, texts = [], []
    rows = crops[crops["split"] == split]
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
                        cfg: PretrainClipConfig, seed: int, out_dir: Path) -> dict:
    start = time.perf_counter()
    model, tokenizer, processor = build_small_clip(cfg, seed)
    clip = FrozenCLIP(model, tokenizer, ImageSpec(cfg.image_size, tuple(processor.image_mean),
                                                  tuple(processor.image_std)))
    images, texts = captioned_frames(crops, crops_root, captions, "train", cfg.image_size)
    val_images, val_texts = captioned_frames(crops, crops_root, captions, "val", cfg.image_size)
    before = zero_shot_accuracy(clip, val_images, val_texts, prompts)

    unique = sorted(set(texts))
    caption_id = torch.tensor([unique.index(t) for t in texts])
    tokens = tokenizer(unique, padding=True, return_tensors="pt")
    model.train().requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # An epoch sees frames_per_clip random frames per training clip on average:
    # neighbouring frames are near duplicates, so all of them per epoch buys little.
    # Frames are drawn with weight 1/sqrt(caption frequency): about half of all frames
    # are neutral, and uniform draws would spend most steps on them.
    per_epoch = min(len(images), cfg.frames_per_clip * int((crops["split"] == "train").sum()))
    weights = 1 / np.sqrt(np.bincount(caption_id.numpy())[caption_id.numpy()])
    weights /= weights.sum()
    steps = cfg.epochs * int(np.ceil(per_epoch / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.1)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    losses = []
    for epoch in range(cfg.epochs):
        order = torch.from_numpy(rng.choice(len(images), per_epoch, replace=False, p=weights))
        bar = tqdm(order.split(cfg.batch_size), desc=f"clip epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        for idx in bar:
            pixels = clip.preprocess(augment_clip(images[idx], rng))
            ids = caption_id[idx]
            # Encode each distinct caption in the batch once.
            present, inverse = ids.unique(return_inverse=True)
            text = model.get_text_features(input_ids=tokens["input_ids"][present],
                                           attention_mask=tokens["attention_mask"][present]).pooler_output
            image = model.get_image_features(pixel_values=pixels).pooler_output
            logits = model.logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
            loss_image = F.cross_entropy(logits, inverse)
            positives = F.one_hot(inverse, len(present)).T.float()  # (captions, images)
            loss_text = -(F.log_softmax(logits.T, dim=1) * positives).sum(1).div(positives.sum(1)).mean()
            loss = (loss_image + loss_text) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
    clip = FrozenCLIP(model, tokenizer, clip.image_spec)
    after = zero_shot_accuracy(clip, val_images, val_texts, prompts)
    save_clip(model, tokenizer, processor, out_dir)
    return {"skipped": False, "train_frames": len(images), "distinct_captions": len(unique),
            "final_loss": float(np.mean(losses[-10:])) if losses else None,
            "zero_shot_uar_before": before["zero_shot_frame_uar"], **after,
            "seconds": round(time.perf_counter() - start, 2)}


def skip(out_dir: Path, clip_model: str) -> dict:
    """A real CLIP is configured: record that nothing was pretrained, and why."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reason = f"params clip.model is {clip_model!r}, not this stage's output; the small CLIP is not needed"
    (out_dir / "SKIPPED.json").write_text(json.dumps({"skipped": True, "reason": reason}, indent=2))
    return {"skipped": True, "reason": reason}
