"""One BAP stage as one run: load the previous checkpoint, train, keep the val-best.

Example (CPU, after `dvc repro features`):
    python -m a3lign_dfer train --stage 1 --features data/features --out models/stage1 \
        --live reports/train/stage1
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from dvclive import Live

from a3lign_dfer.config import Params, to_dict
from a3lign_dfer.data.features import load_feature_set
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training import bap
from a3lign_dfer.training.checkpoint import load_checkpoint, save_checkpoint
from a3lign_dfer.training.trainer import fit


def _check_compatible(meta: dict, params: Params, init_dir: Path) -> None:
    if tuple(meta["spec"]["classes"]) != tuple(params.data.classes):
        raise ValueError(f"class set mismatch: {init_dir} has {meta['spec']['classes']}, "
                         f"params data.classes is {list(params.data.classes)}")
    if meta["clip_model"] != params.clip.model:
        raise ValueError(f"{init_dir} was trained on CLIP {meta['clip_model']!r}, params clip.model is "
                         f"{params.clip.model!r}; re-run from stage 1")


def run_stage(stage: int, params: Params, features_dir: Path, out_dir: Path, live_dir: Path,
              init_dir: Path | None = None, device: str = "cpu") -> dict:
    torch.manual_seed(params.base.seed + stage)  # new layers and positions draw from it: same seed, same model
    classes = tuple(params.data.classes)
    clip = FrozenCLIP.load(params.clip.model, device)
    train = load_feature_set(features_dir, "train", classes)
    val = load_feature_set(features_dir, "val", classes)
    if train.embed_dim != clip.embed_dim:
        raise ValueError(f"feature cache has dim {train.embed_dim} but CLIP {params.clip.model!r} has "
                         f"{clip.embed_dim}: rebuild the features stage")
    if stage == 1:
        model, plan = bap.stage1(params, clip)
    else:
        if init_dir is None:
            raise ValueError(f"stage {stage} starts from the stage {stage - 1} checkpoint: pass --init")
        previous, meta = load_checkpoint(init_dir)
        _check_compatible(meta, params, init_dir)
        if params.train.schedule == "all_at_once":
            return _hand_on(init_dir, out_dir, live_dir, stage)
        model, plan = (bap.stage2 if stage == 2 else bap.stage3)(params, previous)

    if live_dir.exists():
        shutil.rmtree(live_dir)
    start = time.perf_counter()
    with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None) as live:
        def log(row: dict) -> None:
            for key in ("train_loss", "val_loss", "val_war", "val_uar"):
                live.log_metric(key.replace("_", "/", 1), row[key])
            live.next_step()

        best, record = fit(model.to(device), clip, train, val, plan, params.train, params.base.seed + stage, log)
        live.summary = {"selected": record, "seconds": round(time.perf_counter() - start, 2)}
    save_checkpoint(best, out_dir, stage=stage, schedule=params.train.schedule, clip_model=params.clip.model,
                    selected=record, trainable=sorted(plan.trainable),
                    params={k: to_dict(getattr(params, k)) for k in ("model", "train", f"stage{stage}")})
    return record


def _hand_on(init_dir: Path, out_dir: Path, live_dir: Path, stage: int) -> dict:
    """all_at_once trains everything in stage 1; later stages pass its checkpoint on unchanged."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(init_dir, out_dir)
    note = {"selected": {"note": f"schedule all_at_once: stage {stage} trains nothing, checkpoint handed on"}}
    live_dir.mkdir(parents=True, exist_ok=True)
    (live_dir / "metrics.json").write_text(json.dumps(note, indent=2))
    (live_dir / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
    return note["selected"]
