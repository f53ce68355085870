"""One split's numbers for one model: WAR, UAR, per-class recall, shuffled-frame check.

The same report is written on val at the end of every training stage (where
hyperparameters are chosen) and on test by the final evaluation (read once), so
the two are computed identically. The shuffled-frame check (paper Table 5) feeds
the same 16 centre-sampled frames in random order; an order-blind model loses
exactly nothing, a model that uses time loses most on the classes that differ
only in order.
"""
from __future__ import annotations

import numpy as np

from a3lign_dfer.data.feature_cache import FeatureSet
from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_dfer.inference.predict import class_matrix, predict_logits
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP


def split_report(model: A3lignDFER, clip: FrozenCLIP, data: FeatureSet, shuffle_seeds: tuple[int, ...]) -> dict:
    classes = model.spec.classes
    labels = data.labels.numpy()
    vectors = class_matrix(model, clip)
    pred = predict_logits(model, clip, data, class_vectors=vectors).argmax(1).numpy()
    normal = recall_metrics(labels, pred, classes)
    runs = [recall_metrics(labels, predict_logits(model, clip, data, class_vectors=vectors, permute_seed=seed)
                           .argmax(1).numpy(), classes) for seed in shuffle_seeds]
    report = {k: normal[k] for k in ("war", "uar", "per_class_recall", "absent_classes", "num_samples")}
    if runs:
        shuffled_recall = {c: float(np.mean([r["per_class_recall"][c] for r in runs])) for c in classes}
        war, uar = float(np.mean([r["war"] for r in runs])), float(np.mean([r["uar"] for r in runs]))
        report["shuffled"] = {
            "seeds": list(shuffle_seeds), "war": war, "uar": uar,
            "war_drop": normal["war"] - war, "uar_drop": normal["uar"] - uar,
            "per_class_recall": shuffled_recall,
            "per_class_drop": {c: normal["per_class_recall"][c] - shuffled_recall[c] for c in classes},
        }
    return report
