"""The validate stage: a Great Expectations suite on the crops manifest and the crops on disk.

Real GE runs on a small crops folder of real JPEGs: good data passes and writes Data Docs;
each kind of bad data fails with a message naming the expectation and the offending clip.
"""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PARAMS, ROOT

from a3lign_dfer.cli import main
from a3lign_dfer.config.data import ValidateConfig
from a3lign_dfer.data import manifest
from a3lign_dfer.data.validation import ValidationFailed, validate_crops

CLASSES = PARAMS.data.classes
CFG = ValidateConfig(min_clip_detection_rate=0.5, min_train_clips_per_class=1)
# clip_id: (split, label, identity, frames); every class in train, identities split-disjoint.
CLIPS = {f"tr{i}": ("train", c, i // 2, 3) for i, c in enumerate(CLASSES)}
CLIPS |= {"va0": ("val", "happy", 10, 2), "va1": ("val", "sad", 10, 4), "va2": ("val", "fear", 11, 3),
          "te0": ("test", "angry", 20, 3), "te1": ("test", "disgust", 20, 2), "te2": ("test", "happy", 21, 1)}


def make_crops(root):
    """A crops folder as face_crop writes it: frames/<clip_id>/00000.jpg..., manifest.parquet."""
    rng = np.random.default_rng(0)
    rows = []
    for clip_id, (split, label, identity, frames) in CLIPS.items():
        folder = root / "frames" / clip_id
        folder.mkdir(parents=True)
        for t in range(frames):
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        rows.append({"dataset": "test", "fold": 0, "split": split, "clip_id": clip_id, "path": f"frames/{clip_id}",
                     "num_frames": frames, "label_idx": CLASSES.index(label), "label_name": label,
                     "identity": identity, "detection_rate": 0.9})
    df = pd.DataFrame(rows)
    manifest.write(df, root / "manifest.parquet")
    return df


@pytest.fixture
def crops(tmp_path):
    root = tmp_path / "crops"
    return root, make_crops(root)


def run(df, root, docs):
    return validate_crops(df, root, CLASSES, CFG, docs, source="crops manifest")


def test_good_data_passes_and_writes_data_docs(crops, tmp_path, monkeypatch):
    root, df = crops
    monkeypatch.chdir(tmp_path)                  # GE must write nothing but the Data Docs site
    before = set(tmp_path.iterdir())
    summary = run(df, root, tmp_path / "docs")
    assert summary["success"] and summary["failures"] == [] and summary["skipped"] == []
    assert summary["clips"] == len(CLIPS) and summary["clips_per_split"] == {"train": 7, "val": 3, "test": 3}
    assert summary["class_counts"]["train"] == {c: 1 for c in CLASSES}
    assert summary["class_counts"]["total"]["happy"] == 3
    assert summary["smallest_class"]["val"] == {"class": "neutral", "clips": 0}
    assert all(e["success"] for e in summary["expectations"]) and len(summary["expectations"]) == 12
    assert set(tmp_path.iterdir()) - before == {tmp_path / "docs"}
    docs = tmp_path / "docs"
    assert (docs / "index.html").exists()
    pages = {p.parent.parent.parent.name for p in (docs / "validations").rglob("*.html")}
    assert pages == {"crops_manifest", "class_counts"}
    json.dumps(summary)                          # JSON-ready: it is the stage's metrics


def _unknown_label(df, root):
    df.loc[df.clip_id == "va1", "label_name"] = "contempt"


def _label_idx_off(df, root):
    df.loc[df.clip_id == "tr2", "label_idx"] = 3


def _no_frames(df, root):
    shutil.rmtree(root / "frames/te2")
    df.loc[df.clip_id == "te2", "num_frames"] = 0


def _frame_missing_on_disk(df, root):
    (root / "frames/va1/00003.jpg").unlink()


def _clip_in_two_splits(df, root):
    return pd.concat([df, df[df.clip_id == "tr3"].assign(split="test")], ignore_index=True)


def _identity_in_two_splits(df, root):
    df.loc[df.clip_id == "te1", "identity"] = 1


def _low_detection_rate(df, root):
    df.loc[df.clip_id == "va2", "detection_rate"] = 0.3


def _class_missing_from_train(df, root):
    df.loc[df.clip_id == "tr6", ["label_name", "label_idx"]] = ["happy", 0]


BAD = {   # kind: (how, expectation named, offending row as quoted)
    "unknown label": (_unknown_label, "expect_column_values_to_be_in_set(label_known)",
                      "clip va1 (fold=0, split='val', identity=10, label_known=\"label_name 'contempt'\")"),
    "label_idx off the class order": (_label_idx_off, "expect_column_values_to_be_in_set(label_idx_by_name)",
                                      "clip tr2 (fold=0, split='train', identity=1, "
                                      "label_idx_by_name=\"label_idx 3 but 'neutral' is at 2\")"),
    "num_frames 0": (_no_frames, "expect_column_values_to_be_between(num_frames)",
                     "clip te2 (fold=0, split='test', identity=21, num_frames=0)"),
    "num_frames not on disk": (_frame_missing_on_disk, "expect_column_pair_values_to_be_equal(num_frames, frames_on_disk)",
                               "clip va1 (fold=0, split='val', identity=10, num_frames=4, frames_on_disk=3)"),
    "clip in two splits": (_clip_in_two_splits, "expect_column_values_to_be_in_set(clip_id_unique)",
                           "clip tr3 (fold=0, split='train', identity=1, clip_id_unique='clip_id listed 2 times'); "
                           "clip tr3 (fold=0, split='test', identity=1, clip_id_unique='clip_id listed 2 times')"),
    "identity in two splits": (_identity_in_two_splits, "expect_column_values_to_be_between(splits_of_identity)",
                               "clip tr2 (fold=0, split='train', identity=1, splits_of_identity=2)"),
    "low detection rate": (_low_detection_rate, "expect_column_values_to_be_between(detection_rate)",
                           "clip va2 (fold=0, split='val', identity=11, detection_rate=0.3)"),
    "class missing from train": (_class_missing_from_train, "expect_column_values_to_be_between(train)",
                                 "class 'fear' (train=0)"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_each_kind_of_bad_data_fails_naming_expectation_and_rows(kind, crops, tmp_path):
    root, df = crops
    spoil, expectation, offending = BAD[kind]
    spoiled = spoil(df, root)
    df = df if spoiled is None else spoiled
    with pytest.raises(ValidationFailed) as failed:
        run(df, root, tmp_path / "docs")
    message = str(failed.value)
    print(message)
    assert message.startswith("validation failed:")
    line = next(line for line in message.splitlines() if expectation in line)
    assert f"first offending: {offending}" in line
    assert not failed.value.summary["success"]
    assert (tmp_path / "docs/index.html").exists()          # the failure is in Data Docs too


def test_identity_and_detection_checks_are_skipped_with_a_reason_when_unknown(crops, tmp_path):
    root, df = crops
    df = df.drop(columns=["identity", "detection_rate"])
    df.loc[df.clip_id == "te1", "split"] = "train"     # would be an identity leak, but identities are unknown
    summary = run(df, root, tmp_path / "docs")
    assert summary["success"]
    assert [s["check"] for s in summary["skipped"]] == ["no identity in two splits of a fold", "per-clip detection rate"]
    assert "no identity column" in summary["skipped"][0]["reason"]
    assert summary["clips_without_detection_rate"] == len(df)


def test_cli_exit_status_metrics_and_readable_message(crops, tmp_path, capsys):
    root, df = crops
    params = tmp_path / "params.yaml"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["validate"] = {"min_clip_detection_rate": 0.5, "min_train_clips_per_class": 1}
    params.write_text(yaml.safe_dump(raw))
    args = ["--params", str(params), "validate", "--crops", str(root), "--out", str(tmp_path / "docs"),
            "--metrics", str(tmp_path / "validation.json")]
    assert main(args) == 0
    passed = json.loads((tmp_path / "validation.json").read_text())
    assert passed["success"] and passed["smallest_class"]["train"]["clips"] == 1
    # A stage's metrics are compared by DVC: the same data and params give the same bytes.
    first = (tmp_path / "validation.json").read_bytes()
    assert main(args) == 0 and (tmp_path / "validation.json").read_bytes() == first

    df.loc[df.clip_id == "tr4", "detection_rate"] = 0.1
    manifest.write(df, root / "manifest.parquet")
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"validation failed: 1 of 12 expectations on {root / 'manifest.parquet'}")
    assert ("expect_column_values_to_be_between(detection_rate) — the face was found in at least "
            "validate.min_clip_detection_rate=0.5 of each clip's frames") in err
    assert "first offending: clip tr4 (fold=0, split='train', identity=2, detection_rate=0.1)" in err
    failed = json.loads((tmp_path / "validation.json").read_text())
    assert not failed["success"] and failed["failures"] and (tmp_path / "docs/index.html").exists()


def test_manifest_reads_and_the_data_gate_apply_the_same_invariants(crops, tmp_path):
    root, df = crops
    summary = run(df, root, tmp_path / "docs")
    checked = {e["expectation"] for e in summary["expectations"]}
    assert {f"expect_column_values_to_be_in_set({inv.name})" for inv in manifest.INVARIANTS} <= checked
    bad = df.copy()
    bad.loc[bad.clip_id == "va1", "label_name"] = "contempt"
    with pytest.raises(ValueError, match=r"label_name is a class of data.classes, but 1 row\(s\) break it: "
                                         r"clip va1 \(label_name 'contempt'\)"):
        manifest.validate(bad, CLASSES)
    twice = pd.concat([df, df[df.clip_id == "tr3"].assign(split="test")], ignore_index=True)
    with pytest.raises(ValueError, match=r"no clip_id twice .* 2 row\(s\) break it: clip tr3 \(clip_id listed 2 times\)"):
        manifest.validate(twice, CLASSES)
