"""Test-split evaluation: WAR/UAR per BAP stage, shuffled-frame check, plots.

The test split is read only here, after every checkpoint was chosen on val.
The shuffled-frame evaluation (paper Table 5) feeds the same model the same 16
frames in random order; the drop measures how much the model uses time.

Example: python -m a3lign_dfer evaluate --features data/features \
    --checkpoints models/stage1 models/stage2 models/stage3 --out reports/eval
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from a3lign_dfer.config import EvaluateConfig
from a3lign_dfer.data.features import load_feature_set
from a3lign_dfer.evaluation.metrics import confusion_matrix, recall_metrics
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training.checkpoint import load_checkpoint
from a3lign_dfer.training.trainer import class_matrix, predict


def evaluate_checkpoints(checkpoints: list[Path], features_dir: Path, cfg: EvaluateConfig, out_dir: Path,
                         device: str = "cpu") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    models = [load_checkpoint(c, device) for c in checkpoints]
    clip_name = models[-1][1]["clip_model"]
    clip = FrozenCLIP.load(clip_name, device)
    classes = models[-1][0].spec.classes
    test = load_feature_set(features_dir, "test", classes)
    labels = test.labels.numpy()

    stages = {}
    for path, (model, meta) in zip(checkpoints, models):
        pred = predict(model, clip, test).argmax(1).numpy()
        m = recall_metrics(labels, pred, classes)
        stages[path.name] = {"war": m["war"], "uar": m["uar"], "video_encoder": model.spec.video_encoder,
                             "selected_epoch": meta["selected"].get("epoch")}

    final, meta = models[-1]
    vectors = class_matrix(final, clip)
    logits = predict(final, clip, test, class_vectors=vectors)
    pred = logits.argmax(1).numpy()
    metrics = recall_metrics(labels, pred, classes)
    shuffled = []
    for seed in cfg.shuffle_seeds:
        p = predict(final, clip, test, class_vectors=vectors, permute_seed=seed).argmax(1).numpy()
        m = recall_metrics(labels, p, classes)
        shuffled.append({"seed": seed, "war": m["war"], "uar": m["uar"]})
    shuffled_war = float(np.mean([s["war"] for s in shuffled]))
    shuffled_uar = float(np.mean([s["uar"] for s in shuffled]))
    result = {
        "checkpoint": str(checkpoints[-1]), "clip_model": clip_name, "schedule": meta.get("schedule"),
        "war": metrics["war"], "uar": metrics["uar"], "chance_uar": 1 / len(classes),
        "num_test_clips": metrics["num_samples"], "absent_classes": metrics["absent_classes"],
        "per_class_recall": metrics["per_class_recall"],
        "shuffled": {"war": shuffled_war, "uar": shuffled_uar, "war_drop": metrics["war"] - shuffled_war,
                     "uar_drop": metrics["uar"] - shuffled_uar, "runs": shuffled},
        "stages": stages,
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    pd.DataFrame({"clip_id": test.clips["clip_id"], "actual": [classes[i] for i in labels],
                  "predicted": [classes[i] for i in pred]}).to_csv(out_dir / "predictions.csv", index=False)
    plot_confusion(confusion_matrix(labels, pred, len(classes)), classes, out_dir / "confusion.png")
    plot_recall(metrics["per_class_recall"], out_dir / "per_class_recall.png")
    return result


def plot_confusion(cm: np.ndarray, classes: tuple[str, ...], path: Path) -> None:
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="actual", title="Test confusion (row-normalised, counts in cells)")
    ax.tick_params(axis="x", labelrotation=45)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, cm[i, j], ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_recall(recall: dict[str, float], path: Path) -> None:
    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.subplots()
    ax.bar(list(recall), list(recall.values()), color="tab:blue")
    ax.set(ylim=(0, 1), ylabel="recall", title="Test recall per class")
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
