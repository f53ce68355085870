"""What `folds` costs against re-running the pipeline per fold, on a DFEW-layout tree (not a test).

Builds a DFEW-layout tree (`Clip/clip_224x224/<id>/*.jpg`, `EmoLabel_DataSplit/`) of aligned face crops
cut from the synthetic benchmark's renders along their true face boxes, five folds as DFEW has them; runs
`dvc repro train_stage3` on it in a scratch copy of this repository (clip.model: a CLIP folder, by default
the workspace's pretrained small CLIP), then `folds --folds 1 2`. Prints and writes, side by side from
this one run: the feature pass and each fold's training in `folds`, its wall time, the bound the issue
sets (the trainings + one feature pass), and what the per-fold pipeline costs (face_crop + features +
the ladder's training stages, from the `dvc repro` metrics) times the folds. JSON to
reports/benchmarks/folds_cost.json and README's `folds-cost` block.

Example (about 10 minutes on 2 cores): python -m a3lign_research.benchmarks.folds_cost --clips-per-class 20
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from a3lign_dfer.config.stage_table import LADDER
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_research import ROOT
from a3lign_research.benchmarks.common import make_tree, run, scratch_repo
from a3lign_research.blocks import publish


def markdown(r: dict) -> str:
    f = r["folds"]
    return "\n".join([
        f"`folds --folds 1 2` on a DFEW-layout tree of {r['clips']} clips of {r['frames_per_clip']} aligned "
        f"{r['size']}x{r['size']} crops, CLIP `{r['clip_model']}`, {r['threads']} CPU threads "
        "(`python -m a3lign_research.benchmarks.folds_cost`):", "",
        markdown_table(["", "seconds"], [
            ["feature pass over every clip (once)", f"{f['feature_pass_s']:.1f}"],
            *([f"training, fold {k} (the BAP ladder)", f"{s:.1f}"] for k, s in f["training_s"].items()),
            ["**`folds`, wall, both folds**", f"**{f['wall_s']:.1f}**"],
            ["the bound: the trainings + one feature pass", f"{f['bound_s']:.1f}"],
            ["the pipeline per fold instead (face_crop + features + ladder stages of `dvc repro`) x 2",
             f"{r['per_fold_pipeline_s'] * 2:.1f}"]]), "",
        f"`folds` / bound = {f['wall_s'] / f['bound_s']:.2f}; `folds` / per-fold pipelines = "
        f"{f['wall_s'] / (2 * r['per_fold_pipeline_s']):.2f}. The folds train side by side on the Dask cluster "
        f"({f['workers']} workers), so the wall time can be below the sum of the trainings."])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--clip-model", type=Path, default=ROOT / "models/clip_small")
    args = parser.parse_args(argv)
    if not (args.clip_model / "config.json").exists():
        raise SystemExit(f"{args.clip_model} is not a CLIP folder: run `dvc repro pretrain_clip` first")
    import torch

    with tempfile.TemporaryDirectory(prefix="folds-cost-") as tmp:
        tmp = Path(tmp)
        clips = make_tree(tmp / "DFEW", args.clips_per_class, args.size, seed=0)
        scratch_repo(tmp / "repo", tmp / "DFEW", args.clip_model)
        start = time.perf_counter()
        run_dvc(["repro", "train_stage3"], tmp / "repo")
        repro_s = time.perf_counter() - start
        seconds = lambda name: json.loads((tmp / "repo/reports" / name).read_text())["seconds"]  # noqa: E731
        per_fold = seconds("face_crop.json") + seconds("features.json") + sum(
            seconds(f"train/{stage}/metrics.json") for stage in LADDER)
        run([sys.executable, "-m", "a3lign_dfer", "folds", "--folds", "1", "2"], tmp / "repo")
        folds = json.loads((tmp / "repo/reports/folds/summary.json").read_text())
        frames = len(list((tmp / "DFEW/Clip/clip_224x224/00001").glob("*.jpg")))
    result = {"clips": clips, "frames_per_clip": frames, "size": args.size, "clip_model": str(args.clip_model.name),
              "threads": torch.get_num_threads(), "repro_to_stage3_s": round(repro_s, 1),
              "per_fold_pipeline_s": round(per_fold, 1), "folds": folds["cost"],
              "fold_uar": [r["uar"] for r in folds["per_fold"]]}
    return publish("folds-cost", result)


if __name__ == "__main__":
    main()
