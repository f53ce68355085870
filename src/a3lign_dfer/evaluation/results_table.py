"""Regenerate the README results table from the metrics files `dvc repro` wrote.

The table lives between two marker comments so the numbers in the README are
always the ones on disk: `python -m a3lign_dfer results --readme README.md`.
"""
from __future__ import annotations

import json
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def results_markdown(reports: Path) -> str:
    ev = json.loads((reports / "eval/metrics.json").read_text())
    crop = json.loads((reports / "face_crop.json").read_text())
    clip = json.loads((reports / "pretrain_clip.json").read_text())
    feats = json.loads((reports / "features.json").read_text())
    shuffled = ev["shuffled"]
    lines = [
        f"Test split, {ev['num_test_clips']} clips, 7 classes (chance UAR {_pct(ev['chance_uar'])}%); "
        f"CLIP `{ev['clip_model']}`, schedule `{ev['schedule']}`. Checkpoints chosen on val.",
        "",
        "| BAP stage | video path | WAR % | UAR % |",
        "|---|---|---|---|",
    ]
    names = {"stage1": "1: MAT + DE_text, video = mean", "stage2": "2: + DE_video (grown)",
             "stage3": "3: JAS (shared, grown) + MAT"}
    for stage, m in ev["stages"].items():
        lines.append(f"| {names.get(stage, stage)} | {m['video_encoder']} | {_pct(m['war'])} | {_pct(m['uar'])} |")
    lines += [
        "",
        "| Test frame order (final model) | WAR % | UAR % |",
        "|---|---|---|",
        f"| normal | {_pct(ev['war'])} | {_pct(ev['uar'])} |",
        f"| shuffled (mean of {len(shuffled['runs'])} seeds) | {_pct(shuffled['war'])} "
        f"(-{_pct(shuffled['war_drop'])}) | {_pct(shuffled['uar'])} (-{_pct(shuffled['uar_drop'])}) |",
        "",
        "| Per-class test recall % | " + " | ".join(ev["per_class_recall"]) + " |",
        "|---" * (len(ev["per_class_recall"]) + 1) + "|",
        "| final model | " + " | ".join(_pct(v) for v in ev["per_class_recall"].values()) + " |",
        "",
        f"Face crop: {crop['accepted']}/{crop['videos']} videos kept, detection rate "
        f"{_pct(crop['detection_rate'])}%, {crop['frames_per_second']:.0f} frames/s. "
        f"Small CLIP zero-shot on val frames showing a class prompt: accuracy "
        f"{_pct(clip.get('zero_shot_frame_accuracy'))}%, UAR {_pct(clip.get('zero_shot_frame_uar'))}% "
        f"(UAR before pretraining {_pct(clip.get('zero_shot_frame_uar_before'))}%, "
        f"chance {_pct(clip.get('zero_shot_chance'))}%). "
        f"Feature cache: {feats['images_per_second']:.0f} images/s.",
    ]
    return "\n".join(lines)


def update_readme(readme: Path, reports: Path) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{results_markdown(reports)}\n{END}{tail}")
