"""Test-split evaluation: every row of Table 4, the final model's shuffled-frame check, plots.

The test split is read only here, after every checkpoint and hyperparameter was
chosen on val. Each checkpoint becomes one Table 4 row, labelled from its own
architecture (image | text transformer layers), so the table cannot mislabel a
row whatever the params say today.

Example: python -m a3lign_dfer evaluate --features data/features \
    --ladder models/stage1 models/stage2/phase1 models/stage2 models/stage2_text models/stage3 \
    --all-at-once models/all_at_once_separate models/all_at_once_joint --out reports/eval
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from a3lign_dfer.config import EvaluateConfig
from a3lign_dfer.data.features import load_feature_set
from a3lign_dfer.evaluation.metrics import confusion_matrix
from a3lign_dfer.evaluation.report import split_report
from a3lign_dfer.inference.predict import predict_logits
from a3lign_dfer.model.a3lign import ModelSpec
from a3lign_dfer.model.checkpoint import load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP


def table4_layers(spec: ModelSpec, joint_from_scratch: bool = False) -> tuple[str, str]:
    """(image, text) columns of the paper's Table 4 for an architecture."""
    if spec.video_encoder == "jas":   # one shared encoder: the paper's Joint row spans both columns
        n = spec.jas_layers
        return (f"{n} (Joint)", "") if joint_from_scratch else (f"{n} (JAS)", str(n))
    image = "Average" if spec.video_encoder == "mean" else str(spec.de_video_layers)
    return image, str(spec.de_text_layers)


def evaluate_checkpoints(ladder: list[Path], all_at_once: list[Path], features_dir: Path, cfg: EvaluateConfig,
                         out_dir: Path, device: str = "cpu") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    final_model, final_meta = load_checkpoint(ladder[-1], device)
    clip = FrozenCLIP.load(final_meta["clip_model"], device)
    classes = final_model.spec.classes
    test = load_feature_set(features_dir, "test", classes)

    rows, reports = [], {}
    for paradigm, paths in (("BAP", ladder), ("All at once", all_at_once)):
        for path in paths:
            model, meta = load_checkpoint(path, device)
            if model.spec.classes != classes or meta["clip_model"] != final_meta["clip_model"]:
                raise ValueError(f"{path} was trained for other classes or another CLIP than {ladder[-1]}")
            image, text = table4_layers(model.spec, joint_from_scratch=paradigm == "All at once")
            report = reports[path] = split_report(model, clip, test, cfg.shuffle_seeds)
            rows.append({"paradigm": paradigm, "image_layers": image, "text_layers": text,
                         "checkpoint": str(path), "stage": meta["stage"], "war": report["war"],
                         "uar": report["uar"], "shuffled_uar_drop": report["shuffled"]["uar_drop"],
                         "val_selected_epoch": meta["selected"].get("epoch")})

    final = reports[ladder[-1]]                     # the final model is the ladder's last row
    pred = predict_logits(final_model, clip, test).argmax(1).numpy()
    labels = test.labels.numpy()
    result = {
        "checkpoint": str(ladder[-1]), "clip_model": final_meta["clip_model"],
        "train_seed": final_meta.get("train_seed"), "classes": list(classes), "chance_uar": 1 / len(classes),
        "num_test_clips": final["num_samples"], **{k: final[k] for k in ("war", "uar", "per_class_recall",
                                                                          "absent_classes", "shuffled")},
        "table4": rows,
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    pd.DataFrame({"clip_id": test.clips["clip_id"], "actual": [classes[i] for i in labels],
                  "predicted": [classes[i] for i in pred]}).to_csv(out_dir / "predictions.csv", index=False)
    plot_confusion(confusion_matrix(labels, pred, len(classes)), classes, out_dir / "confusion.png")
    plot_recall(final["per_class_recall"], final["shuffled"]["per_class_recall"], out_dir / "per_class_recall.png")
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


def plot_recall(recall: dict[str, float], shuffled: dict[str, float], path: Path) -> None:
    """Per-class test recall, normal vs shuffled frame order: where the model uses time."""
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    x = np.arange(len(recall))
    ax.bar(x - 0.2, list(recall.values()), width=0.4, label="normal order", color="tab:blue")
    ax.bar(x + 0.2, [shuffled[c] for c in recall], width=0.4, label="shuffled frames", color="tab:orange")
    ax.set(ylim=(0, 1.15), yticks=np.linspace(0, 1, 6), ylabel="recall", title="Test recall per class", xticks=x,
           xticklabels=list(recall))
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)   # above the bars, never over them
    fig.tight_layout()
    fig.savefig(path, dpi=120)
