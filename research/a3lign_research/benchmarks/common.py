"""What several benchmarks share: the two CLIPs they time, the final model's architecture, a DFEW-layout tree
and a scratch DVC repository, and a load level against a running service."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import httpx
import torch
import yaml
from transformers import CLIPConfig, CLIPModel

from a3lign_dfer.config.params import load_params
from a3lign_dfer.data.face_track import crop_square
from a3lign_dfer.data.synthetic import render_clip
from a3lign_dfer.model.a3lign import A3lignDFER, ModelSpec
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.model.image_spec import ImageSpec
from a3lign_dfer.model.small_clip import CLIP_MEAN, CLIP_STD, build_small_clip
from a3lign_dfer.model.tokenizer import build_clip_tokenizer
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_research import ROOT

FRAMES = 16
CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")   # DFEW labels 1..7, in order


def vit_b32() -> FrozenCLIP:
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(projection_dim=512))       # ViT-B/32 text and vision towers
    return FrozenCLIP(model, build_clip_tokenizer(), ImageSpec(224, CLIP_MEAN, CLIP_STD))


def embedded() -> FrozenCLIP:
    model, tokenizer, processor = build_small_clip(load_params(ROOT / "params.yaml").pretrain_clip, seed=0)
    return FrozenCLIP(model, tokenizer, ImageSpec(processor.crop_size["height"], CLIP_MEAN, CLIP_STD))


def final_model(clip: FrozenCLIP) -> A3lignDFER:
    """The architecture stage 3 ends with: MAT (7, 16, 64, W) and a 4-layer JAS."""
    spec = ModelSpec(classes=CLASSES, sentences=16, tokens=64, text_width=clip.text_width, embed_dim=clip.embed_dim,
                     frames=FRAMES, heads=4, mlp_ratio=4, dropout=0.1, temperature=0.01, text_encoder="jas",
                     video_encoder="jas", jas_layers=4)
    torch.manual_seed(0)
    model = A3lignDFER(spec).eval()
    with torch.no_grad():
        model.mat.normal_(std=0.02)
    return model


def make_tree(root: Path, clips_per_class: int, size: int, seed: int) -> int:
    """Clip i (1-based) shows DFEW label 1 + (i-1) % 7 and is a test clip of fold 1 + ((i-1) // 7) % 5."""
    cfg = load_params(ROOT / "params.yaml").synthetic
    n = clips_per_class * len(CLASSES)
    rows = {fold: {"train": [], "test": []} for fold in range(1, 6)}
    for i in range(1, n + 1):
        label = 1 + (i - 1) % 7
        clip = render_clip(replace(cfg), CLASSES[label - 1], seed, i, i)
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
    shutil.copytree(ROOT / "data/feedback", repo / "data/feedback")    # data.extra_sources, a prepare dep
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(dataset="dfew", root=str(dataset), fold=1)
    params["clip"]["model"] = str(clip_model.resolve())
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "bench"],
                ["git", "config", "user.email", "bench@example.com"]):
        run(cmd, repo)
    run_dvc(["init", "-q"], repo)
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(cmd, repo)


def load_level(url: str, uploads: list[tuple[str, bytes, str]], concurrency: int) -> tuple[list, float]:
    """All uploads at `concurrency` in flight: (latency, answer right) per request, and the wall time."""
    def send(upload):
        name, body, label = upload
        start = time.perf_counter()
        response = httpx.post(f"{url}/predict", files={"file": (name, body)}, timeout=600)
        ok = response.status_code == 200 and response.json()["label"] == label
        return time.perf_counter() - start, ok

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(send, uploads))
    return results, time.perf_counter() - start


def summarize(rounds: list[tuple[list, float]]) -> dict:
    results = [r for done, _ in rounds for r in done]
    latencies = sorted(t for t, _ in results)
    return {"requests": len(results), "rounds": len(rounds), "wrong_or_failed": sum(not ok for _, ok in results),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
            "clips_per_s": round(len(results) / sum(wall for _, wall in rounds), 2)}
