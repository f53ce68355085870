"""Regenerate the README results block from what the pipeline and the seeds command wrote.

The block lives between two marker comments so the numbers in the README are
always the ones on disk: `python -m a3lign_dfer results --readme README.md`. Model
numbers come from reports/seeds/summary.json (mean +- std over training seeds),
never from a single run.
"""
from __future__ import annotations

import json
from pathlib import Path

from a3lign_dfer.evaluation.multi_seed import summary_markdown
from a3lign_dfer.reporting.readme_blocks import replace_block

def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def results_markdown(reports: Path) -> str:
    seeds = reports / "seeds/summary.json"
    if not seeds.exists():
        raise FileNotFoundError(f"{seeds} missing: run `python -m a3lign_dfer seeds` first")
    crop = json.loads((reports / "face_crop.json").read_text())
    clip = json.loads((reports / "pretrain_clip.json").read_text())
    feats = json.loads((reports / "features.json").read_text())
    data = (f"Face crop: {crop['accepted']}/{crop['videos']} videos kept, detection rate "
            f"{_pct(crop['detection_rate'])}%, {crop['frames_per_second']:.0f} frames/s. ")
    if not clip.get("skipped"):
        data += (f"Small CLIP zero-shot on val frames showing a class prompt: accuracy "
                 f"{_pct(clip.get('zero_shot_frame_accuracy'))}%, UAR {_pct(clip.get('zero_shot_frame_uar'))}% "
                 f"(UAR before pretraining {_pct(clip.get('zero_shot_frame_uar_before'))}%, "
                 f"chance {_pct(clip.get('zero_shot_chance'))}%). ")
    data += f"Feature cache: {feats['images_per_second']:.0f} images/s."
    run = json.loads((reports / "eval/metrics.json").read_text())
    drop = json.loads((reports / "shuffle/metrics.json").read_text())["shuffled"]["uar_drop"]
    workspace = (f"This workspace's own `dvc repro` (train.seed {run['train_seed']}, one draw of the spread above): "
                 f"final model test WAR {_pct(run['war'])}%, UAR {_pct(run['uar'])}%, shuffled-frame UAR drop "
                 f"{_pct(drop)} points (reports/eval, reports/shuffle).")
    return summary_markdown(json.loads(seeds.read_text())) + "\n\n" + workspace + "\n\n" + data


def update_readme(readme: Path, reports: Path) -> None:
    replace_block(readme, "results", results_markdown(reports))
