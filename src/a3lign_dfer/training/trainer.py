"""The epoch loop every BAP stage shares.

A stage is a list of phases (train for N epochs, growing an encoder first); the
model kept is the best one on the validation split, and each growth starts from
that validated best, never from a late, overfit epoch. The test split is never
read here.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from a3lign_dfer.config import TrainConfig
from a3lign_dfer.data.features import FeatureSet
from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP


@dataclass(frozen=True)
class Phase:
    epochs: int
    depth: int | None = None   # grow the stage's growing encoder to this many layers first


@dataclass
class StagePlan:
    trainable: set[str]
    lr: float
    phases: list[Phase]
    grow: Callable[[A3lignDFER, int], None] | None = None


def text_side_trains(model: A3lignDFER) -> bool:
    encoder = model.jas if model.jas is not None else model.de_text
    return model.mat.requires_grad or any(p.requires_grad for p in encoder.parameters())


@torch.no_grad()
def class_matrix(model: A3lignDFER, clip: FrozenCLIP) -> torch.Tensor:
    """(C, D) class vectors; depends on MAT only, so serving computes it once."""
    was_training = model.training
    model.eval()
    vectors = model.class_vectors(model.text_features(clip))
    model.train(was_training)
    return vectors


@torch.no_grad()
def predict(model: A3lignDFER, clip: FrozenCLIP, data: FeatureSet, batch_size: int = 256,
            permute_seed: int | None = None, class_vectors: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C) logits with centre sampling; `permute_seed` shuffles each clip's frames."""
    model.eval()
    vectors = class_matrix(model, clip) if class_vectors is None else class_vectors
    permute = np.random.default_rng(permute_seed) if permute_seed is not None else None
    out = []
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        x = data.gather(idx, model.spec.frames, train=False, permute=permute).to(vectors.device)
        out.append(model(x, vectors).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(model.spec.classes))


def evaluate(model: A3lignDFER, clip: FrozenCLIP, data: FeatureSet, **kwargs) -> dict:
    logits = predict(model, clip, data, **kwargs)
    metrics = recall_metrics(data.labels.numpy(), logits.argmax(1).numpy(), model.spec.classes)
    metrics["loss"] = float(F.cross_entropy(logits, data.labels)) if len(data) else float("nan")
    return metrics


def class_weights(labels: torch.Tensor, num_classes: int, scheme: str) -> torch.Tensor | None:
    """Cross-entropy weights from the training labels, mean 1 over the classes present."""
    if scheme == "none":
        return None
    counts = torch.bincount(labels, minlength=num_classes).float()
    power = {"sqrt_inverse": 0.5, "inverse": 1.0}[scheme]
    weights = torch.where(counts > 0, counts.clamp(min=1) ** -power, torch.zeros_like(counts))
    return weights * (counts > 0).sum() / weights.sum()


def fit(model: A3lignDFER, clip: FrozenCLIP, train: FeatureSet, val: FeatureSet, plan: StagePlan,
        cfg: TrainConfig, seed: int, log: Callable[[dict], None]) -> tuple[A3lignDFER, dict]:
    """Train through the plan's phases; return the validation-best model and its record."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    device = clip.device
    best_model, best_key, record, epoch_no = None, (-math.inf, -math.inf), {}, 0
    weights = class_weights(train.labels, len(model.spec.classes), cfg.class_weight)
    weights = None if weights is None else weights.to(device)
    for phase_no, phase in enumerate(plan.phases):
        if best_model is not None:
            model = copy.deepcopy(best_model)
        if phase.depth is not None and plan.grow is not None:
            plan.grow(model, phase.depth)
        model.to(device).set_trainable(plan.trainable)
        params = [p for p in model.parameters() if p.requires_grad]
        steps = phase.epochs * math.ceil(len(train) / cfg.batch_size)
        opt = torch.optim.SGD(params, lr=plan.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        fixed = None if text_side_trains(model) else class_matrix(model, clip)
        for _ in range(phase.epochs):
            epoch_no += 1
            model.train()
            losses = []
            order = rng.permutation(len(train))
            bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch_no}", unit="batch", leave=False)
            for start in bar:
                idx = order[start:start + cfg.batch_size]
                x = train.gather(idx, model.spec.frames, train=True, rng=rng).to(device)
                vectors = fixed if fixed is not None else model.class_vectors(model.text_features(clip))
                loss = F.cross_entropy(model(x, vectors), train.labels[idx].to(device), weight=weights)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{loss.item():.3f}")
            val_metrics = evaluate(model, clip, val)
            row = {"epoch": epoch_no, "phase": phase_no, "depth": phase.depth, "train_loss": float(np.mean(losses)),
                   "val_loss": val_metrics["loss"], "val_war": val_metrics["war"], "val_uar": val_metrics["uar"]}
            log(row)
            key = (val_metrics[cfg.select_metric], -val_metrics["loss"])
            if key > best_key:
                best_key, best_model, record = key, copy.deepcopy(model), row
    if best_model is None:
        return model, {"epoch": 0, "note": "no training epochs in this plan"}
    return best_model, record
