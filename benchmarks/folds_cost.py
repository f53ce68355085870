"""What `folds` costs against re-running the pipeline per fold, on a DFEW-layout tree (not a test).

Builds a DFEW-layout tree (`Clip/clip_224x224/<id>/*.jpg`, `EmoLabel_DataSplit/`) of aligned face crops
cut from the synthetic benchmark's renders along their true face boxes, five folds as DFEW has them; runs
`dvc repro train_stage3` on it in a scratch copy of this repository (clip.model: a CLIP folder, by default
the workspace's pretrained small CLIP), then `folds --folds 1 2`. Prints and writes, side by side from
this one run: the feature pass and each fold's training in `folds`, its wall time, the bound the issue
sets (the trainings + one feature pass), and what the per-fold pipeline costs (face_crop + features +
the ladder's training stages, from the `dvc repro` metrics) times the folds. JSON to
reports/benchmarks/folds_cost.json and README's `folds-cost` block.

Example (about 10 minutes on 2 cores): python benchmarks/folds_cost.py --clips-per-class 20
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import yaml

from a3lign_dfer.config.params import load_params
from a3lign_dfer.data.face_track import crop_square
from a3lign_dfer.data.synthetic import render_clip
from a3lign_dfer.reporting.readme_blocks import add_report_options, publish, republish
from a3lign_dfer.training.stage_table import LADDER

ROOT = Path(__file__).resolve().parents[1]
DFEW_ORDER = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")   # DFEW labels 1..7


def make_tree(root: Path, clips_per_class: int, size: int, seed: int) -> int:
    """Clip i (1-based) shows DFEW label 1 + (i-1) % 7 and is a test clip of fold 1 + ((i-1) // 7) % 5."""
    cfg = load_params(ROOT / "params.yaml").synthetic
    n = clips_per_class * len(DFEW_ORDER)
    rows = {fold: {"train": [], "test": []} for fold in range(1, 6)}
    for i in range(1, n + 1):
        label = 1 + (i - 1) % 7
        clip = render_clip(replace(cfg), DFEW_ORDER[label - 1], seed, i, i)
        folder = root / "Clip/clip_224x224" / f"{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for t, (frame, (x, y, w, h)) in enumerate(zip(clip.frames, clip.boxes)):
            face = crop_square(frame, x + w / 2, y + h / 2, max(w, h), 0.15, size)
            cv2.imwrite(str(folder / f"{t + 1:05d}.jpg"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        for fold in rows:
            rows[fold]["test" if fold == 1 + ((i - 1) // 7) % 5 else "train"].append(f"{i},{label}")
    for fold, splits in rows.items():
        for split, lines in splits.items():
            path = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("video_name,label\n" + "".join(f"{line}\n" for line in lines))
    return n


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def scratch_repo(repo: Path, dataset: Path, clip_model: Path) -> None:
    repo.mkdir(parents=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(dataset="dfew", root=str(dataset), fold=1)
    params["clip"]["model"] = str(clip_model.resolve())
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "bench"],
                ["git", "config", "user.email", "bench@example.com"], [sys.executable, "-m", "dvc", "init", "-q"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(cmd, repo)


def markdown(r: dict) -> str:
    f = r["folds"]
    return "\n".join([
        f"`folds --folds 1 2` on a DFEW-layout tree of {r['clips']} clips of {r['frames_per_clip']} aligned "
        f"{r['size']}x{r['size']} crops, CLIP `{r['clip_model']}`, {r['threads']} CPU threads "
        "(`python benchmarks/folds_cost.py`):", "",
        "| | seconds |", "|---|---|",
        f"| feature pass over every clip (once) | {f['feature_pass_s']:.1f} |",
        *(f"| training, fold {k} (the BAP ladder) | {s:.1f} |" for k, s in f["training_s"].items()),
        f"| **`folds`, wall, both folds** | **{f['wall_s']:.1f}** |",
        f"| the bound: the trainings + one feature pass | {f['bound_s']:.1f} |",
        f"| the pipeline per fold instead (face_crop + features + ladder stages of `dvc repro`) x 2 | "
        f"{r['per_fold_pipeline_s'] * 2:.1f} |", "",
        f"`folds` / bound = {f['wall_s'] / f['bound_s']:.2f}; `folds` / per-fold pipelines = "
        f"{f['wall_s'] / (2 * r['per_fold_pipeline_s']):.2f}. The folds train side by side on the Dask cluster "
        f"({f['workers']} workers), so the wall time can be below the sum of the trainings."])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser, ROOT / "reports/benchmarks/folds_cost.json", ROOT / "README.md")
    parser.add_argument("--clips-per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--clip-model", type=Path, default=ROOT / "models/clip_small")
    args = parser.parse_args(argv)
    if args.markdown_only:
        return republish(args.out, args.readme, "folds-cost", markdown)
    if not (args.clip_model / "config.json").exists():
        raise SystemExit(f"{args.clip_model} is not a CLIP folder: run `dvc repro pretrain_clip` first")
    import torch

    with tempfile.TemporaryDirectory(prefix="folds-cost-") as tmp:
        tmp = Path(tmp)
        clips = make_tree(tmp / "DFEW", args.clips_per_class, args.size, seed=0)
        scratch_repo(tmp / "repo", tmp / "DFEW", args.clip_model)
        start = time.perf_counter()
        run([sys.executable, "-m", "dvc", "repro", "train_stage3"], tmp / "repo")
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
    return publish(result, args.out, args.readme, "folds-cost", markdown)


if __name__ == "__main__":
    main()
