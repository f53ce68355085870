"""The feedback dataset: labelled requests of a real prediction log (rows and crops written by the service's log
writer) exported in the csv importer's layout; the crop videos cropped again by the face crop stage's own worker
with the project's detector (crops of a real face photo); data.extra_sources adding a source's train and val
clips to the synthetic and the csv manifests, test clips held out, and an empty source changing no byte of the
prepare stage's outputs; the `feedback` command's table, its one-line error and the uncertain-task selection."""
from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import sys
from concurrent.futures import wait
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
import yaml
from conftest import PARAMS, ROOT

from a3lign_dfer.config.data import PrepareParams
from a3lign_dfer.config.feedback import FeedbackConfig, FeedbackParams
from a3lign_dfer.config.params import load_params
from a3lign_dfer.config.schema import build, load
from a3lign_dfer.data import manifest
from a3lign_dfer.data.detectors import make_detector
from a3lign_dfer.data.face_crop import _crop_video, crop_dataset
from a3lign_dfer.data.face_track import cut_face
from a3lign_dfer.data.importers import prepare_manifest
from a3lign_dfer.data.importers.csv_videos import import_csv
from a3lign_dfer.data.video_io import probe_video, write_video
from a3lign_dfer.errors import ConfigError
from a3lign_dfer.serving.feedback_dataset import (
    CROP_VIDEO_FPS,
    export_feedback,
    split_of,
)
from a3lign_dfer.serving.label_studio import most_uncertain
from a3lign_dfer.serving.log_writer import LogRow, LogWriter
from a3lign_dfer.serving.prediction_log import LoggedPrediction, open_log

CLASSES = PARAMS.data.classes
SHA = "ab" * 32
FRAMES = 16                           # features.num_frames: the crops the service keeps per request
TINY_SYNTHETIC = replace(PARAMS.synthetic, identities={"train": 2, "val": 1, "test": 1}, clips_per_identity=2,
                         min_frames=8, max_frames=10, workers=1)
FEEDBACK = {"dataset": "data/feedback", "test_fraction": 0.3}


def face_crops(shift: int = 0) -> list[np.ndarray]:
    """FRAMES RGB face crops of a real photo (skimage's astronaut), cut as the service cuts them (the training
    detector's box, face_crop.margin, face_crop.size), the box drifting a pixel a frame like a moving head."""
    bgr = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    x, y, w, h = make_detector(PARAMS.face_crop)(bgr)[0]
    return [cut_face(bgr, np.array([x + w / 2 + shift + t, y + h / 2, max(w, h)]), PARAMS.face_crop)
            for t in range(FRAMES)]


def log_row(request_id: str, label: str, margin: float = 0.4, crops=None, time: str | None = None) -> LogRow:
    runner_up = CLASSES[(CLASSES.index(label) + 1) % len(CLASSES)]
    top = (1 + margin) / 2 - 0.01
    probabilities = {c: top if c == label else (top - margin if c == runner_up else 0.0) for c in CLASSES}
    return LogRow(request_id=request_id, time=time or datetime.datetime.now(datetime.UTC).isoformat(),
                  endpoint="/predict", status=200, error_kind=None, model_version="v1", artifact_sha256=SHA,
                  filename=f"{request_id}.mp4", input_sha256="cd" * 32, input_bytes=123, label=label,
                  probabilities=probabilities, margin=margin, windows=None, duration_ms=12.5, crops=crops)


def write_log(path: Path, rows: list[LogRow], keep_crops: bool = True) -> None:
    """Rows (and their crops) through the service's own log writer."""
    failures = []
    writer = LogWriter(lambda: open_log(path), lambda reason, err: failures.append((reason, str(err))), keep_crops, 30)
    writer.start()
    try:
        futures = [writer.submit(r) for r in rows]
        wait(futures, timeout=60)
        assert [f.result() for f in futures] == [None] * len(rows)
    finally:
        writer.stop()
    assert failures == []


@pytest.fixture(scope="module")
def feedback_log(tmp_path_factory):
    """A log of 6 /predict requests: r1-r4 labelled with kept crops (r2 corrected), r5 labelled without crops,
    r6 unlabelled."""
    path = tmp_path_factory.mktemp("service") / "logs" / "predictions.sqlite"
    crops = face_crops()
    write_log(path, [log_row("r1", "happy", crops=crops), log_row("r2", "happy", crops=face_crops(2)),
                     log_row("r3", "sad", crops=crops), log_row("r4", "fear", crops=crops)])
    write_log(path, [log_row("r5", "sad"), log_row("r6", "neutral", crops=crops)], keep_crops=False)
    log = open_log(path)
    for request_id, label in (("r1", "happy"), ("r2", "angry"), ("r3", "sad"), ("r4", "fear"), ("r5", "sad")):
        log.add_feedback(request_id, label, "api")
    log.close()
    return path


def test_split_is_fixed_by_the_request_id():
    ids = [hashlib.md5(str(i).encode()).hexdigest() for i in range(4000)]
    splits = [split_of(i, 0.3) for i in ids]
    assert splits == [split_of(i, 0.3) for i in ids] and set(splits) == {"train", "test"}
    assert abs(splits.count("test") / len(ids) - 0.3) < 0.03
    assert {split_of(i, 0.0) for i in ids} == {"train"}
    # A larger fraction only moves requests from train to test, never back.
    assert all(split_of(i, 0.5) == "test" for i, s in zip(ids, splits) if s == "test")


def test_export_writes_the_csv_importers_layout(feedback_log, tmp_path):
    log = open_log(feedback_log, create=False)
    done = export_feedback(log, tmp_path / "feedback", CLASSES, 0.5)
    log.close()
    table = pd.read_csv(tmp_path / "feedback/labels.csv", dtype=str)
    assert list(table.columns) == ["path", "label", "split", "clip_id"]
    assert list(table["clip_id"]) == ["r1", "r2", "r3", "r4"]                 # the log's order
    assert list(table["label"]) == ["happy", "angry", "sad", "fear"]          # the true labels (r2 corrected)
    assert list(table["path"]) == [f"videos/r{i}.mp4" for i in range(1, 5)]
    assert list(table["split"]) == [split_of(f"r{i}", 0.5) for i in range(1, 5)]
    assert (done.exported, done.encoded, done.skipped_without_crops, done.skipped_unknown_label) == (4, 4, ["r5"], [])
    assert done.per_class == {c: int(c in ("happy", "angry", "sad", "fear")) for c in CLASSES}
    assert done.per_split == table["split"].value_counts().reindex(["train", "test"], fill_value=0).to_dict()
    for path in table["path"]:
        probe = probe_video(tmp_path / "feedback" / path)
        assert (probe.frames, probe.height, probe.width) == (FRAMES, PARAMS.face_crop.size, PARAMS.face_crop.size)
    # The csv importer reads it as it reads anyone's videos: every clip, no reject.
    builder = import_csv(tmp_path / "feedback", replace(PARAMS.data, csv="labels.csv"))
    assert builder.rejects == [] and [r["clip_id"] for r in builder.rows] == ["r1", "r2", "r3", "r4"]


def test_the_face_crop_stage_finds_the_face_in_a_crop_video(feedback_log, tmp_path):
    """The stage's own worker (decode, the project's YuNet detector, track, crop) on an exported video of crops
    of a real face: the face in every detected frame, and the new crops frame it as the service's crops did."""
    log = open_log(feedback_log, create=False)
    export_feedback(log, tmp_path / "feedback", CLASSES, 0.0)
    log.close()
    src = tmp_path / "feedback/videos/r1.mp4"
    result = _crop_video(("r1", src, tmp_path / "crops/r1", PARAMS.face_crop))
    assert result.problem is None, result.reason
    assert (result.num_frames, result.found, result.detected) == (FRAMES, FRAMES, FRAMES)
    assert CROP_VIDEO_FPS <= PARAMS.face_crop.detect_fps          # so the detector ran on every frame
    first = cv2.cvtColor(cv2.imread(str(tmp_path / "crops/r1/00000.jpg")), cv2.COLOR_BGR2RGB).astype(float)
    original = face_crops()[0].astype(float)
    assert np.abs(first - original).mean() < 25        # the same face, framed about the same (JPEG + H.264 apart)


def test_export_again_keeps_videos_of_purged_crops_and_drops_unlisted_ones(feedback_log, tmp_path):
    work = tmp_path / "logs"
    work.mkdir()
    db = work / "predictions.sqlite"
    db.write_bytes(feedback_log.read_bytes())                 # WAL checkpointed on close: one file holds it all
    (work / "crops").symlink_to(feedback_log.parent / "crops")
    log = open_log(db)
    first = export_feedback(log, tmp_path / "feedback", CLASSES, 0.3)
    (tmp_path / "feedback/videos/stale.mp4").write_bytes(b"an earlier request no longer labelled")
    (work / "crops").unlink()                                 # retention purged every crop folder
    again = export_feedback(log, tmp_path / "feedback", CLASSES, 0.3)
    log.close()
    assert (first.exported, again.exported, again.encoded) == (4, 4, 0)
    assert sorted(p.name for p in (tmp_path / "feedback/videos").iterdir()) == [f"r{i}.mp4" for i in range(1, 5)]


def test_an_empty_log_exports_the_header_only(tmp_path):
    log = open_log(tmp_path / "predictions.sqlite")
    done = export_feedback(log, tmp_path / "feedback", CLASSES, 0.3)
    log.close()
    assert (tmp_path / "feedback/labels.csv").read_text() == "path,label,split,clip_id\n"
    assert done.exported == 0 and done.per_split == {"train": 0, "test": 0}
    # The repository's initial dataset is exactly that.
    assert (ROOT / "data/feedback/labels.csv").read_text() == "path,label,split,clip_id\n"


def _prepare_params(**data) -> PrepareParams:
    """The tiny benchmark's prepare params with `data` keys set (folders relative to the test's directory)."""
    return PrepareParams(replace(PARAMS.data, **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}),
                         TINY_SYNTHETIC)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_source(folder: Path, rows: list[tuple[str, str, str]], identity: bool = False) -> None:
    """A source in the csv layout: (clip, label, split) rows, each a short synthetic face video."""
    from a3lign_dfer.data.synthetic import render_clip

    records = []
    for i, (clip, label, split) in enumerate(rows):
        drawn = label if label in CLASSES else "neutral"          # a label no class has still has a face
        write_video(render_clip(TINY_SYNTHETIC, drawn, 7, i, i).frames, folder / "videos" / f"{clip}.mp4", 12)
        records.append({"path": f"videos/{clip}.mp4", "label": label, "split": split, "clip_id": clip,
                        **({"identity": f"p{i % 2}"} if identity else {})})
    pd.DataFrame(records).to_csv(folder / "labels.csv", index=False)


def test_an_empty_extra_source_changes_no_byte_of_prepare(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                          # params name folders relative to the repository
    Path("data/feedback").mkdir(parents=True)
    Path("data/feedback/labels.csv").write_text("path,label,split,clip_id\n")
    without = prepare_manifest(_prepare_params(root="data/raw", extra_sources=[]), Path("data/raw"))
    before = _files(Path("data/raw"))
    with_empty = prepare_manifest(_prepare_params(root="data/raw", extra_sources=["data/feedback"]),
                                  Path("data/raw"))
    assert _files(Path("data/raw")) == before and "extra_sources.json" not in before
    pd.testing.assert_frame_equal(with_empty, without)


def test_extra_sources_add_train_and_val_clips_to_the_synthetic_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_source(Path("data/feedback"), [("a", "happy", "train"), ("b", "sad", "train"), ("c", "fear", "val"),
                                          ("d", "angry", "test"), ("e", "bored", "train")], identity=True)
    df = prepare_manifest(_prepare_params(root="data/raw", extra_sources=["data/feedback"]),
                          Path("data/raw"))
    assert df.equals(manifest.read("data/raw/manifest.parquet", CLASSES))
    added = df[df["dataset"] == "feedback"].set_index("clip_id")
    assert list(added.index) == ["feedback-a", "feedback-b", "feedback-c"]        # test clip d held out
    assert list(added["split"]) == ["train", "train", "val"] and list(added["label_name"]) == ["happy", "sad", "fear"]
    assert list(added["path"]) == [f"../feedback/videos/{c}.mp4" for c in "abc"]
    assert all((Path("data/raw") / p).is_file() for p in df["path"])           # data.root / path, for every row
    assert list(added["identity"]) == ["feedback:p0", "feedback:p1", "feedback:p0"]   # apart from "0", "1", ...
    benchmark = df[df["dataset"] == "synthetic"]
    assert len(benchmark) == 8 and benchmark["identity"].map(type).eq(str).all()
    assert benchmark["true_label_idx"].notna().all() and added["true_label_idx"].isna().all()
    assert set(added["fold"]) == set(benchmark["fold"]) and added["num_frames"].between(8, 10).all()
    report = json.loads(Path("data/raw/extra_sources.json").read_text())["sources"][0]
    assert (report["name"], report["clips_added"], report["held_out_test_clips"], report["rejected"]) == \
        ("feedback", 3, 1, 1)
    assert report["rejects"][0]["problem"] == "unknown_label"
    assert report["clips_per_split_and_class"]["val"]["fear"] == 1


def test_extra_sources_join_an_imported_dataset_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_source(Path("mine"), [("x", "happy", "train"), ("y", "sad", "train"), ("z", "neutral", "test"),
                                 ("w", "happy", "val")])
    _write_source(Path("data/feedback"), [("x", "fear", "train"), ("v", "sad", "test")])
    params = _prepare_params(dataset="csv", root="mine", extra_sources=["data/feedback"])
    df = prepare_manifest(params, Path("data/raw"))
    assert sorted(df["clip_id"]) == ["feedback-x", "w", "x", "y", "z"]           # no clash with the dataset's x
    row = df.set_index("clip_id").loc["feedback-x"]
    assert (row["path"], row["split"], row["label_name"], row["dataset"]) == \
        ("../data/feedback/videos/x.mp4", "train", "fear", "feedback")
    assert "identity" not in df.columns and set(df["kind"]) == {"video"}
    assert (Path("mine") / row["path"]).is_file()


def test_extra_sources_are_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="distinct names"):
        _prepare_params(extra_sources=["a/feedback", "b/feedback"])
    with pytest.raises(FileNotFoundError, match="data.extra_sources: nowhere is not a folder"):
        prepare_manifest(_prepare_params(root="data/raw", extra_sources=["nowhere"]), Path("data/raw"))
    assert not Path("data/raw").exists()                 # failed before generating anything


def test_the_feedback_params_load():
    params = load(FeedbackParams, ROOT / "params.yaml")
    assert params.feedback.dataset in params.data.extra_sources and 0 < params.feedback.test_fraction < 1
    assert load_params(ROOT / "params.yaml").feedback == params.feedback
    with pytest.raises(ConfigError, match="test_fraction"):
        build(FeedbackConfig, {**FEEDBACK, "test_fraction": 1.0}, "feedback")


def _params_file(tmp_path: Path, **feedback) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["feedback"] = {**FEEDBACK, **feedback}
    raw["serve"]["prediction_log"]["path"] = "logs/predictions.sqlite"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_export_command_prints_its_table(feedback_log, tmp_path, capsys, monkeypatch):
    from a3lign_dfer.commands import feedback, run_module

    monkeypatch.chdir(tmp_path)
    Path("logs").mkdir()
    Path("logs/predictions.sqlite").write_bytes(feedback_log.read_bytes())
    Path("logs/crops").symlink_to(feedback_log.parent / "crops")
    assert run_module(feedback, ["--params", str(_params_file(tmp_path)), "export"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| split | " + " | ".join(CLASSES) + " | clips |"
    assert out[4] == "| total | 1 | 1 | 0 | 1 | 0 | 0 | 1 | 4 |"           # happy, sad, angry (r2), fear
    assert "4 labelled request(s) -> data/feedback/labels.csv (4 video(s) written now" in out[6]
    assert out[7].startswith("skipped, no crops kept") and out[7].endswith(": 1: r5")
    assert pd.read_csv("data/feedback/labels.csv")["clip_id"].tolist() == ["r1", "r2", "r3", "r4"]


def test_a_missing_log_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer.commands.feedback", "--params",
                           str(_params_file(tmp_path)), "export"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [("a3lign_dfer feedback: error: no prediction log at logs/predictions.sqlite "
                                         "(serve.prediction_log.path): the service writes it")]
    assert not (tmp_path / "logs").exists()                  # looking for it created nothing


def _logged(request_id: str, label: str, margin: float, crops: bool = True) -> LoggedPrediction:
    return LoggedPrediction(request_id, label, {label: 0.5}, margin, Path("/crops") / request_id if crops else None,
                            f"{request_id}.mp4", f"2026-01-01T00:00:{int(request_id[1:]):02d}", "v1", SHA)


def test_uncertain_requests_are_taken_in_turn_from_each_predicted_class():
    logged = [_logged("p1", "happy", 0.05), _logged("p2", "happy", 0.01), _logged("p3", "happy", 0.30),
              _logged("p4", "happy", 0.02), _logged("p5", "sad", 0.20), _logged("p6", "sad", 0.10),
              _logged("p7", "fear", 0.03), _logged("p8", "fear", 0.001, crops=False)]
    picked = [p.request_id for p in most_uncertain(logged, 6)]
    # happy's least certain (0.01) first, then fear's (0.03), then sad's (0.10); round two; happy alone after.
    assert picked == ["p2", "p7", "p6", "p4", "p5", "p1"]
    assert [p.request_id for p in most_uncertain(logged, 2)] == ["p2", "p7"]
    assert "p8" not in [p.request_id for p in most_uncertain(logged, 100)]    # no crops: nothing to show


def test_export_then_prepare_then_face_crop(feedback_log, tmp_path, monkeypatch, scale):
    """The loop's data path: exported feedback (crops of a real face) trains through data.extra_sources: prepare
    adds its train clips to the synthetic manifest and the face crop stage crops them from ../feedback paths."""
    monkeypatch.chdir(tmp_path)
    log = open_log(feedback_log, create=False)
    export_feedback(log, Path("data/feedback"), CLASSES, 0.3)
    log.close()
    labels = pd.read_csv("data/feedback/labels.csv")
    train = sorted("feedback-" + labels.loc[labels["split"] == "train", "clip_id"])
    raw = prepare_manifest(_prepare_params(root="data/raw", extra_sources=["data/feedback"]),
                           Path("data/raw"))
    assert sorted(raw.loc[raw["dataset"] == "feedback", "clip_id"]) == train and train
    crops, rejects, _ = crop_dataset(raw, Path("data/raw"), Path("data/crops"), PARAMS.face_crop, scale,
                                           CLASSES)
    assert rejects == [] and sorted(crops.loc[crops["dataset"] == "feedback", "clip_id"]) == train
    kept = crops[crops["dataset"] == "feedback"]
    assert (kept["num_frames"] == FRAMES).all() and (kept["detection_rate"] == 1.0).all()
