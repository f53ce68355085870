"""MAFW: the official single-label, no-caption 5-fold split and the face frame folders.

Layout under data.root:
    Train & Test Set/single/no_caption/set_<fold>/train.txt, test.txt   lines `00025.mp4 anger`
    data/faces/<id>/                                                    the clip's frames (id: 00025)
11 classes; MAFW's official order is ORDER, but codebases disagree on it, so labels are
names, mapped to data.classes by name (set data.classes to the 11 classes to use them all).
"""
from __future__ import annotations

from pathlib import Path

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.data.importers.builder import ManifestBuilder, OfficialSplits

ORDER = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt", "anxiety",
         "helplessness", "disappointment")
# Other names each MAFW label may have in data.classes (DFEW-style names).
NAMES = {"anger": ("angry",), "disgust": ("disgusted",), "fear": ("fearful",), "happiness": ("happy",),
         "neutral": (), "sadness": ("sad",), "surprise": ("surprised",), "contempt": (), "anxiety": (),
         "helplessness": (), "disappointment": ()}
FOLDS = (1, 2, 3, 4, 5)
SPLIT_FILE = "Train & Test Set/single/no_caption/set_{fold}/{split}.txt"
FRAMES = "data/faces"
FORMAT = "00025.mp4 anger"


def _parse(text: str) -> tuple[str, str]:
    fields = text.split()
    if len(fields) != 2:
        raise ValueError(f"{len(fields)} space-separated field(s), not 2")
    name, label = fields
    clip_id = Path(name).stem
    if not clip_id:
        raise ValueError(f"no clip id in {name!r}")
    return clip_id, label


SPLITS = OfficialSplits("mafw", NAMES, FOLDS, SPLIT_FILE, FRAMES, FORMAT, _parse)


def import_mafw(root: Path, data: DataConfig) -> ManifestBuilder:
    return SPLITS.import_fold(root, data)
