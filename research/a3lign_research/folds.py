"""The official folds (DFEW and MAFW have five): five trainings on one feature pass, per-fold and mean +- std.

What does not depend on the fold is computed once. The face crops are the workspace's
(`dvc repro` cropped every clip of the dataset: a fold only re-splits them). The
feature cache of every clip is one pass into `<pool>/features`, each clip with the
augmented views a training clip gets, since every clip trains in some fold. A fold is
then only a split: the fold's own importer run (data.fold = k, its val carved out of
its train split as `prepare` does) picks rows of that pass, written as
`<pool>/fold-<k>/` (index files, and its three splits linked to the pass's shards),
which is a feature cache like data/features. Val and test read view 0, the
unaugmented crop, exactly as in the pipeline.

Each fold trains the BAP ladder in memory (the paper experiments' `fidelity:ladder`
recipe, the pipeline's own builders and epoch loop) on the Dask cluster, so folds run
side by side; checkpoints are chosen on the fold's val, its test split is read once.
WAR and UAR of every fold, their mean +- std (sample std over folds), every ladder
stage's test numbers and the cost (the feature pass, each fold's training, the wall
time) go to reports/folds/summary.json and summary.md.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from a3lign_dfer.config.data import PrepareParams
from a3lign_dfer.config.params import Params
from a3lign_dfer.config.stage_table import FINAL, LADDER, stage
from a3lign_dfer.data import manifest
from a3lign_dfer.data.cluster import dask_client
from a3lign_dfer.data.feature_cache import FORMAT, INDEX_COLUMNS
from a3lign_dfer.data.features import ClipEncoder, build_feature_cache
from a3lign_dfer.data.importers import import_dataset
from a3lign_dfer.errors import ConfigError
from a3lign_dfer.markdown_table import markdown_table
from a3lign_research.blocks import write_report
from a3lign_research.paper.runs import Job, run_jobs
from a3lign_research.seeds import plus_minus, stats

POOL_SPLIT = "train"          # the pass writes every clip as a training clip: all its views


def fold_split(params: Params, fold: int, imported: set[str], cropped: set[str]) -> pd.DataFrame:
    """Fold `fold`'s clips with their split (train / val / test), as `prepare` would import them, among the
    clips the workspace cropped (`imported` by the workspace's own fold; face_crop's rejects stay out)."""
    df, _, _ = import_dataset(PrepareParams(replace(params.data, fold=fold), params.synthetic))
    unknown = sorted(set(df["clip_id"]) - imported)
    if unknown:
        raise ConfigError(f"data.fold {fold} lists {len(unknown)} clip(s) that the workspace's data.fold "
                          f"{params.data.fold} did not import (first: {unknown[:3]}): the folds must share one clip set")
    return df[df["clip_id"].isin(cropped)][["clip_id", "split"]]


def feature_pass(crops: pd.DataFrame, crops_root: Path, params: Params, out: Path, device: str) -> dict:
    """Every cropped clip's features once, with training views (the features stage's shards: a killed pass
    resumes, and a second run reuses every shard)."""
    pooled = crops.assign(split=POOL_SPLIT)
    return build_feature_cache(pooled, crops_root, ClipEncoder.of(params.clip.model, device), params.features,
                               params.data.seed, out, params.scale)


def write_fold(pool: Path, split: pd.DataFrame, folder: Path) -> dict[str, int]:
    """`folder` as a feature cache of the fold's splits: index rows of the pass, splits linked to its shards."""
    meta = json.loads((pool / "meta.json").read_text())
    index = pd.read_parquet(pool / f"{POOL_SPLIT}.parquet").drop(columns=["split"])
    rows = index.merge(split, on="clip_id", how="inner", validate="one_to_one")
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name in manifest.SPLITS:
        part = rows[rows["split"] == name]
        part[[c for c in index.columns if c not in INDEX_COLUMNS] + ["split", *INDEX_COLUMNS]].to_parquet(
            folder / f"{name}.parquet", index=False)
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(pool / POOL_SPLIT, folder), target_is_directory=True)
        sizes[name] = len(part)
    views = meta["views"][POOL_SPLIT]
    (folder / "meta.json").write_text(json.dumps({"format": FORMAT, "embed_dim": meta["embed_dim"],
                                                  "views": {name: views for name in manifest.SPLITS}}, indent=2))
    return sizes


def summarize_folds(results: dict[int, dict], sizes: dict[int, dict], cost: dict, params: Params) -> dict:
    folds = sorted(results)
    final = {f: results[f]["rows"][FINAL] for f in folds}
    per = [{"fold": f, "train_clips": sizes[f]["train"], "val_clips": sizes[f]["val"], "test_clips": sizes[f]["test"],
            "war": final[f]["test"]["war"], "uar": final[f]["test"]["uar"], "val_uar": final[f]["val"]["uar"],
            "shuffled_uar_drop": final[f]["test"]["shuffled"]["uar_drop"]} for f in folds]
    classes = list(params.data.classes)
    ladder = [{"stage": name, "title": stage(name).title,
               **{f"{split}_{m}": stats([results[f]["rows"][name][split][m] for f in folds])
                  for split in ("test", "val") for m in ("war", "uar")}} for name in LADDER]
    return {"dataset": params.data.dataset, "folds": folds, "classes": classes, "chance_uar": 1 / len(classes),
            "clip_model": params.clip.model, "per_fold": per,
            "war": stats([r["war"] for r in per]), "uar": stats([r["uar"] for r in per]),
            "shuffled_uar_drop": stats([r["shuffled_uar_drop"] for r in per]),
            "per_class_recall": {c: stats([final[f]["test"]["per_class_recall"][c] for f in folds]) for c in classes},
            "ladder": ladder, "cost": cost}


def folds_markdown(summary: dict) -> str:
    folds, cost, classes = summary["folds"], summary["cost"], summary["classes"]
    per_fold = [[r["fold"], f"{r['train_clips']} / {r['val_clips']} / {r['test_clips']}", f"{100 * r['war']:.1f}",
                 f"{100 * r['uar']:.1f}", f"{100 * r['val_uar']:.1f}", f"{100 * r['shuffled_uar_drop']:.1f}"]
                for r in summary["per_fold"]]
    mean = ["mean ± std", "", plus_minus(summary["war"]), plus_minus(summary["uar"]), "",
            plus_minus(summary["shuffled_uar_drop"])]
    lines = [f"{summary['dataset'].upper()} official folds {', '.join(map(str, folds))}: {len(classes)} "
             f"classes (chance UAR {100 * summary['chance_uar']:.1f}%), CLIP `{summary['clip_model']}`. Each fold's "
             "checkpoints were chosen on val carved out of its train split; its test split was read once.",
             "",
             markdown_table(["Fold", "Train / val / test clips", "WAR %", "UAR %", "val UAR % (final stage)",
                             "shuffled UAR drop"], [*per_fold, mean]),
             "",
             markdown_table(["BAP stage (ladder)", "test WAR %", "test UAR %", "val UAR %"],
                            ([r["title"], *(plus_minus(r[k]) for k in ("test_war", "test_uar", "val_uar"))]
                             for r in summary["ladder"])),
             "",
             markdown_table(["Per-class test recall %", *classes],
                            [["final model", *(plus_minus(summary["per_class_recall"][c]) for c in classes)]]),
             "",
             f"Cost: one feature pass over every clip {cost['feature_pass_s']:.1f} s "
             f"({cost['feature_shards_reused']} of {cost['feature_shards']} shards reused), trainings "
             + ", ".join(f"fold {f} {s:.1f} s" for f, s in cost["training_s"].items())
             + f", wall {cost['wall_s']:.1f} s for all (on {cost['workers']} worker(s)); "
             f"the bound, the trainings + the feature pass, is {cost['bound_s']:.1f} s."]
    return "\n".join(lines)


def run_folds(params: Params, params_path: Path, folds: list[int], raw_dir: Path, crops_dir: Path, pool: Path,
              out_dir: Path, device: str = "cpu") -> dict:
    if params.data.dataset == "synthetic":
        raise ConfigError("data.dataset is synthetic, which has no official folds: `folds` is for dfew and mafw "
                          "(set data.dataset and data.root)")
    start = time.perf_counter()
    classes = tuple(params.data.classes)
    crops = manifest.read(crops_dir / "manifest.parquet", classes)
    imported = set(manifest.read(raw_dir / "manifest.parquet", classes)["clip_id"])
    splits = {f: fold_split(params, f, imported, set(crops["clip_id"])) for f in folds}
    with dask_client(params.scale) as client:          # one cluster for the pass and the trainings
        params = replace(params, scale=replace(params.scale, scheduler=client.scheduler.address))
        features = feature_pass(crops, crops_dir, params, pool / "features", device)
        sizes = {f: write_fold(pool / "features", splits[f], pool / f"fold-{f}") for f in folds}
        jobs = [Job("fidelity:ladder", f"fold-{f}", params.train.seed, params_path=str(params_path),
                    features=str(pool / f"fold-{f}"), device=device) for f in folds]
        results = dict(zip(folds, run_jobs(jobs, params.scale, "folds")))
    training = {f: round(results[f]["seconds"], 2) for f in folds}
    cost = {"feature_pass_s": features["seconds"], "feature_shards": features["shards"],
            "feature_shards_reused": features["shards_reused"], "training_s": training,
            "wall_s": round(time.perf_counter() - start, 2), "workers": features["workers"],
            "bound_s": round(sum(training.values()) + features["seconds"], 2)}
    cost["within_bound"] = cost["wall_s"] < cost["bound_s"]
    summary = summarize_folds(results, sizes, cost, params) | {"pool": str(pool)}
    return write_report(out_dir / "summary.json", summary, folds_markdown(summary))
