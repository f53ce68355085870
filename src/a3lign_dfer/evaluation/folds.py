"""The official folds (DFEW and MAFW have five), each a DVC experiment; per-fold and mean +- std.

`python -m a3lign_dfer folds --folds 1 2 3 4 5` runs `dvc exp run --temp -S data.fold=<k>`
per fold (the same machinery as the `seeds` command, over data.fold): each fold's
importer run carves its val split out of that fold's train split, so checkpoints are
chosen without seeing the fold's test clips. WAR and UAR of every fold and their mean
+- std (sample std over folds) go to reports/folds/summary.json and summary.md.
"""
from __future__ import annotations

from pathlib import Path

from a3lign_dfer.evaluation.multi_seed import (plus_minus, run_sweep, stats, summarize, summary_markdown,
                                               write_summary)
from a3lign_dfer.training.stage_table import FINAL


def summarize_folds(per_fold: dict[int, dict]) -> dict:
    """Per-fold test WAR/UAR (and the val UAR that chose the checkpoints), mean +- std over folds,
    and the multi-seed summary's tables (Table 4 rows, shuffled drop, per-class recall) over folds."""
    folds = sorted(per_fold)
    summary = summarize(per_fold)
    summary.pop("seeds")
    summary.pop("num_test_clips")
    per = [{"fold": f, "test_clips": per_fold[f]["test"]["num_test_clips"], "war": per_fold[f]["test"]["war"],
            "uar": per_fold[f]["test"]["uar"], "val_uar": per_fold[f]["val"][FINAL]["uar"]} for f in folds]
    return {"folds": folds, "per_fold": per, "war": stats([r["war"] for r in per]),
            "uar": stats([r["uar"] for r in per])} | summary


def folds_markdown(summary: dict) -> str:
    folds = summary["folds"]
    intro = (f"Official folds {', '.join(map(str, folds))}: {len(summary['classes'])} classes (chance UAR "
             f"{100 * summary['chance_uar']:.1f}%), CLIP `{summary['clip_model']}`. Each fold's checkpoints were "
             "chosen on val carved out of its train split; its test split was read once.")
    lines = [intro,
             "",
             "| Fold | Test clips | WAR % | UAR % | val UAR % (stage 3) |",
             "|---|---|---|---|---|"]
    for r in summary["per_fold"]:
        lines.append(f"| {r['fold']} | {r['test_clips']} | {100 * r['war']:.1f} | {100 * r['uar']:.1f} | "
                     f"{100 * r['val_uar']:.1f} |")
    lines.append(f"| mean ± std | | {plus_minus(summary['war'])} | {plus_minus(summary['uar'])} | |")
    tables = summary_markdown(summary, intro=f"Mean ± std over {len(folds)} folds, every Table 4 row:")
    return "\n".join(lines) + "\n\n" + tables


def run_folds(folds: list[int], overrides: list[str], repo: Path, out_dir: Path, prefix: str = "fold") -> dict:
    per_fold, revs = run_sweep("data.fold", folds, overrides, repo, prefix, "folds")
    summary = summarize_folds(per_fold) | {"overrides": overrides, "experiments": {f: revs[f] for f in folds}}
    return write_summary(summary, folds_markdown(summary), out_dir)
