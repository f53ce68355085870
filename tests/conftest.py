"""Shared fixtures: a tiny real CLIP saved with save_pretrained, tiny params, toy features."""
from __future__ import annotations

import os

for key, value in {"DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "GX_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ[key] = value

import a3lign_dfer  # noqa: E402,F401  (pins the numerical code paths before torch loads)
import contextlib  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from dataclasses import replace  # noqa: E402

from a3lign_dfer.config.params import load_params  # noqa: E402
from a3lign_dfer.data.feature_cache import FeatureSet, InMemoryFrames, save_feature_set  # noqa: E402
from a3lign_dfer.data.synthetic.controls import PROTOTYPES  # noqa: E402
from a3lign_dfer.data.synthetic.face import draw_face, sample_identity  # noqa: E402
from a3lign_dfer.data.synthetic.render import identity_rng  # noqa: E402
from a3lign_dfer.data.video_io import write_video  # noqa: E402
from a3lign_dfer.model.small_clip import build_small_clip, save_clip  # noqa: E402
from a3lign_dfer.orchestration.dvc_runner import run_dvc  # noqa: E402
from tiers import TIERS, mark_and_order  # noqa: E402

ROOT = Path(__file__).parents[1]
PARAMS = load_params(ROOT / "params.yaml")           # the one source of every default
CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
TINY_CLIP = replace(PARAMS.pretrain_clip, image_size=32, patch_size=8, width=32, layers=2, heads=2,
                    projection_dim=16)


@pytest.hookimpl(tryfirst=True)       # before `-m` deselects by the markers this adds
def pytest_collection_modifyitems(config, items):
    config.stash[TIERS] = mark_and_order(items)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "tiny_clip"
    save_clip(*build_small_clip(TINY_CLIP, seed=0), path)
    return path


@pytest.fixture(scope="session")
def scale():
    """The scale config of in-process stage calls: one 2-worker LocalCluster for the session (a cluster per
    call costs seconds) and small shards, so a few clips already make several shards."""
    import logging

    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        yield replace(PARAMS.scale, scheduler=cluster.scheduler_address, shard_size=2)


@pytest.fixture
def tiny_params(tiny_clip_dir):
    """Params small enough for a CPU unit test, pointing at the tiny CLIP."""
    def make(**sections):
        raw = {
            "clip": {"model": str(tiny_clip_dir)},
            "features": {"num_frames": 8},
            "model": {"sentences": 4, "tokens": 6, "heads": 2, "de_text_layers": 1},
            "train": {"batch_size": 16},
            "shuffle_check": {"seeds": [0, 1]},
            "stage1": {"epochs": 2},
            "stage2": {"layers": [1, 2], "epochs": [1, 1]},
            "stage2_text": {"layers": [2], "epochs": [1]},
            "stage3": {"init_layers": 1, "layers": [1, 2], "epochs": [1, 1]},
            "all_at_once": {"epochs": 2, "layers": 2},
        }
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return load_params(ROOT / "params.yaml", raw)
    return make


def toy_features(num_clips: int, dim: int = 16, frames: int = 12, views: int = 1, seed: int = 0) -> FeatureSet:
    """Clips of random frame features whose class shows in a per-class direction."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(CLASSES), dim))
    labels = rng.integers(0, len(CLASSES), size=num_clips)
    lengths = rng.integers(frames // 2, frames + 1, size=num_clips)
    feats = [rng.normal(size=(n, views, dim)) * 0.5 + directions[y] for y, n in zip(labels, lengths)]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(num_clips)],
                          "label_name": [CLASSES[y] for y in labels]})
    return FeatureSet(InMemoryFrames(torch.tensor(np.concatenate(feats), dtype=torch.float16), torch.tensor(offsets)),
                      torch.tensor(labels), clips)


def write_toy_cache(cache_dir, dim: int, sizes: dict[str, int]) -> None:
    """A feature cache in the real on-disk format, from toy features."""
    for i, (split, n) in enumerate(sizes.items()):
        data = toy_features(n, dim=dim, seed=i)
        save_feature_set(data.frames.feats, data.frames.offsets, data.clips, cache_dir, split)


# The whole pipeline in about a minute on one core: every stage runs, nothing is meaningful.
TINY_PIPELINE = {
    "synthetic": {"identities": {"train": 6, "val": 3, "test": 3}, "clips_per_identity": 3, "min_frames": 12,
                  "max_frames": 18, "workers": 1},
    "face_crop": {"size": 48, "workers": 1},
    "pretrain_clip": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "heads": 2,
                      "projection_dim": 16, "epochs": 1, "batch_size": 64},
    "features": {"num_frames": 8, "augmented_views": 1},
    "model": {"sentences": 4, "tokens": 6, "heads": 2, "de_text_layers": 1},
    "stage1": {"epochs": 2},
    "stage2": {"layers": [1, 2], "epochs": [1, 1]},
    "stage2_text": {"layers": [2], "epochs": [1]},
    "stage3": {"init_layers": 1, "layers": [1, 2], "epochs": [1, 1]},
    "all_at_once": {"epochs": 1, "layers": 2},
    "shuffle_check": {"seeds": [0, 1]},
    # 9 reference (val) clips instead of 240: the embedding's MMD spreads wider in distribution
    # (up to 0.10 over 8 seeds of 24-clip batches; README "Monitoring"), so its bar is wider.
    "drift": {"embedding": {"method": "mmd", "threshold": 0.2}},
}


FPS = PARAMS.synthetic.fps     # the synthetic benchmark's frame rate


def expression_video(path: Path, labels: list[str], seconds: float, seed: int = 3) -> Path:
    """One synthetic face, still in one place, holding each expression of `labels` for `seconds` in turn (None:
    the face gone, only the background)."""
    width, height = PARAMS.synthetic.width, PARAMS.synthetic.height
    ident = sample_identity(identity_rng(seed, 0))
    rng = np.random.default_rng(seed)
    background = np.clip(np.linspace(70, 170, width)[None, :, None] + np.zeros((height, 1, 3)), 0, 255)
    m = np.array([[55.0, 0, width / 2], [0, 55.0, height / 2]])

    def frames():
        for label in labels:
            for _ in range(round(seconds * FPS)):
                img = background.astype(np.uint8)
                if label is not None:
                    draw_face(img, ident, PROTOTYPES[label], m, 0.0)
                yield np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    write_video(frames(), path, fps=FPS)
    return path


def crops_of(path: Path, cfg):
    """A video's face track and the crops of every frame with a box, as the face_crop stage cuts them."""
    from a3lign_dfer.data.face_track import video_crops
    from a3lign_dfer.data.video_io import VideoReader

    with VideoReader(path) as video:
        tracker, crops = video_crops(video, cfg)
        held = [crop for _, crop in crops]
    return tracker.track(), held


def run_cmd(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def run_cli(argv: list[str], cwd: Path, capsys) -> str:
    """`python -m a3lign_dfer ARGV` in this process, in `cwd`, for tests that need its result rather than the
    process (exit codes, one-line errors and start-up imports stay subprocesses): its stdout; fails on an exit
    other than 0."""
    from a3lign_dfer.cli import main

    capsys.readouterr()
    with contextlib.chdir(cwd):
        code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"a3lign_dfer {' '.join(argv)} exited {code}:\n{out[-3000:]}\n{err[-3000:]}"
    return out


def make_tiny_repo(repo: Path) -> dict:
    """A fresh git + DVC repo with this project's dvc.yaml and src on tiny params, one commit, nothing run."""
    repo.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copy(ROOT / ".dvcignore", repo)
    shutil.copytree(ROOT / "data/feedback", repo / "data/feedback")    # data.extra_sources, a prepare dep
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY_PIPELINE.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd(["git", "init", "-q"], repo)
    run_cmd(["git", "config", "user.name", "test"], repo)
    run_cmd(["git", "config", "user.email", "test@example.com"], repo)
    run_dvc(["init", "-q"], repo)
    # DVCLive needs a commit to exist (it reads HEAD), as in any real clone.
    run_cmd(["git", "add", "-A"], repo)
    run_cmd(["git", "commit", "-qm", "init"], repo)
    return params


def stages_run(output: str) -> list[str]:
    """The stages a `dvc repro` output says it ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="session")
def prefect_backend():
    """A real Prefect backend for the session (its server takes ~15 s to start on an idle machine, minutes on a
    loaded one)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=240):
        yield


@pytest.fixture(scope="session")
def built_pipeline(prefect_backend, scale, tmp_path_factory):
    """The tiny pipeline's first run on a fresh git + DVC repo, by the Prefect pipeline flow (each stage a
    task running `dvc repro`, the sharded stages on the session's Dask cluster): the slowest thing the suite
    builds, built once. Returns (repo, params, the flow's state); tests work on copies (`copy_repo`)."""
    from flows.pipeline import pipeline as pipeline_flow

    repo = tmp_path_factory.mktemp("built") / "repo"
    params = make_tiny_repo(repo)
    state = pipeline_flow(str(repo), dask_scheduler=scale.scheduler, return_state=True)
    assert state.is_completed(), state.message
    return repo, params, state


def copy_repo(source: Path, dest: Path) -> Path:
    """A working copy of a git + DVC repo (workspace, git history, DVC cache): DVC re-hashes what it sees."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def pipeline(built_pipeline, tmp_path_factory):
    """A copy of the built pipeline, shared by the pipeline, serving and remote tests (which add to it):
    (repo, params, the stages the flow ran, in order)."""
    built, params, state = built_pipeline
    repo = copy_repo(built, tmp_path_factory.mktemp("pipeline") / "repo")
    return repo, params, state.result()["ran"]


# Drift batches: (camera knobs, the column that must alarm). New identities from the generator with the tiny
# pipeline's own settings, each shifted batch turning one knob.
DRIFT_SHIFTS = {"clean": ({}, None), "dark": ({"light_gain": 0.4}, "brightness"),
                "blur_noise": ({"extra_blur": 3.0, "noise_gain": 2.0}, "sharpness"),
                "small_faces": ({"face_scale": 0.6}, "face_size")}


@pytest.fixture(scope="session")
def drift_batches(built_pipeline, tmp_path_factory) -> dict[str, Path]:
    """The DRIFT_SHIFTS batches (8 identities x 3 clips each), rendered once for the drift command's tests and
    the monitor flow's; blur_noise also holds an unreadable file. Tests only read them."""
    from a3lign_dfer.monitoring.batches import make_batch

    repo, params, _ = built_pipeline
    synthetic = load_params(repo / "params.yaml").synthetic
    root = tmp_path_factory.mktemp("drift_batches")
    for i, (name, (knobs, _)) in enumerate(DRIFT_SHIFTS.items()):
        make_batch(root / name, replace(synthetic, **knobs), tuple(params["data"]["classes"]), 101 + i, 8, 3)
    (root / "blur_noise/videos/broken.mp4").write_text("not a video")      # a bad file does not stop the report
    return {name: root / name for name in DRIFT_SHIFTS}


def tiny_jas_model(clip_dir):
    """(frozen tiny CLIP, an all-at-once joint model on it whose JAS is not the identity): what the export
    and TensorRT tests put through the serving graph."""
    from a3lign_dfer.model.clip_backbone import FrozenCLIP
    from a3lign_dfer.training import bap

    clip = FrozenCLIP.load(str(clip_dir))
    params = load_params(ROOT / "params.yaml", {"clip": {"model": str(clip_dir)}, "features": {"num_frames": 8},
                                                "model": {"sentences": 4, "tokens": 6, "heads": 2,
                                                          "de_text_layers": 1},
                                                "all_at_once": {"layers": 2}})
    torch.manual_seed(0)
    model, _ = bap.all_at_once_joint(params, clip, None)
    with torch.no_grad():
        for p in model.jas.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return clip, model


@pytest.fixture(scope="session")
def tiny_export(tiny_clip_dir, tmp_path_factory):
    """tiny_jas_model exported once for the export and INT8 tests: its CLIP, model and DeployModel, a folder
    holding model.onnx and the split graphs, and those graphs by name (`model`, `image_encoder`, `head`). Tests
    only read the folder (those that add files work on a copy)."""
    from types import SimpleNamespace

    from a3lign_dfer.export.onnx_graph import export_onnx, export_split
    from a3lign_dfer.inference.deploy_model import DeployModel

    clip, model = tiny_jas_model(tiny_clip_dir)
    deploy = DeployModel(clip, model)
    folder = tmp_path_factory.mktemp("tiny_export")
    graphs = {"model": export_onnx(deploy, folder / "model.onnx", model.spec.frames, clip.image_spec.size),
              **export_split(deploy, folder, model.spec.frames, clip.image_spec.size)}
    return SimpleNamespace(clip=clip, model=model, deploy=deploy, folder=folder, graphs=graphs)
