"""Every mistake a user can make in params or inputs is one line: the key or file, what to do, exit 2.

Each case is a real command in a scratch folder; A3LIGN_DEBUG=1 brings the traceback back.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from a3lign_dfer.data import manifest
from a3lign_dfer.errors import DEBUG_ENV
from a3lign_dfer.model.a3lign import A3lignDFER, ModelSpec
from a3lign_dfer.model.checkpoint import save_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _params(folder: Path, **sections) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, values in sections.items():
        raw[name] = {**raw[name], **values} if isinstance(values, dict) else values
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _empty_manifest(path: Path) -> None:
    manifest.write(pd.DataFrame(columns=["clip_id", "path", "label_idx", "label_name", "split", "dataset", "fold",
                                         "num_frames"]), path)


@dataclass(frozen=True)
class Mistake:
    name: str
    argv: list[str]                   # after `python -m a3lign_dfer`
    names: tuple[str, ...]            # what the line must name (the key or the file, and what to do)
    env: tuple[tuple[str, str], ...] = ()


def _captions(tmp: Path) -> Mistake:
    """A dataset of real videos with the default clip.model (the small CLIP that only synthetic data trains)."""
    _params(tmp, data={"dataset": "dfew", "root": str(tmp)})
    _empty_manifest(tmp / "crops" / "manifest.parquet")
    (tmp / "raw").mkdir()
    return Mistake("missing captions", ["pretrain-clip", "--crops", "crops", "--raw", "raw", "--out",
                                        "models/clip_small", "--metrics", "m.json"],
                   ("captions.parquet missing", "set clip.model to a pretrained CLIP"))


def _unknown_dataset(tmp: Path) -> Mistake:
    _params(tmp, data={"dataset": "affwild2", "root": str(tmp)})
    return Mistake("unknown dataset", ["prepare", "--out", "raw"], ("data.dataset 'affwild2' has no importer",
                                                                    "known: synthetic, dfew"))


def _missing_root(tmp: Path) -> Mistake:
    _params(tmp, data={"dataset": "dfew", "root": str(tmp / "DFEW")})
    return Mistake("missing data.root", ["prepare", "--out", "raw"], (f"data.root {tmp / 'DFEW'} is not a folder",
                                                                      "point data.root at the dfew dataset"))


def _class_mismatch(tmp: Path) -> Mistake:
    """Stage 2 from a stage-1 checkpoint trained on three classes, with params listing the default seven."""
    spec = ModelSpec(classes=("happy", "sad", "neutral"), sentences=1, tokens=1, text_width=8, embed_dim=8, frames=4,
                     heads=2, mlp_ratio=2, dropout=0.0, temperature=0.07, de_text_layers=1)
    save_checkpoint(A3lignDFER(spec), tmp / "stage1", stage="stage1", clip_model="models/clip_small")
    _params(tmp)
    return Mistake("class set vs checkpoint", ["train", "--stage", "stage2", "--features", "features", "--init",
                                               "stage1", "--out", "stage2", "--live", "live"],
                   ("class set mismatch", "data.classes", "re-run from stage 1"))


def _unknown_key(tmp: Path) -> Mistake:
    _params(tmp, train={"learning_rate": 0.1})
    return Mistake("unknown params key", ["train", "--stage", "stage1", "--features", "features", "--out", "s1",
                                         "--live", "live"],
                   ("params.yaml: unknown key(s) ['learning_rate'] in 'train'", "known:"))


def _missing_clip(tmp: Path) -> Mistake:
    _params(tmp, clip={"model": str(tmp / "clip-vit-b32")})
    return Mistake("missing clip.model", ["train", "--stage", "stage1", "--features", "features", "--out", "s1",
                                          "--live", "live"],
                   (f"could not load CLIP from '{tmp / 'clip-vit-b32'}' (params clip.model)", "save_pretrained"))


def _scheduler(tmp: Path) -> Mistake:
    address = f"tcp://127.0.0.1:{_free_port()}"
    _params(tmp, scale={"connect_timeout": 2})
    _empty_manifest(tmp / "raw" / "manifest.parquet")
    return Mistake("unreachable scheduler", ["face-crop", "--raw", "raw", "--out", "crops", "--metrics", "m.json"],
                   (f"the Dask scheduler {address}", "did not answer", "run on a LocalCluster"),
                   (("A3LIGN_DASK_SCHEDULER", address),))


def _missing_artifact_file(tmp: Path) -> Mistake:
    (tmp / "deploy").mkdir()
    (tmp / "clip.mp4").write_bytes(b"")
    _params(tmp)
    return Mistake("missing artifact file", ["predict", "clip.mp4", "--deploy", "deploy"],
                   ("deploy is not a deployment artifact: no manifest.json", "run the export stage"))


def _missing_params(tmp: Path) -> Mistake:
    return Mistake("missing params file", ["--params", "nowhere.yaml", "prepare", "--out", "raw"],
                   ("params file not found: nowhere.yaml",))


MISTAKES = [_captions, _unknown_dataset, _missing_root, _class_mismatch, _unknown_key, _missing_clip, _scheduler,
            _missing_artifact_file, _missing_params]


def _run(argv: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "a3lign_dfer", *argv], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("make", MISTAKES, ids=lambda make: make.__name__.strip("_"))
def test_a_user_mistake_is_one_line_naming_the_key_or_file(make, tmp_path):
    mistake = make(tmp_path)
    done = _run(mistake.argv, tmp_path, dict(mistake.env))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    command = (mistake.argv[2:] if mistake.argv[0] == "--params" else mistake.argv)[0]
    assert lines[0].startswith(f"a3lign_dfer {command}: error: "), lines[0]
    for part in mistake.names:
        assert part in lines[0], (part, lines[0])


def test_the_debug_variable_brings_the_traceback_back(tmp_path):
    mistake = _unknown_dataset(tmp_path)
    done = _run(mistake.argv, tmp_path, {DEBUG_ENV: "1"})
    assert done.returncode != 0 and "Traceback (most recent call last)" in done.stderr
    assert "ConfigError: data.dataset 'affwild2' has no importer" in done.stderr
