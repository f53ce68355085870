"""FERV39k: the official All_scenes train/test setup and the face-cropped frame folders.

Layout under data.root:
    4_setups/All_scenes/train_All.csv, test_All.csv   lines `Scene/Emotion/NNNN Emotion` (space-separated)
    2_ClipsforFaceCrop/Scene/Emotion/NNNN/            the clip's frames
One fold only (data.fold 1). Labels are names, mapped to data.classes by name.
"""
from __future__ import annotations

from pathlib import Path

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.data.importers.builder import ManifestBuilder
from a3lign_dfer.data.importers.labels import ClassMap
from a3lign_dfer.errors import ConfigError

# FERV39k's labels and the other names each may have in data.classes.
NAMES = {"angry": ("anger",), "disgust": ("disgusted",), "fear": ("fearful",), "happy": ("happiness",),
         "neutral": (), "sad": ("sadness",), "surprise": ("surprised",)}
SPLIT_FILE = "4_setups/All_scenes/{split}_All.csv"
FRAMES = "2_ClipsforFaceCrop"
FORMAT = "Scene/Emotion/NNNN Emotion"


def _parse(text: str) -> tuple[str, str]:
    fields = text.rsplit(maxsplit=1)
    if len(fields) != 2:
        raise ValueError("not a clip path and a label separated by a space")
    clip, label = fields
    clip = clip.strip().strip("/")
    if len(Path(clip).parts) < 2:
        raise ValueError(f"clip path {clip!r} has no folders (Scene/Emotion/NNNN)")
    return clip, label


def import_ferv39k(root: Path, data: DataConfig) -> ManifestBuilder:
    if data.fold != 1:
        raise ConfigError(f"data.fold is {data.fold}; FERV39k has one official split (data.fold: 1)")
    builder = ManifestBuilder("ferv39k", 1, root, ClassMap("ferv39k", NAMES, data.classes))
    for split in ("train", "test"):
        path = root / SPLIT_FILE.format(split=split)
        for where, (clip, label) in builder.annotation(path, FORMAT, _parse):
            builder.add(clip.replace("/", "__"), split, label, f"{FRAMES}/{clip}", "frames", where)
    return builder
