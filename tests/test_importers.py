"""Importers: each real layout (built here with real JPEG frames) -> the canonical manifest, labels
checked by name; the val carve; every kind of bad input named in rejects while good clips go through."""
from __future__ import annotations

import json
import os
import re

import av
import numpy as np
import pandas as pd
import pytest
from dataset_trees import DFEW_ORDER, make_dfew, write_dfew_split, write_frames

from dataclasses import replace

from conftest import PARAMS, ROOT

from a3lign_dfer.config.params import load_params
from a3lign_dfer.data import manifest
from a3lign_dfer.data.face_crop import crop_dataset
from a3lign_dfer.data.frame_folders import load_frames
from a3lign_dfer.data.importers import import_dataset, prepare_manifest
from a3lign_dfer.data.importers.mafw import ORDER as MAFW_ORDER
from a3lign_dfer.data.importers.validation_split import carve_validation
from a3lign_dfer.data.synthetic import render_clip
from a3lign_dfer.data.video_io import write_video

# Not DFEW's order: a label mapped by position instead of by name would show.
SHUFFLED = ("fear", "disgust", "surprise", "angry", "neutral", "sad", "happy")
CROP = replace(PARAMS.face_crop, size=32, workers=1)


def _params(**data):
    return load_params(ROOT / "params.yaml", {"data": data})


def _problems(rejects: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rejects:
        out.setdefault(r["problem"], []).append(r)
    return out


@pytest.fixture(scope="module")
def dfew(tmp_path_factory):
    root = tmp_path_factory.mktemp("DFEW")
    return root, make_dfew(root)


def test_dfew_manifest_labels_by_name_frames_counted_on_disk(dfew):
    root, truth = dfew
    df, rejects, report = import_dataset(_params(dataset="dfew", root=str(root), fold=1, classes=list(SHUFFLED),
                                                 val_fraction=0.25))
    assert rejects == [] and report["frame_count_mismatches"] == 0
    assert list(df.columns[:len(manifest.COLUMNS)]) == manifest.COLUMNS and "identity" not in df.columns
    assert sorted(df["clip_id"]) == sorted(truth) and set(df["kind"]) == {"frames"} and set(df["fold"]) == {1}
    for row in df.itertuples():
        name, frames = truth[row.clip_id]
        assert row.label_name == name and row.label_idx == SHUFFLED.index(name)
        assert row.path == f"Clip/clip_224x224/{row.clip_id}"
        assert row.num_frames == frames == len(list((root / row.path).glob("*.jpg")))
    # Fold 1's test clips are its test list (clips 1-7, one per class); val only ever comes from train.
    assert sorted(df.loc[df["split"] == "test", "clip_id"]) == [f"{i:05d}" for i in range(1, 8)]
    per_class = df.groupby(["split", "label_name"]).size().unstack(fill_value=0)
    assert (per_class.loc["val"] == 1).all() and (per_class.loc["train"] == 3).all()   # 4 train clips x 0.25
    assert report["val"]["unit"] == "clip" and report["classes"] == list(SHUFFLED)
    assert report["clips_per_split_and_class"]["val"] == {c: 1 for c in SHUFFLED}


def test_val_carve_is_seeded_and_never_takes_test_clips(dfew):
    root, _ = dfew
    val = {}
    for fold, seed in ((1, 1), (1, 1), (1, 2), (2, 1)):
        df, _, _ = import_dataset(_params(dataset="dfew", root=str(root), fold=fold, seed=seed, val_fraction=0.25))
        val.setdefault((fold, seed), []).append(set(df.loc[df["split"] == "val", "clip_id"]))
        test = set(df.loc[df["split"] == "test", "clip_id"])
        assert test == {f"{i:05d}" for i in range(7 * fold - 6, 7 * fold + 1)} and not test & val[(fold, seed)][-1]
    assert val[(1, 1)][0] == val[(1, 1)][1]                     # same seed, same carve
    assert val[(1, 1)][0] != val[(1, 2)][0]                     # another data.seed draws another


def test_val_carve_keeps_identities_apart_and_stratifies():
    rng = np.random.default_rng(0)
    rows = [{"clip_id": f"c{i}", "identity": f"id{i // 4}", "label_name": DFEW_ORDER[int(rng.integers(7))],
             "split": "train" if i < 160 else "test"} for i in range(200)]
    df = pd.DataFrame(rows)
    carved, info = carve_validation(df, 0.2, seed=3)
    assert info["unit"] == "identity"
    train, val = (carved[carved["split"] == s] for s in ("train", "val"))
    assert set(train["identity"]).isdisjoint(val["identity"]) and len(val) > 0
    assert (carved.loc[carved["split"] == "test"].equals(df.loc[df["split"] == "test"]))
    share = val["label_name"].value_counts() / df[df["split"] == "train"]["label_name"].value_counts()
    assert share.between(0.1, 0.3).all(), share                   # every class gives about 20%
    assert set(train["label_name"]) == set(DFEW_ORDER)
    again, _ = carve_validation(df, 0.2, seed=3)
    other, _ = carve_validation(df, 0.2, seed=4)
    assert again.equals(carved) and not other.equals(carved)


def test_ferv39k_natural_frame_order_and_crops_resized(tmp_path, scale):
    root = tmp_path / "FERV39k"
    clips = {"Action/Happy/0001": ("Happy", 12), "Action/Sad/0002": ("Sad", 9), "Daily Life/Angry/0001": ("Angry", 7),
             "Daily Life/Neutral/0004": ("Neutral", 8)}
    for i, (clip, (_, n)) in enumerate(clips.items()):          # frames 1.jpg .. 12.jpg: not zero-padded
        write_frames(root / "2_ClipsforFaceCrop" / clip, n, seed=i, size=40, name=lambda t: f"{t + 1}.jpg")
    setup = root / "4_setups/All_scenes"
    setup.mkdir(parents=True)
    (setup / "train_All.csv").write_text("Action/Happy/0001 Happy\nAction/Sad/0002 Sad\nDaily Life/Angry/0001 Angry\n")
    (setup / "test_All.csv").write_text("Daily Life/Neutral/0004 Neutral\n")
    df, rejects, _ = import_dataset(_params(dataset="ferv39k", root=str(root), val_fraction=0.5))
    assert rejects == []
    got = {r.clip_id: (r.label_name, r.num_frames, r.path) for r in df.itertuples()}
    assert got == {c.replace("/", "__"): (label.lower(), n, f"2_ClipsforFaceCrop/{c}") for c, (label, n) in clips.items()}
    with pytest.raises(ValueError, match="FERV39k has one official split"):
        import_dataset(_params(dataset="ferv39k", root=str(root), fold=2))

    crops, crop_rejects, metrics = crop_dataset(df, root, tmp_path / "crops", CROP, scale, PARAMS.data.classes)
    assert crop_rejects == [] and metrics["frame_folders"] == 4 and metrics["detection_rate"] is None
    for row in crops.itertuples():
        frames = load_frames(tmp_path / "crops" / row.path)
        assert frames.shape[1:] == (32, 32, 3) and len(frames) == row.num_frames == got[row.clip_id][1]
        assert np.all(np.diff(frames.reshape(len(frames), -1).mean(1)) > 0)   # 2.jpg before 10.jpg


def _mafw_tree(root, rows_by_fold):
    for fold, splits in rows_by_fold.items():
        folder = root / "Train & Test Set/single/no_caption" / f"set_{fold}"
        folder.mkdir(parents=True, exist_ok=True)
        for split, lines in splits.items():
            (folder / f"{split}.txt").write_text("".join(f"{line}\n" for line in lines))


def test_mafw_eleven_classes_mapped_by_name(tmp_path):
    root = tmp_path / "MAFW"
    train, test = [], []
    for i, label in enumerate(MAFW_ORDER * 3):
        clip = f"{i + 1:05d}"
        write_frames(root / "data/faces" / clip, 5 + i % 3, seed=i, name=lambda t, c=clip: f"{c}_{t + 1:03d}.png")
        (test if i >= 2 * len(MAFW_ORDER) else train).append(f"{clip}.mp4 {label}")
    _mafw_tree(root, {3: {"train": train, "test": test}})
    # DFEW-style names plus MAFW's four extra classes, in an order of our own.
    classes = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear", "contempt", "anxiety",
               "helplessness", "disappointment")
    df, rejects, _ = import_dataset(_params(dataset="mafw", root=str(root), fold=3, classes=list(classes)))
    assert rejects == [] and len(df) == 33 and set(df["fold"]) == {3}
    expect = {"anger": "angry", "happiness": "happy", "sadness": "sad"}
    for row in df.itertuples():
        mafw_label = MAFW_ORDER[(int(row.clip_id) - 1) % 11]
        assert row.label_name == expect.get(mafw_label, mafw_label) and row.label_idx == classes.index(row.label_name)
        assert row.path == f"data/faces/{row.clip_id}" and row.num_frames == 5 + (int(row.clip_id) - 1) % 3
    assert (df["split"] == "val").sum() == 11                    # 2 train clips per class -> 1 val each
    # The 7 DFEW classes: MAFW's other four labels are named as unknown, nothing else is lost.
    df7, rejects7, _ = import_dataset(_params(dataset="mafw", root=str(root), fold=3))
    assert len(df7) == 21 and {r["problem"] for r in rejects7} == {"unknown_label"}
    assert sorted({r["reason"].split("unknown label ")[1].split(":")[0] for r in rejects7}) == \
        ["'anxiety'", "'contempt'", "'disappointment'", "'helplessness'"]
    assert all(r["path"].startswith("Train & Test Set/single/no_caption/set_3/") for r in rejects7)
    with pytest.raises(ValueError, match="'bored'.*mafw has no label"):
        import_dataset(_params(dataset="mafw", root=str(root), fold=3, classes=[*classes[:10], "bored"]))
    with pytest.raises(FileNotFoundError, match="set_2/train.txt"):
        import_dataset(_params(dataset="mafw", root=str(root), fold=2, classes=list(classes)))


def test_list_files_recount_frames_and_report_mismatches(tmp_path):
    root = tmp_path / "lists_dataset"
    order = ("neutral", "happy", "sad", "angry", "surprise", "disgust", "fear")    # the lists' 0-based order
    lines = {"train": [], "test": []}
    for i in range(14):
        folder = root / "frames" / f"clip_{i}"
        write_frames(folder, 6 + i % 4, seed=i)
        listed = 6 + i % 4 + (3 if i == 5 else 0)                  # clip 5's list entry is wrong
        path = str(folder) if i == 2 else f"frames/clip_{i}"       # clip 2: absolute path under data.root
        lines["test" if i >= 12 else "train"].append(f"{path} {listed} {i % 7}")
    for split, content in lines.items():
        (root / f"{split}_set_4.txt").write_text("\n".join(content) + "\n")
    df, rejects, report = import_dataset(_params(
        dataset="list", root=str(root), fold=4, lists={"train": "train_set_{fold}.txt", "test": "test_set_{fold}.txt"},
        list_classes=list(order), val_fraction=0.5))
    assert rejects == []
    rows = df.set_index("clip_id")
    for i in range(14):
        row = rows.loc[f"frames__clip_{i}"]
        assert row["label_name"] == order[i % 7] and row["path"] == f"frames/clip_{i}"
        assert row["num_frames"] == 6 + i % 4                       # counted on disk, not the list's 12
    assert report["frame_count_mismatches"] == 1
    assert report["mismatches"] == [{"clip_id": "frames__clip_5", "path": "frames/clip_5", "where": "train_set_4.txt:6",
                                     "listed": 10, "on_disk": 7}]
    assert set(df["split"]) == {"train", "val", "test"} and set(df["fold"]) == {4}


# ---- bad input: every kind named, every good clip kept -------------------------------------------------

def test_frame_folder_problems_are_rejects_naming_the_file(tmp_path, scale):
    root = tmp_path / "DFEW"
    truth = make_dfew(root, clips_per_class=2)                 # clips 1-14, all fine
    write_frames(root / "Clip/clip_224x224/00016", 4, seed=16)                    # an empty folder: 00016 emptied
    for f in (root / "Clip/clip_224x224/00016").iterdir():
        f.unlink()
    write_frames(root / "Clip/clip_224x224/00017", 5, seed=17)
    (root / "Clip/clip_224x224/00017/00003.jpg").write_bytes(b"")                 # a zero-byte frame
    write_frames(root / "Clip/clip_224x224/00018", 5, seed=18)
    (root / "Clip/clip_224x224/00018/00002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")   # unreadable frame
    write_frames(root / "Clip/clip_224x224/00019", 5, seed=19)
    good_train = [f"{i},{1 + (i - 1) % 7}" for i in range(1, 15) if i > 7]
    write_dfew_split(root, "train", 1, good_train + [
        "15,1",            # no frame folder
        "16,2",            # empty frame folder
        "17,3",            # zero-byte image
        "18,4",            # unreadable image (found when the crop stage decodes it)
        "19,9",            # unknown label
        "twenty,1",        # malformed line
        "8,1",             # clip 00008 listed again
    ])
    df, rejects, _ = import_dataset(_params(dataset="dfew", root=str(root), fold=1))
    split_file = "EmoLabel_DataSplit/train(single-labeled)/set_1.csv"
    by = _problems(rejects)
    assert {p: [(r["clip_id"], r["path"]) for r in rs] for p, rs in by.items()} == {
        "missing_frame_folder": [("00015", "Clip/clip_224x224/00015")],
        "empty_frame_folder": [("00016", "Clip/clip_224x224/00016")],
        "zero_byte_image": [("00017", "Clip/clip_224x224/00017/00003.jpg")],
        "unknown_label": [("00019", f"{split_file}:13")],
        "malformed_line": [("", f"{split_file}:14")],
        "duplicate_clip": [("00008", f"{split_file}:15")],
    }
    assert "9" in by["unknown_label"][0]["reason"] and "twenty" in by["malformed_line"][0]["reason"]
    assert f"{split_file}:2" in by["duplicate_clip"][0]["reason"]            # names the listing that was kept
    assert sorted(df["clip_id"]) == sorted([*truth, "00018"])                  # every good clip, and 00018 so far
    assert df.set_index("clip_id").loc["00008", "label_name"] == "happy"        # the first listing's label

    crops, crop_rejects, metrics = crop_dataset(df, root, tmp_path / "crops", CROP, scale, DFEW_ORDER)
    assert [(r["clip_id"], r["problem"], r["path"]) for r in crop_rejects] == \
        [("00018", "unreadable_image", "Clip/clip_224x224/00018/00002.jpg")]
    assert "00002.jpg" in crop_rejects[0]["reason"] and not (tmp_path / "crops/frames/00018").exists()
    assert sorted(crops["clip_id"]) == sorted(truth) and metrics["rejected_by_problem"] == {"unreadable_image": 1}
    assert all(crops["num_frames"] == [truth[c][1] for c in crops["clip_id"]])


def test_bad_annotation_files_are_clear_errors(tmp_path):
    root = tmp_path / "DFEW"
    make_dfew(root, clips_per_class=2)
    params = _params(dataset="dfew", root=str(root), fold=1)
    split = root / "EmoLabel_DataSplit/test(single-labeled)/set_1.csv"
    cases = [(b"", "empty annotation file"), (b"video_name,label\n", "a header and no clips"),
             (b"name,emotion\n1,1\n", "expected the header 'video_name,label'"),
             (b"video_name,label\nx;1\ny;2\n", "none of its 2 line\\(s\\) reads as"),
             (b"video_name,label\n\xff\xfe1,1\n", "not UTF-8")]
    for content, message in cases:
        split.write_bytes(content)
        with pytest.raises(ValueError, match=message) as err:
            import_dataset(params)
        assert "test(single-labeled)/set_1.csv" in str(err.value)
    split.unlink()
    with pytest.raises(FileNotFoundError, match="test\\(single-labeled\\)/set_1.csv"):
        import_dataset(params)
    with pytest.raises(ValueError, match="DFEW has folds"):
        import_dataset(_params(dataset="dfew", root=str(root), fold=6))
    with pytest.raises(ValueError, match="known: synthetic, dfew, ferv39k, mafw, list, csv"):
        import_dataset(_params(dataset="afew", root=str(root)))


def _faststart_mp4(frames: np.ndarray, path) -> None:
    """An MP4 whose index is at the front, so a truncated copy still opens and decodes part way."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())


def test_video_problems_are_rejects_naming_the_file(tmp_path, scale):
    root = tmp_path / "videos"
    root.mkdir()
    syn = replace(PARAMS.synthetic, min_frames=16, max_frames=18)
    face = render_clip(syn, "happy", 0, 1, 1).frames
    write_video(face, root / "good.mp4", 12)
    write_video(render_clip(syn, "sad", 0, 2, 2).frames, root / "good2.mp4", 12)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("these are my notes, not a video")
    (root / "cut.mp4").write_bytes((root / "good.mp4").read_bytes()[:5000])          # index lost: cannot open
    _faststart_mp4(face, root / "full.mp4")
    data = (root / "full.mp4").read_bytes()
    (root / "cut_late.mp4").write_bytes(data[:len(data) * 9 // 10])                   # opens, ends early
    write_video(np.full((14, 240, 320, 3), 90, np.uint8), root / "wall.mp4", 12)    # no face
    table = pd.DataFrame([
        ("good.mp4", "Happy", "train", "alice"), ("good2.mp4", "sad", "test", "bob"),
        ("missing.mp4", "happy", "train", "carol"), ("empty.mp4", "happy", "train", "dan"),
        ("notes.mp4", "happy", "train", "erin"), ("cut.mp4", "happy", "train", "fay"),
        ("cut_late.mp4", "happy", "train", "gus"), ("wall.mp4", "happy", "train", "hal"),
        ("good.mp4", "happy", "train", "alice"),                       # duplicate clip id "good"
        ("good2.mp4", "bored", "train", "bob"),                        # unknown label (own clip_id below)
        ("other.mp4", "happy", "holdout", "ivy"),                      # unknown split
    ], columns=["path", "label", "split", "identity"])
    table.loc[9, "clip_id"] = "good2-again"
    table.to_csv(root / "labels.csv", index=False)
    df, rejects, _ = import_dataset(_params(dataset="csv", root=str(root)))
    by = {r["clip_id"]: (r["problem"], r["path"]) for r in rejects}
    assert by == {"missing": ("missing_video", "missing.mp4"), "empty": ("empty_video", "empty.mp4"),
                  "notes": ("not_a_video", "notes.mp4"), "cut": ("truncated_video", "cut.mp4"),
                  "good2-again": ("unknown_label", "labels.csv:11"), "other": ("unknown_split", "labels.csv:12"),
                  "good": ("duplicate_clip", "labels.csv:10")}
    reasons = {r["clip_id"]: r["reason"] for r in rejects}
    assert "file not found: missing.mp4" in reasons["missing"] and "0 bytes" in reasons["empty"]
    assert "not a video" in reasons["notes"] and "truncated or corrupt MP4" in reasons["cut"]
    assert list(df["clip_id"]) == ["good", "good2", "cut_late", "wall"] and set(df["kind"]) == {"video"}
    assert df.set_index("clip_id").loc["good", "label_name"] == "happy" and df["identity"].notna().all()

    crops, crop_rejects, metrics = crop_dataset(df, root, tmp_path / "crops", PARAMS.face_crop, scale,
                                                PARAMS.data.classes)
    by = {r["clip_id"]: (r["problem"], r["path"]) for r in crop_rejects}
    assert by == {"cut_late": ("truncated_video", "cut_late.mp4"), "wall": ("no_face", "wall.mp4")}
    assert re.search(r"cut_late.mp4: truncated: \d+ of the 1\d frames", crop_rejects[0]["reason"])
    assert list(crops["clip_id"]) == ["good", "good2"] and metrics["detection_rate"] > 0.8


def test_prepare_writes_manifest_rejects_and_report(dfew, tmp_path):
    root, truth = dfew
    params = _params(dataset="dfew", root=str(root), fold=2)
    df = prepare_manifest(params, tmp_path / "raw")
    assert set(os.listdir(tmp_path / "raw")) == {"manifest.parquet", "rejects.csv", "import_report.json"}
    pd.testing.assert_frame_equal(manifest.read(tmp_path / "raw/manifest.parquet", DFEW_ORDER), df)
    assert list(pd.read_csv(tmp_path / "raw/rejects.csv").columns) == manifest.REJECT_COLUMNS
    report = json.loads((tmp_path / "raw/import_report.json").read_text())
    assert report["fold"] == 2 and report["clips"] == len(truth) and report["val"]["carved_from"] == "train"
    with pytest.raises(ValueError, match="prepare stage's output folder"):
        prepare_manifest(_params(dataset="dfew", root=str(tmp_path / "raw")), tmp_path / "raw")
