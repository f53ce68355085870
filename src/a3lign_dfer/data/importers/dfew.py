"""DFEW: the official 5-fold split CSVs and the face-cropped 224x224 frame folders.

Layout under data.root:
    EmoLabel_DataSplit/train(single-labeled)/set_<fold>.csv   header `video_name,label`
    EmoLabel_DataSplit/test(single-labeled)/set_<fold>.csv
    Clip/clip_224x224/<video_name zero-padded to 5 digits>/    the clip's frames
Labels are 1-based in DFEW's order (ORDER) and mapped to data.classes by name.
"""
from __future__ import annotations

from pathlib import Path

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.data.importers.builder import ManifestBuilder, OfficialSplits

ORDER = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")   # DFEW labels 1..7
# Other names each DFEW label may have in data.classes.
NAMES = {"happy": ("happiness",), "sad": ("sadness",), "neutral": (), "angry": ("anger",), "surprise": ("surprised",),
         "disgust": ("disgusted",), "fear": ("fearful",)}
FOLDS = (1, 2, 3, 4, 5)
SPLIT_FILE = "EmoLabel_DataSplit/{split}(single-labeled)/set_{fold}.csv"
FRAMES = "Clip/clip_224x224"
FORMAT = "video_name,label (label 1-7)"


def _parse(text: str) -> tuple[str, str]:
    fields = [f.strip() for f in text.split(",")]
    if len(fields) != 2:
        raise ValueError(f"{len(fields)} comma-separated field(s), not 2")
    name, label = fields
    if not name.isdigit():
        raise ValueError(f"video_name {name!r} is not a number")
    if label.isdigit() and 1 <= int(label) <= len(ORDER):
        label = ORDER[int(label) - 1]
    return name.zfill(5), label


SPLITS = OfficialSplits("dfew", NAMES, FOLDS, SPLIT_FILE, FRAMES, FORMAT, _parse, header="video_name,label")


def import_dfew(root: Path, data: DataConfig) -> ManifestBuilder:
    return SPLITS.import_fold(root, data)
