"""Face crop stage: finds the synthetic face, rejects bad videos, fills missed frames."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from dataclasses import replace

from conftest import PARAMS

from a3lign_dfer.data import manifest
from a3lign_dfer.data.face_crop import crop_dataset
from a3lign_dfer.data.face_track import FaceTracker, crop_square, track_face
from a3lign_dfer.data.synthetic import render_clip
from a3lign_dfer.data.video_io import VideoDecodeError, read_video, write_video

CLASSES = PARAMS.data.classes
SYN = replace(PARAMS.synthetic, min_frames=16, max_frames=20)
CFG = replace(PARAMS.face_crop, workers=1)
FACES = {"face_a": ("happy", 1, 1), "face_b": ("surprise", 2, 5)}  # clip_id: (label, clip index, identity)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, scale):
    root = tmp_path_factory.mktemp("raw")
    rows, truth = [], {}
    for clip_id, (label, index, identity) in FACES.items():
        clip = render_clip(SYN, label, 0, index, identity)
        write_video(clip.frames, root / f"{clip_id}.mp4", SYN.fps)
        truth[clip_id] = clip
        rows.append((clip_id, f"{clip_id}.mp4", CLASSES.index(label), label))
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    rows.append(("corrupt", "corrupt.mp4", 0, CLASSES[0]))
    rng = np.random.default_rng(1)
    blobs = np.stack([cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (320, 240),
                                 interpolation=cv2.INTER_CUBIC) for _ in range(12)])
    write_video(blobs, root / "noface.mp4", 12)
    rows.append(("noface", "noface.mp4", 2, CLASSES[2]))
    df = pd.DataFrame(rows, columns=["clip_id", "path", "label_idx", "label_name"])
    df = df.assign(dataset="test", fold=0, split="train", num_frames=0, identity=range(len(df)))
    out = tmp_path_factory.mktemp("crops")
    crops, rejects, metrics = crop_dataset(df, root, out, CFG, scale, CLASSES)
    return {"root": root, "out": out, "df": df, "crops": crops, "rejects": rejects, "metrics": metrics,
            "truth": truth}


def test_crops_manifest_and_frames_on_disk(dataset):
    crops, out = dataset["crops"], dataset["out"]
    manifest.validate(crops, CLASSES)
    assert list(crops["clip_id"]) == list(FACES)
    assert "identity" in crops.columns  # extra columns survive
    for row in crops.itertuples():
        assert row.path == f"frames/{row.clip_id}"
        files = sorted((out / row.path).glob("*.jpg"))
        n_in = len(dataset["truth"][row.clip_id].frames)
        assert row.num_frames == len(files) == n_in
        assert [f.name for f in files] == [f"{t:05d}.jpg" for t in range(n_in)]
        assert cv2.imread(str(files[0])).shape == (CFG.size, CFG.size, 3)


def test_bad_videos_are_rejected_with_reasons(dataset):
    reasons = {r["clip_id"]: r for r in dataset["rejects"]}
    assert set(reasons) == {"corrupt", "noface"}
    assert "cannot decode" in reasons["corrupt"]["reason"] and "corrupt.mp4" in reasons["corrupt"]["reason"]
    assert "noface.mp4" in reasons["noface"]["reason"] and "min_detection_rate" in reasons["noface"]["reason"]
    assert not (dataset["out"] / "frames" / "corrupt").exists()
    assert not (dataset["out"] / "frames" / "noface").exists()


def test_metrics(dataset):
    m = dataset["metrics"]
    assert (m["videos"], m["accepted"], m["rejected"]) == (4, 2, 2)
    assert m["frames"] == sum(len(c.frames) for c in dataset["truth"].values())
    assert m["detection_rate"] >= 0.9
    crops = dataset["crops"]   # per clip (the validate stage's gate); weighted by frames, the overall rate
    assert crops["detection_rate"].between(CFG.min_detection_rate, 1).all()
    assert (crops["detection_rate"] * crops["num_frames"]).sum() / crops["num_frames"].sum() == \
        pytest.approx(m["detection_rate"])
    assert m["frame_folders"] == 0 and m["rejected_by_problem"] == {"not_a_video": 1, "no_face": 1}
    # Throughput counts every frame decoded, kept or not: both faces and the rejected no-face video (the corrupt
    # file decodes none), over the stage's seconds (stored rounded to 0.01 s; frames_per_second is not).
    decoded = sum(len(read_video(dataset["root"] / f"{c}.mp4")) for c in [*FACES, "noface"])
    assert decoded == m["frames"] + 12 and m["seconds"] > 0
    assert abs(m["frames_per_second"] * m["seconds"] - decoded) <= 0.005 * m["frames_per_second"] + 1e-6


def test_track_follows_the_ground_truth_face(dataset):
    for clip_id, clip in dataset["truth"].items():
        result, _ = track_face(dataset["root"] / f"{clip_id}.mp4", CFG)
        track = result.boxes
        assert result.found >= 0.8 * len(clip.frames) and len(track) == len(clip.frames)
        gt_centre = clip.boxes[:, :2] + clip.boxes[:, 2:] / 2
        error = np.linalg.norm(track[:, :2] - gt_centre, axis=1) / clip.boxes[:, 3]
        assert (error < 0.2).mean() >= 0.9, error
        assert np.all((track[:, 2] > 0.4 * clip.boxes[:, 3]) & (track[:, 2] < 1.2 * clip.boxes[:, 3]))


def scripted_track(detections: list[np.ndarray], **overrides) -> tuple[FaceTracker, list]:
    """A FaceTracker on a 200x200 video at detect_fps (the detector on every frame) whose detector answers
    `detections` in turn; the boxes given as each frame came, and the tracker after `finish`."""
    cfg = replace(PARAMS.face_crop, **{"smooth_window": 1, "track_lookahead_seconds": 0.5, **overrides})
    tracker = FaceTracker(cfg, cfg.detect_fps, (200, 200))
    answers = iter(detections)
    tracker.detect = lambda small: np.asarray(next(answers), np.float32).reshape(-1, 4)
    given = []
    for t in range(len(detections)):
        given.append(tracker.add(t, np.zeros((200, 200, 3), np.uint8)))
    given.append(tracker.finish())
    return tracker, given


def test_the_track_interpolates_missed_frames_holds_its_ends_and_takes_the_median():
    face = [np.array([[10 * t, 0, 60, 60]]) for t in range(8)]
    for t in (0, 3, 4, 7):
        face[t] = np.zeros((0, 4))
    boxes = scripted_track(face)[0].track().boxes
    np.testing.assert_allclose(boxes[:, 0], np.array([10, 10, 20, 30, 40, 50, 60, 60]) + 30)  # ends held, gap filled
    np.testing.assert_allclose(boxes[:, 2], 60)
    spiky = [np.array([[50, 50, 60, 60]])] * 5
    spiky[2] = np.array([[70, 50, 60, 60]])                               # one jittery detection
    np.testing.assert_allclose(scripted_track(spiky, smooth_window=5)[0].track().boxes[:, 0], 80)
    assert scripted_track([np.zeros((0, 4))] * 3)[0].track().boxes is None


def test_the_track_ignores_clutter_and_marks_misses():
    face = np.array([[100, 80, 60, 60]])
    clutter = np.array([[10, 10, 80, 80]])
    detections = [face, np.vstack([clutter, face + 2]), np.zeros((0, 4)), face + 4, clutter, face + 6]
    track = scripted_track(detections)[0].track()
    np.testing.assert_array_equal(track.selected[[0, 1, 3, 5], 0], [100, 102, 104, 106])
    assert np.isnan(track.selected[[2, 4]]).all() and track.found == 4


def test_a_face_that_jumps_for_reacquire_runs_starts_a_new_segment_and_a_flicker_does_not():
    left, right = np.array([[20, 60, 50, 50]]), np.array([[130, 60, 50, 50]])
    cut = [left] * 12 + [right] * 12                                      # a cut between two shots
    tracker, _ = scripted_track(cut)
    boxes = tracker.track().boxes
    assert tracker.segments == 2 and tracker.track().found == 24
    np.testing.assert_allclose(boxes[:12, 0], 45) and np.testing.assert_allclose(boxes[12:, 0], 155)
    runs = PARAMS.face_crop.reacquire_runs
    flicker = [np.vstack([left, right]) if t % 2 else left for t in range(24)]
    for t in range(8, 8 + runs - 1):                                      # the face missed, the other one seen
        flicker[t] = right
    tracker, _ = scripted_track(flicker)
    assert tracker.segments == 1 and (tracker.track().boxes[:, 0] == 45).all()


def test_each_box_is_given_within_the_look_ahead_and_all_by_the_end():
    tracker, given = scripted_track([np.array([[50, 50, 60, 60]])] * 40)
    late = tracker.lookahead + tracker.half                               # frames a box waits, at most
    so_far = np.cumsum([len(batch) for batch in given[:-1]])
    np.testing.assert_array_equal(so_far, np.maximum(0, np.arange(1, 41) - late))
    assert [i for batch in given for i, _ in batch] == list(range(40))  # each once, in order


def test_crop_square_pads_outside_the_frame():
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_square(frame, 0, 0, 40, 0.25, 32)
    assert crop.shape == (32, 32, 3)
    assert crop[0, 0].max() == 0 and crop[-1, -1].min() == 200


def test_video_roundtrip_and_decode_error(tmp_path):
    frames = np.zeros((5, 48, 64, 3), np.uint8)
    frames[:, 10:30, 20:40] = (200, 40, 40)
    assert write_video(frames, tmp_path / "v.mp4", 12) == 5
    back = read_video(tmp_path / "v.mp4")
    assert back.shape == frames.shape
    assert abs(int(back[0, 20, 30, 0]) - 200) < 15 and back[0, 20, 30, 2] < 80  # RGB order kept
    with pytest.raises(VideoDecodeError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")


def test_a_bad_file_gets_our_one_line_not_ffmpeg_or_opencv_logs(tmp_path):
    (tmp_path / "notes.mp4").write_text("these are my notes\n")
    good = np.zeros((20, 64, 64, 3), np.uint8)
    write_video(good, tmp_path / "good.mp4", 12)
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "good.mp4").read_bytes()[:600])
    script = ("import sys\nfrom a3lign_dfer.data.video_io import VideoDecodeError, read_video\n"
              "for name in sys.argv[1:]:\n    try:\n        read_video(name)\n"
              "    except VideoDecodeError as err:\n        print(err)\n")
    out = subprocess.run([sys.executable, "-c", script, "notes.mp4", "cut.mp4"], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stderr == ""                                           # no "moov atom not found", no "[ WARN"
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and "notes.mp4" in lines[0] and "not a video" in lines[0] and "cut.mp4" in lines[1]
