"""The README results block (`blocks.BLOCKS["results"]`), rendered from what the pipeline and the seeds command
wrote. Model numbers come from reports/seeds/summary.json (mean +- std over training seeds), never from a single
run; `python -m a3lign_research results` re-renders it.
"""
from __future__ import annotations

import json
from pathlib import Path

from a3lign_dfer.config.stage_table import STAGES
from a3lign_dfer.report_files import EVALUATION, FACE_CROP, FEATURES, PRETRAIN_CLIP, SHUFFLE_CHECK, training
from a3lign_research.seeds import summary_markdown


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _as_a_seed(run, summary: dict) -> str:
    """Whether the workspace run is, number for number, the same seed's run in the table (same code and CPU)."""
    final, seeds = summary["final"], summary["seeds"]
    if run.train_seed in seeds:
        i = seeds.index(run.train_seed)
        if (final["uar"]["values"][i], final["war"]["values"][i]) == (run.uar, run.war):
            return f"the same numbers as seed {run.train_seed} of the table above: one draw of its spread"
    return ("not the numbers of any seed in the table above: another CPU or code version, so it is no draw of "
            "that spread")


def results_markdown(reports: Path) -> str:
    seeds = reports / "seeds/summary.json"
    if not seeds.exists():
        raise FileNotFoundError(f"{seeds} missing: run `python -m a3lign_research seeds` first")
    crop, clip, feats = (FACE_CROP.read(reports), PRETRAIN_CLIP.read(reports), FEATURES.read(reports))
    run, shuffle = EVALUATION.read(reports), SHUFFLE_CHECK.read(reports)
    absent = [f"reports/{c.path}" for c, r in ((FACE_CROP, crop), (PRETRAIN_CLIP, clip), (FEATURES, feats),
                                               (EVALUATION, run), (SHUFFLE_CHECK, shuffle)) if r is None]
    if absent:
        raise FileNotFoundError(f"{absent} missing: run `dvc repro` first")
    data = (f"Face crop: {crop.accepted}/{crop.videos} videos kept, detection rate "
            f"{_pct(crop.detection_rate)}%, {crop.frames_per_second:.0f} frames/s. ")
    if not clip.skipped:
        data += (f"Small CLIP zero-shot on val frames showing a class prompt: accuracy "
                 f"{_pct(clip.zero_shot_frame_accuracy)}%, UAR {_pct(clip.zero_shot_frame_uar)}% "
                 f"(UAR before pretraining {_pct(clip.zero_shot_frame_uar_before)}%, "
                 f"chance {_pct(clip.zero_shot_chance)}%). ")
    data += f"Feature cache: {feats.images_per_second:.0f} images/s."
    timed = {"face_crop": crop.seconds, "pretrain_clip": clip.seconds, "features": feats.seconds}
    timed |= {row.name: report.seconds for row in STAGES if (report := training(row.name).read(reports))}
    data += (" Stage times of this workspace's last run (`seconds` in each metrics file; "
             "the other stages record none): " + ", ".join(
                 f"{name} {seconds:.0f} s" for name, seconds in timed.items() if seconds is not None)
             + f"; {sum(s for s in timed.values() if s is not None) / 60:.1f} min together.")
    summary = json.loads(seeds.read_text())
    workspace = (f"This workspace's own `dvc repro` (train.seed {run.train_seed}, the run dvc.lock records; "
                 f"{_as_a_seed(run, summary)}): final model test WAR {_pct(run.war)}%, UAR {_pct(run.uar)}%, "
                 f"shuffled-frame UAR drop {_pct(shuffle.shuffled.uar_drop)} points (reports/eval, reports/shuffle).")
    return summary_markdown(summary) + "\n\n" + workspace + "\n\n" + data

