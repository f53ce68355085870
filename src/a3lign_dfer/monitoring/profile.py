"""The reference profile: what the deployed model sees and says on the validation clips.

Written by the export stage into models/deploy/drift/, so the drift command needs
nothing but the artifact (like `predict`), and the manifest's sha256 list covers it:

  pca.safetensors    PCA of the clip embedding, fitted on the training clips of the
                     feature cache (the same CLIP features the graph computes)
  reference.parquet  one row per validation clip: clip_id, path (relative to data.root),
                     emb_00.., crop statistics, predicted class, confidence
  profile.json       column groups, thresholds (params.yaml `drift`), PCA and reference
                     sizes, the reference's clips per kind (video, frames), validation
                     clips that could not be read

Videos and frame folders (datasets that ship aligned face crops) both go through the
serving path (inference.video_input), so a later batch of either kind is read the way
its reference was; the drift summary states the caveat when the kinds differ.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from a3lign_dfer.config.deploy import DriftConfig
from a3lign_dfer.config.schema import to_dict
from a3lign_dfer.data.feature_cache import load_feature_set
from a3lign_dfer.data.manifest import kinds
from a3lign_dfer.errors import MissingInput
from a3lign_dfer.inference.backends import Backend
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_dfer.monitoring.columns import (
    PREDICTIONS,
    STATS,
    embedding_columns,
    video_columns,
)
from a3lign_dfer.monitoring.pca import Pca
from a3lign_dfer.monitoring.rules import thresholds_from_dict
from a3lign_dfer.monitoring.summary import kind_counts

PROFILE_DIR = "drift"


def training_embeddings(features_dir: Path, classes: tuple[str, ...], frames: int) -> np.ndarray:
    """(clips, D) the graph's `embedding` of every training clip, from the feature cache: the mean of the
    L2-normalised features of the segment-centre frames (view 0, the unaugmented crops)."""
    train = load_feature_set(features_dir, "train", classes)
    out = []
    for start in range(0, len(train), 256):          # a batch at a time: the split stays on disk
        x = train.gather(np.arange(start, min(start + 256, len(train))), frames, train=False)
        out.append((x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)).mean(1).numpy())
    return np.concatenate(out) if out else np.zeros((0, train.embed_dim), np.float32)


def write_reference(out_dir: Path, run: Backend, spec: PreprocessSpec, classes: tuple[str, ...], raw: pd.DataFrame,
                    data_root: Path, features_dir: Path, cfg: DriftConfig) -> dict:
    """out_dir/drift/{pca.safetensors, reference.parquet, profile.json}; returns a summary for the manifest."""
    val = raw[raw["split"] == "val"]
    if val.empty:
        return {"status": "skipped", "reason": "no validation clips to build the reference from"}
    train = training_embeddings(features_dir, classes, spec.frames)
    pca = Pca.fit(train, cfg.pca_components)
    table, bad = video_columns([data_root / p for p in val["path"]], run, spec, classes, pca,
                               spec.face_crop.workers, desc="drift reference (val clips)")
    if table.empty:
        raise RuntimeError(f"drift reference: none of the {len(val)} validation clips could be read: {bad[:3]}")
    by_path = dict(zip((str(data_root / p) for p in val["path"]), zip(val["clip_id"], val["path"])))
    table.insert(0, "clip_id", [by_path[p][0] for p in table["path"]])
    kind_of = dict(zip(val["clip_id"], kinds(val)))
    table["path"] = [by_path[p][1] for p in table["path"]]        # relative: the artifact hashes the same anywhere
    folder = out_dir / PROFILE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    pca.save(folder / "pca.safetensors")
    table.to_parquet(folder / "reference.parquet", index=False)
    profile = {
        "columns": {"embedding": embedding_columns(len(pca.components)), "stats": list(STATS),
                    "predictions": list(PREDICTIONS)},
        "thresholds": to_dict(cfg),
        "reference": {"split": "val", "clips": len(table), "kinds": kind_counts(map(kind_of.get, table["clip_id"])),
                      "unreadable": [
            {"path": str(Path(b["path"]).relative_to(data_root)) if Path(b["path"]).is_relative_to(data_root)
             else b["path"], "reason": b["reason"]} for b in bad]},
        "pca": {"fitted_on": "training clips of the feature cache", "clips": len(train),
                "embedding_dim": int(train.shape[1]), "components": len(pca.components),
                "explained_variance": round(float(pca.explained.sum()), 4)},
    }
    (folder / "profile.json").write_text(json.dumps(profile, indent=2))
    return {"status": "written", "reference_clips": len(table), "reference_kinds": profile["reference"]["kinds"],
            "unreadable": len(bad),
            "pca_components": len(pca.components), "pca_explained_variance": profile["pca"]["explained_variance"]}


@dataclass(frozen=True)
class DriftProfile:
    """The reference profile as saved in a deployment artifact."""

    pca: Pca
    reference: pd.DataFrame
    embedding: list[str]
    stats: list[str]
    thresholds: DriftConfig
    meta: dict

    @classmethod
    def load(cls, deploy_dir: Path) -> "DriftProfile":
        folder = Path(deploy_dir) / PROFILE_DIR
        if not (folder / "profile.json").exists():
            raise MissingInput(f"{folder / 'profile.json'} missing: this artifact has no drift reference "
                                    "profile (exported before the monitor existed, or from frame-folder data)")
        meta = json.loads((folder / "profile.json").read_text())
        raw = meta["thresholds"]
        thresholds = thresholds_from_dict(raw)
        return cls(Pca.load(folder / "pca.safetensors"), pd.read_parquet(folder / "reference.parquet"),
                   meta["columns"]["embedding"], meta["columns"]["stats"], thresholds, meta)
