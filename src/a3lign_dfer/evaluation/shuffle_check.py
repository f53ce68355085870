"""The shuffled-frame check on test (paper Table 5), a stage of its own after `evaluate`.

Every Table 4 checkpoint sees the same 16 centre-sampled test frames in random
order (one permutation per seed in `shuffle_check.seeds`). An order-blind model
(the frame-mean row) loses exactly nothing; a model that uses time loses most on
the classes that differ only in order. The release gate reads the final model's
UAR drop from here, so a model that ignores frame order is not released.

Example: python -m a3lign_dfer shuffle-check --features data/features \
    --ladder models/stage1 models/stage2/phase1 models/stage2 models/stage2_text models/stage3 \
    --all-at-once models/all_at_once_separate models/all_at_once_joint --out reports/shuffle
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from a3lign_dfer.config.evaluation import ShuffleCheckConfig
from a3lign_dfer.evaluation.evaluate import table4_rows
from a3lign_dfer.report_files import SHUFFLE_CHECK


def shuffle_check(ladder: list[Path], all_at_once: list[Path], features_dir: Path, cfg: ShuffleCheckConfig,
                  out_dir: Path, device: str = "cpu") -> dict:
    if not cfg.seeds:
        raise ValueError("shuffle_check.seeds is empty: the check needs at least one frame-order permutation")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, _, _ = table4_rows(ladder, all_at_once, features_dir, cfg.seeds, device)
    final = rows[len(ladder) - 1].report
    result = {
        "checkpoint": str(ladder[-1]), "seeds": list(cfg.seeds), "num_test_clips": final["num_samples"],
        "war": final["war"], "uar": final["uar"], "per_class_recall": final["per_class_recall"],
        "shuffled": final["shuffled"],
        "table5": [r.label() | {"uar": r.report["uar"], "shuffled_uar": r.report["shuffled"]["uar"],
                                "shuffled_uar_drop": r.report["shuffled"]["uar_drop"]} for r in rows],
    }
    SHUFFLE_CHECK.write(out_dir / "metrics.json", result)
    plot_recall(final["per_class_recall"], final["shuffled"]["per_class_recall"], out_dir / "per_class_recall.png")
    return result


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
