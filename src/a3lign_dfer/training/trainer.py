"""The epoch loop every BAP stage shares.

A stage is a list of phases (grow an encoder, then train for N epochs). Each
phase keeps its own validation-best epoch and the next phase grows that one, so
the model a stage ends with always has the depth its params name: a deeper
phase that validates worse is reported, never silently replaced by a shallower
one. The test split is never read here.
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

from a3lign_dfer.config.training import LearningRates, TrainConfig
from a3lign_dfer.data.feature_cache import FeatureSet
from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_dfer.inference.predict import class_matrix, predict_logits
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP


@dataclass(frozen=True)
class Phase:
    epochs: int
    depth: int | None = None   # grow the stage's growing encoder to this many layers first


@dataclass
class StagePlan:
    trainable: set[str]
    lr: LearningRates
    phases: list[Phase]
    grows: str | None = None   # which encoder the phases grow: de_text, de_video or jas


@dataclass
class PhaseResult:
    model: A3lignDFER
    record: dict               # the selected epoch's row


def text_side_trains(model: A3lignDFER) -> bool:
    encoder = model.jas if model.jas is not None else model.de_text
    return model.mat.requires_grad or (encoder is not None and any(p.requires_grad for p in encoder.parameters()))


def param_groups(model: A3lignDFER, lr: LearningRates, weight_decay: float) -> list[dict]:
    """MAT at lr.mat, encoders at lr.encoder; weight decay only on encoder weight matrices.

    MAT is a set of input embeddings and the positional table is one too: decaying
    them pulls them toward zero, a direction that means nothing to the frozen CLIP.
    Biases and LayerNorm gains are not decayed either (standard transformer practice).
    """
    mat, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name == "mat":
            mat.append(p)
        elif p.ndim >= 2 and not name.endswith(".pos"):
            decay.append(p)
        else:
            no_decay.append(p)
    if mat and lr.mat is None:
        raise ValueError("this stage trains MAT but its params give no lr.mat")
    groups = [{"params": mat, "lr": lr.mat, "weight_decay": 0.0, "name": "mat"},
              {"params": decay, "lr": lr.encoder, "weight_decay": weight_decay, "name": "encoder"},
              {"params": no_decay, "lr": lr.encoder, "weight_decay": 0.0, "name": "encoder_no_decay"}]
    return [g for g in groups if g["params"]]


def evaluate(model: A3lignDFER, clip: FrozenCLIP, data: FeatureSet,
             class_vectors: torch.Tensor | None = None) -> dict:
    logits = predict_logits(model, clip, data, class_vectors=class_vectors)
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
        cfg: TrainConfig, seed: int, log: Callable[[dict], None]) -> list[PhaseResult]:
    """Train through the plan's phases; one validation-best model per phase, the last is the stage's."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    device = clip.device
    weights = class_weights(train.labels, len(model.spec.classes), cfg.class_weight)
    weights = None if weights is None else weights.to(device)
    results: list[PhaseResult] = []
    epoch_no = 0
    for phase_no, phase in enumerate(plan.phases):
        if results:
            model = copy.deepcopy(results[-1].model)
        if phase.depth is not None:
            getattr(model, plan.grows).grow(phase.depth)
        model.to(device).set_trainable(plan.trainable)
        groups = param_groups(model, plan.lr, cfg.weight_decay)
        params = [p for g in groups for p in g["params"]]
        steps = phase.epochs * math.ceil(len(train) / cfg.batch_size)
        opt = torch.optim.SGD(groups, momentum=cfg.momentum)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1)) if cfg.lr_schedule == "cosine"
                 else torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0))
        # Frozen text side (stage 2): the class vectors are computed once for the phase.
        fixed = None if text_side_trains(model) else class_matrix(model, clip)
        best: PhaseResult | None = None
        best_key = (-math.inf, -math.inf)
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
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{loss.item():.3f}")
            val_metrics = evaluate(model, clip, val, class_vectors=fixed)
            row = {"epoch": epoch_no, "phase": phase_no, "depth": phase.depth, "train_loss": float(np.mean(losses)),
                   "val_loss": val_metrics["loss"], "val_war": val_metrics["war"], "val_uar": val_metrics["uar"]}
            log(row)
            key = (val_metrics[cfg.select_metric], -val_metrics["loss"])
            if key > best_key:
                best_key, best = key, PhaseResult(copy.deepcopy(model), row)
        results.append(best if best is not None else PhaseResult(model, {"epoch": epoch_no, "phase": phase_no,
                                                                          "note": "no training epochs"}))
    return results
