"""Every training step runs on CUDA when there is one (CI has none: these skip there)."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from a3lign_dfer.model.checkpoint import load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training.pretrain_clip import pretrain_small_clip
from a3lign_dfer.training.run_stage import run_stage
from conftest import CLASSES, TINY_CLIP, write_toy_cache

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (none visible to torch)")]


def test_pretrain_clip_runs_on_cuda(tmp_path):
    rng = np.random.default_rng(0)
    rows, captions = [], []
    for i in range(8):
        clip_dir = tmp_path / "crops" / f"c{i}"
        clip_dir.mkdir(parents=True)
        for t in range(4):
            cv2.imwrite(str(clip_dir / f"{t:05d}.jpg"), rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
            captions.append((f"c{i}", t, "a face with a smile" if i % 2 else "a face with a neutral expression"))
        rows.append({"clip_id": f"c{i}", "path": f"c{i}", "split": "train" if i < 6 else "val"})
    prompts = {c: "a face with a neutral expression" for c in CLASSES} | {"happy": "a face with a smile"}
    metrics = pretrain_small_clip(pd.DataFrame(rows), tmp_path / "crops",
                                  pd.DataFrame(captions, columns=["clip_id", "frame_idx", "caption"]), prompts,
                                  TINY_CLIP, 0, tmp_path / "clip", device="cuda")
    assert metrics["device"] == "cuda" and (tmp_path / "clip" / "config.json").exists()


def test_a_training_stage_runs_on_cuda(tiny_params, tiny_clip_dir, tmp_path):
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    write_toy_cache(tmp_path / "features", clip.embed_dim, {"train": 24, "val": 14})
    summary = run_stage("stage1", tiny_params(), tmp_path / "features", tmp_path / "s1", tmp_path / "live", None,
                        device="cuda")
    assert summary["val"]["num_samples"] == 14
    model, meta = load_checkpoint(tmp_path / "s1")
    assert meta["stage"] == "stage1" and json.loads((tmp_path / "live" / "metrics.json").read_text())["stage"] == "stage1"
