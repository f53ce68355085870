"""WAR / UAR as DFER papers report them, with no class silently dropped.

UAR divides by the full class count: a class absent from the labels contributes a
recall of 0 and is listed in `absent_classes`, so a split that lacks a class can
never look better than one that has it.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def recall_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict:
    cm = confusion_matrix(y_true, y_pred, len(classes))
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.zeros(len(classes)), where=support > 0)
    return {
        "war": float(np.diag(cm).sum() / max(cm.sum(), 1)),
        "uar": float(recall.sum() / len(classes)),
        "per_class_recall": {c: float(r) for c, r in zip(classes, recall)},
        "absent_classes": [c for c, n in zip(classes, support) if n == 0],
        "num_samples": int(cm.sum()),
    }
