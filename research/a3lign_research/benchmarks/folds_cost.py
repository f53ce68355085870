"""The paper's 5-fold protocol on a DFEW-layout tree, and what `folds` costs against re-running the pipeline
per fold (not a test).

Builds a DFEW-layout tree (`Clip/clip_224x224/<id>/*.jpg`, `EmoLabel_DataSplit/`) of aligned face crops
cut from the synthetic benchmark's renders along their true face boxes, five folds as DFEW has them; runs
`dvc repro train_stage3` on it in a scratch copy of this repository (clip.model: a CLIP folder, by default
the workspace's pretrained small CLIP), then `folds` (all five by default). Writes, from this one run: each
fold's test WAR/UAR and their mean +- std over folds as the paper reports them (the `folds` command's own
summary), the feature pass and each fold's training, the wall time, the bound (the trainings + one feature
pass) and what the per-fold pipeline costs (face_crop + features + the ladder's training stages, from the
`dvc repro` metrics) times the folds. JSON to reports/benchmarks/folds_cost.json and the docs' `folds-cost`
block.

The default size (150 clips per class: 1,050 clips, 210 test clips per fold) fits the run within 30
minutes on 2 cores: it took 15.5 min on an AMD EPYC (40 per class took 5.8), and every part grows about
linearly with the clips; the block states the time of the run it shows.

    python -m a3lign_research.benchmarks.folds_cost                      # about 16 minutes on 2 cores
    python -m a3lign_research.benchmarks.folds_cost --clips-per-class 10 --folds 1 2   # a quick look
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from a3lign_dfer.config.stage_table import LADDER
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_research import ROOT
from a3lign_research.benchmarks.common import make_tree, run, scratch_repo
from a3lign_research.blocks import publish
from a3lign_research.folds import folds_markdown


def markdown(r: dict) -> str:
    f, n = r["folds"], len(r["summary"]["folds"])
    pipelines = n * r["per_fold_pipeline_s"]
    return "\n".join([
        f"`folds` on a DFEW-layout tree of {r['clips']} synthetic clips of {r['frames_per_clip']} aligned "
        f"{r['size']}x{r['size']} crops, {r['threads']} CPU threads (`python -m a3lign_research.benchmarks."
        f"folds_cost`), {r['wall_s'] / 60:.1f} min in all (the tree, `dvc repro` to stage 3 in "
        f"{r['repro_to_stage3_s']:.0f} s, then `folds`):", "",
        folds_markdown(r["summary"]), "",
        f"Against re-running the pipeline per fold (face_crop + features + the ladder's stages of `dvc repro`, "
        f"{n} x {r['per_fold_pipeline_s']:.1f} s = {pipelines:.1f} s): `folds` / per-fold pipelines = "
        f"{f['wall_s'] / pipelines:.2f}, `folds` / bound = {f['wall_s'] / f['bound_s']:.2f}. The folds train side "
        "by side on the Dask cluster, so the wall time can be below the sum of the trainings."])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-class", type=int, default=150)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--clip-model", type=Path, default=ROOT / "models/clip_small")
    args = parser.parse_args(argv)
    if not (args.clip_model / "config.json").exists():
        raise SystemExit(f"{args.clip_model} is not a CLIP folder: run `dvc repro pretrain_clip` first")
    import torch

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="folds-cost-") as tmp:
        tmp = Path(tmp)
        clips = make_tree(tmp / "DFEW", args.clips_per_class, args.size, seed=0)
        scratch_repo(tmp / "repo", tmp / "DFEW", args.clip_model)
        repro_start = time.perf_counter()
        run_dvc(["repro", "train_stage3"], tmp / "repo")
        repro_s = time.perf_counter() - repro_start
        seconds = lambda name: json.loads((tmp / "repo/reports" / name).read_text())["seconds"]  # noqa: E731
        per_fold = seconds("face_crop.json") + seconds("features.json") + sum(
            seconds(f"train/{stage}/metrics.json") for stage in LADDER)
        run([sys.executable, "-m", "a3lign_research", "folds", "--folds", *map(str, args.folds)], tmp / "repo")
        summary = json.loads((tmp / "repo/reports/folds/summary.json").read_text())
        frames = len(list((tmp / "DFEW/Clip/clip_224x224/00001").glob("*.jpg")))
    summary = {k: v for k, v in summary.items() if k not in ("pool", "provenance")}     # the scratch tree's
    summary["clip_model"] = args.clip_model.name
    result = {"clips": clips, "frames_per_clip": frames, "size": args.size,
              "threads": torch.get_num_threads(), "repro_to_stage3_s": round(repro_s, 1),
              "per_fold_pipeline_s": round(per_fold, 1), "folds": summary["cost"], "summary": summary,
              "wall_s": round(time.perf_counter() - start, 1)}
    return publish("folds-cost", result)


if __name__ == "__main__":
    main()
