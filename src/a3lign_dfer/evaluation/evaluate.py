"""Test-split evaluation: every row of Table 4, the final model's confusion matrix.

The test split is read only here and by the shuffled-frame check
(shuffle_check.py, the same rows in shuffled frame order), after every
checkpoint and hyperparameter was chosen on val. Each checkpoint becomes one Table 4 row, labelled from its own
architecture (image | text transformer layers), so the table cannot mislabel a
row whatever the params say today.

Example: python -m a3lign_dfer evaluate --features data/features \
    --ladder models/stage1 models/stage2/phase1 models/stage2 models/stage2_text models/stage3 \
    --all-at-once models/all_at_once_separate models/all_at_once_joint --out reports/eval
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from a3lign_dfer.data.feature_cache import FeatureSet, load_feature_set
from a3lign_dfer.errors import ConfigError
from a3lign_dfer.evaluation.metrics import confusion_matrix
from a3lign_dfer.evaluation.report import split_report
from a3lign_dfer.inference.predict import predict_logits
from a3lign_dfer.model.a3lign import A3lignDFER, ModelSpec
from a3lign_dfer.model.checkpoint import load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.report_files import EVALUATION


def table4_layers(spec: ModelSpec, joint_from_scratch: bool = False) -> tuple[str, str]:
    """(image, text) columns of the paper's Table 4 for an architecture."""
    if spec.video_encoder == "jas":   # one shared encoder: the paper's Joint row spans both columns
        n = spec.jas_layers
        return (f"{n} (Joint)", "") if joint_from_scratch else (f"{n} (JAS)", str(n))
    image = "Average" if spec.video_encoder == "mean" else str(spec.de_video_layers)
    return image, str(spec.de_text_layers)


@dataclass
class Row:
    """One Table 4 row: a checkpoint, its label, and its report on the test split."""

    paradigm: str
    image_layers: str
    text_layers: str
    checkpoint: Path
    model: A3lignDFER
    meta: dict
    report: dict

    def label(self) -> dict:
        return {"paradigm": self.paradigm, "image_layers": self.image_layers, "text_layers": self.text_layers,
                "checkpoint": str(self.checkpoint), "stage": self.meta["stage"]}


def table4_rows(ladder: list[Path], all_at_once: list[Path], features_dir: Path, shuffle_seeds: tuple[int, ...],
                device: str = "cpu") -> tuple[list[Row], FeatureSet, FrozenCLIP]:
    """Every checkpoint's test report, in Table 4's order; the ladder's last checkpoint is the final model."""
    final_model, final_meta = load_checkpoint(ladder[-1], device)
    clip = FrozenCLIP.load(final_meta["clip_model"], device)
    classes = final_model.spec.classes
    test = load_feature_set(features_dir, "test", classes)
    rows = []
    for paradigm, paths in (("BAP", ladder), ("All at once", all_at_once)):
        for path in paths:
            model, meta = load_checkpoint(path, device)
            if model.spec.classes != classes or meta["clip_model"] != final_meta["clip_model"]:
                raise ConfigError(f"{path} was trained for other classes or another CLIP than {ladder[-1]}: "
                                  "re-run the training stages")
            image, text = table4_layers(model.spec, joint_from_scratch=paradigm == "All at once")
            rows.append(Row(paradigm, image, text, path, model, meta, split_report(model, clip, test, shuffle_seeds)))
    return rows, test, clip


def evaluate_checkpoints(ladder: list[Path], all_at_once: list[Path], features_dir: Path, out_dir: Path,
                         device: str = "cpu") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, test, clip = table4_rows(ladder, all_at_once, features_dir, shuffle_seeds=(), device=device)
    final = rows[len(ladder) - 1]
    classes = final.model.spec.classes
    pred = predict_logits(final.model, clip, test).argmax(1).numpy()
    labels = test.labels.numpy()
    report = final.report
    result = {
        "checkpoint": str(final.checkpoint), "clip_model": final.meta["clip_model"],
        "train_seed": final.meta.get("train_seed"), "classes": list(classes), "chance_uar": 1 / len(classes),
        "num_test_clips": report["num_samples"],
        **{k: report[k] for k in ("war", "uar", "per_class_recall", "absent_classes")},
        "table4": [r.label() | {"war": r.report["war"], "uar": r.report["uar"],
                                "val_selected_epoch": r.meta["selected"].get("epoch")} for r in rows],
    }
    EVALUATION.write(out_dir / "metrics.json", result)
    pd.DataFrame({"clip_id": test.clips["clip_id"], "actual": [classes[i] for i in labels],
                  "predicted": [classes[i] for i in pred]}).to_csv(out_dir / "predictions.csv", index=False)
    plot_confusion(confusion_matrix(labels, pred, len(classes)), classes, out_dir / "confusion.png")
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
