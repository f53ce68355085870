"""The streamed face track at phone resolutions: the detector on a shrunk copy still finds real faces in
1080p, the training crops (face_crop stage) and the served crops (video_input) of one video are the same
pixels, a long 1080p video is prepared in bounded memory, and the request limits refuse with their kind.
Across a cut the track finds each shot's face (and would not without re-acquiring), a flickering second
face stays clutter, a timeline's windows follow the face into the next shot, `predict` and `timeline`
decode a file once, and a frame folder gets a timeline."""
from __future__ import annotations

import resource
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import PARAMS, crops_of

from a3lign_dfer.data.face_crop import crop_dataset
from a3lign_dfer.data.face_track import detection_scale, track_face
from a3lign_research.face_videos import photo_videos, second_face_flickering, two_shots, upright
from a3lign_dfer.data.video_io import write_video
from a3lign_dfer.config.serving import TimelineConfig
from a3lign_dfer.data import video_io
from a3lign_dfer.inference.timeline import file_windows
from a3lign_dfer.inference.video_input import InputError, PreprocessSpec, RequestLimits, face_frames
from a3lign_dfer.model.image_spec import ImageSpec

CFG = replace(PARAMS.face_crop, workers=1)
HD = (1920, 1080)


def _spec(cfg=CFG) -> PreprocessSpec:
    return PreprocessSpec(cfg, ImageSpec(112, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), 16, 4)


def test_shrunk_detector_finds_real_faces_in_1080p_and_crops_them_upright(tmp_path):
    assert detection_scale(*HD[::-1], CFG.detect_max_side) <= 0.5          # it really runs on a small copy
    for video in photo_videos(24, HD)[:3]:                                 # pan, zoom, roll of real photos
        path = video.write(tmp_path / f"{video.name}.mp4", fps=30)
        track, crops = crops_of(path, CFG)
        assert track.frame_size == (1080, 1920)
        assert track.detection_rate >= 0.95, f"{video.name}: {track.found}/{len(track.detected)}"
        assert upright(crops, video, CFG.margin).all(), video.name
        true_centre = video.boxes[:, :2] + video.boxes[:, 2:] / 2
        error = np.linalg.norm(track.boxes[:, :2] - true_centre, axis=1) / video.boxes[:, 3]
        assert np.median(error) < 0.15, (video.name, error)                # boxes mapped back to the full frame


def test_a_stride_detects_on_fewer_frames_and_interpolates_the_rest(tmp_path):
    video = photo_videos(30, (1280, 720))[1]
    path = video.write(tmp_path / "zoom.mp4", fps=30)
    every, _ = track_face(path, replace(CFG, detect_fps=30))
    third, _ = track_face(path, replace(CFG, detect_fps=10))    # 30 fps: every 3rd frame
    assert (every.stride, third.stride) == (1, 3)
    np.testing.assert_array_equal(third.detected, [*range(0, 30, 3), 29])   # and the last frame
    assert third.boxes.shape == every.boxes.shape == (30, 3)
    assert np.abs(third.boxes[:, 2] / every.boxes[:, 2] - 1).max() < 0.1  # the zooming face's size followed


@pytest.mark.parametrize("detect_fps", [30, 15])
def test_training_and_serving_crops_of_one_video_are_the_same_pixels(tmp_path, detect_fps, scale):
    cfg = replace(CFG, detect_fps=detect_fps)
    video = photo_videos(40, (1280, 720))[1]                       # 720p: detection on a shrunk copy
    path = video.write(tmp_path / "clip.mp4", fps=30)
    manifest = pd.DataFrame([{"clip_id": "clip", "path": "clip.mp4", "label_idx": 0, "label_name": "happy",
                              "dataset": "test", "fold": 0, "split": "test", "num_frames": 40, "identity": 0}])
    crops, rejects, _ = crop_dataset(manifest, tmp_path, tmp_path / "crops", cfg, scale, PARAMS.data.classes)
    assert not rejects and crops["num_frames"].item() == 40
    served = face_frames(path, _spec(cfg))
    assert len(served.used) == 16
    for index, crop in zip(served.used, served.crops):
        stored = cv2.imread(str(tmp_path / "crops/frames/clip" / f"{index:05d}.jpg"))
        np.testing.assert_array_equal(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB), crop)


def _peak_extra_mb(path: str) -> float:
    cv2.setNumThreads(1)
    face_frames(path, _spec())                                     # imports and the detector loaded first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    faces = face_frames(path, _spec())
    assert faces.stats.frames == 240
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def test_a_long_1080p_video_is_prepared_without_holding_its_frames(tmp_path):
    """240 frames of 1080p are 1.5 GB decoded: the request holds the 16 sampled frames (100 MB) and one more."""
    pan = photo_videos(30, HD)[0].frames
    path = tmp_path / "long.mp4"
    write_video((pan[t % 30] for t in range(240)), path, 30)
    with ProcessPoolExecutor(1, get_context("spawn")) as pool:       # a fresh process: its own peak memory
        extra = pool.submit(_peak_extra_mb, str(path)).result()
    assert extra < 300, f"{extra:.0f} MB"


def test_request_limits_refuse_with_their_kind_before_the_cost(tmp_path):
    path = photo_videos(30, (1280, 720))[0].write(tmp_path / "pan.mp4", fps=30)   # 30 x 0.92 Mpx = 27.6
    cases = {RequestLimits(29, 1000, 60): "too_many_frames", RequestLimits(900, 20, 60): "too_many_pixels",
             RequestLimits(900, 1000, 0.01): "too_costly"}
    for limits, kind in cases.items():
        with pytest.raises(InputError, match="pan.mp4") as err:
            face_frames(path, _spec(), limits)
        assert err.value.kind == kind
    assert face_frames(path, _spec(), RequestLimits(30, 28, 60)).crops.shape == (16, 112, 112, 3)


def _centre_error(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance of the track's box centres from the true ones, in true face heights, per frame."""
    return np.linalg.norm(boxes[:, :2] - (truth[:, :2] + truth[:, 2:] / 2), axis=1) / truth[:, 3]


def test_across_a_cut_the_track_finds_each_shots_face_and_a_flickering_second_face_stays_clutter(tmp_path):
    shots = two_shots(60, (1280, 720))                              # the face jumps across the frame half way
    path = shots.write(tmp_path / "two_shots.mp4", fps=30)
    track, _ = track_face(path, CFG)
    between = np.abs(np.arange(60) - 30) < track.stride             # no detection says which shot these show
    assert track.detection_rate == 1.0 and (_centre_error(track.boxes, shots.boxes)[~between] < 0.15).all()
    one_segment, _ = track_face(path, replace(CFG, reacquire_runs=10**6))     # never re-acquired: the old track
    assert one_segment.detection_rate < 0.6 and (_centre_error(one_segment.boxes[30:], shots.boxes[30:]) > 1).all()
    flicker = second_face_flickering(60, (1280, 720))               # a larger second face on every other frame
    track, _ = track_face(flicker.write(tmp_path / "flicker.mp4", fps=30), CFG)
    assert (_centre_error(track.boxes, flicker.boxes) < 0.15).all()


class _Decodes:
    """Counts the files video_io opens for reading."""

    def __init__(self, monkeypatch) -> None:
        self.count, opener = 0, video_io.av.open

        def counted(file, mode="r", **kwargs):
            self.count += mode == "r"
            return opener(file, mode, **kwargs)
        monkeypatch.setattr(video_io.av, "open", counted)


def test_timeline_windows_follow_the_face_into_the_next_shot_in_one_decode(tmp_path, monkeypatch):
    shots = two_shots(90, (1280, 720))
    path = shots.write(tmp_path / "two_shots.mp4", fps=30)
    decodes = _Decodes(monkeypatch)
    windows = list(file_windows(path, _spec(), TimelineConfig(1.0, 0.5, 30)).windows)
    assert decodes.count == 1
    assert [(w.start, w.end) for w in windows] == [(k * 15, k * 15 + 30) for k in range(5)]
    for w in windows:                                               # each window's face, on either side of the cut
        assert w.crops is not None and w.detection_rate == 1.0, (w.start, w.detection_rate)
        x, y, side, _ = w.box
        middle = int(w.sampled[len(w.sampled) // 2])
        assert _centre_error(np.array([[x + side / 2, y + side / 2]]), shots.boxes[[middle]])[0] < 0.15
    face_frames(path, _spec())                                       # predict and /predict: one decode too
    assert decodes.count == 2


def test_a_frame_folder_gets_a_timeline_at_the_default_frame_rate(tmp_path):
    folder = tmp_path / "clip_0001"
    folder.mkdir()
    frames = photo_videos(45)[1].frames
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t + 1:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    faces = file_windows(folder, _spec(), TimelineConfig(1.0, 0.5, 15))
    windows = list(faces.windows)
    assert (faces.fps, faces.frames, faces.frame_size) == (15, 45, (240, 320))
    assert [(w.start, w.end) for w in windows] == [(0, 15), (8, 23), (16, 31), (24, 39), (30, 45)]
    assert all(w.crops is not None and w.detection_rate == 1.0 and w.box == [0, -40, 320, 320] for w in windows)


def test_an_artifact_exported_before_track_segments_is_served_with_one_segment_per_video():
    raw = _spec().to_json()
    for key in ("track_lookahead_seconds", "reacquire_runs"):
        del raw["face_crop"][key]
    older = PreprocessSpec.from_json(raw).face_crop
    assert older.reacquire_runs > 10**6 and replace(older, reacquire_runs=CFG.reacquire_runs) == CFG
