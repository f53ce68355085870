"""One training stage as one run: load the previous checkpoint, train, keep the val-best of each phase.

At the end the stage writes its validation report (WAR, UAR, per-class recall,
shuffled-frame drop) into its metrics: hyperparameters are chosen on these, never
on test. Every phase but the last is also saved (`phase<i>/`), since Table 4
reports the intermediate depths (2|2) as rows of their own.

Example (CPU, after `dvc repro features`):
    python -m a3lign_dfer train --stage stage1 --features data/features --out models/stage1 \
        --live reports/train/stage1
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from dvclive import Live

from a3lign_dfer.config.schema import to_dict
from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.data.feature_cache import load_feature_set
from a3lign_dfer.errors import ConfigError
from a3lign_dfer.evaluation.report import split_report
from a3lign_dfer.model.checkpoint import (
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.report_files import TrainingSummary, from_dict, to_json
from a3lign_dfer.config import stage_table
from a3lign_dfer.training import bap


def run_stage(stage: str, params: TrainingParams, features_dir: Path, out_dir: Path, live_dir: Path,
              init_dir: Path | None = None, device: str = "cpu") -> TrainingSummary:
    stage_row = stage_table.stage(stage)
    classes = tuple(params.data.classes)
    previous = None
    if stage_row.starts_from:                   # the cheap checks first: a mismatch is a params mistake
        if init_dir is None:
            raise ValueError(f"{stage} starts from the {stage_row.starts_from} checkpoint: pass --init")
        previous, meta = load_checkpoint(init_dir, device)
        check_compatible(meta, classes, params.clip.model, init_dir)
    clip = FrozenCLIP.load(params.clip.model, device)
    train = load_feature_set(features_dir, "train", classes)
    val = load_feature_set(features_dir, "val", classes)
    if train.embed_dim != clip.embed_dim:
        raise ConfigError(f"feature cache has dim {train.embed_dim} but CLIP {params.clip.model!r} has "
                          f"{clip.embed_dim}: rebuild the features stage")

    if live_dir.exists():
        shutil.rmtree(live_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    start = time.perf_counter()
    with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None) as live:
        def log(row: dict) -> None:
            for key in ("train_loss", "val_loss", "val_war", "val_uar"):
                live.log_metric(key.replace("_", "/", 1), row[key])
            live.next_step()

        phases, plan = bap.train_stage(stage, params, clip, train, val, previous, log)
        seconds = round(time.perf_counter() - start, 2)
        final = phases[-1]
        report = split_report(final.model, clip, val, params.shuffle_check.seeds)
        spec = final.model.current_spec()
        summary = from_dict(TrainingSummary, {
            "stage": stage, "train_seed": params.train.seed, "selected": final.record,
            "layers": {"de_text": spec.de_text_layers, "de_video": spec.de_video_layers, "jas": spec.jas_layers},
            "plan": [{"epochs": p.epochs, "depth": p.depth} for p in plan.phases],
            "phases": [p.record for p in phases], "val": report, "seconds": seconds}, f"train {stage} summary")
        live.summary = to_json(summary)
    meta = {"stage": stage, "clip_model": params.clip.model, "train_seed": params.train.seed,
            "trainable": sorted(plan.trainable),
            "params": {k: to_dict(getattr(params, k)) for k in ("model", "train", stage_row.section)}}
    for i, phase in enumerate(phases[:-1], start=1):
        save_checkpoint(phase.model, out_dir / f"phase{i}", selected=phase.record, **meta)
    save_checkpoint(final.model, out_dir, selected=final.record, val=report, **meta)
    return summary
