"""Face detectors on real faces: the default finds them, crops come out upright (also from
a phone clip stored sideways), the YuNet model file is hash-checked, names are checked.

Small versions of the benchmark's videos (a3lign_research.benchmarks.face_detectors measures them all,
hard LFW faces included, in reports/face_detectors.md).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from dataclasses import replace

from conftest import PARAMS, crops_of

from a3lign_dfer.data import detectors
from a3lign_dfer.data.detectors import YuNetDetector, make_detector, read_verified
from a3lign_dfer.data.face_track import NoFaceError, require_face, track_face
from a3lign_research.face_videos import lfw_videos, no_face_videos, photo_videos, upright
from a3lign_dfer.data.video_io import read_video, write_video

CFG = replace(PARAMS.face_crop, workers=1)  # the default detector and its params
FRAMES = 20


@pytest.fixture(scope="module")
def real_videos(tmp_path_factory):
    """(video, its mp4, frames decoded from it) for the photo clips and five evenly spaced LFW faces."""
    root = tmp_path_factory.mktemp("real")
    videos = photo_videos(FRAMES) + lfw_videos(FRAMES, faces=(0, 20, 40, 60, 80))
    return [(v, path, read_video(path)) for v in videos for path in [v.write(root / f"{v.name}.mp4")]]


def test_default_detector_finds_real_faces_and_crops_them_upright(real_videos):
    for video, path, frames in real_videos:
        track, crops = crops_of(path, CFG)
        assert track.found >= 0.95 * len(frames), f"{video.name}: face in {track.found}/{len(frames)} frames"
        assert upright(crops, video, CFG.margin).all(), video.name
        assert not upright([np.rot90(c) for c in crops], video, CFG.margin).any()  # the check can fail


def test_sideways_phone_clip_decodes_upright(real_videos):
    video, _, frames = next(row for row in real_videos if row[0].rotation)
    assert frames.shape == video.frames.shape  # portrait, as displayed, not as stored
    assert np.abs(frames.astype(int) - video.frames).mean() < 6  # codec loss only


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_read_video_applies_display_rotation(tmp_path, rotation):
    upright_frames = np.zeros((2, 48, 64, 3), np.uint8)
    upright_frames[:, :16, :16] = 255  # a white top-left corner
    stored = np.ascontiguousarray(np.rot90(upright_frames, -rotation // 90, axes=(1, 2)))
    write_video(stored, tmp_path / "phone.mp4", 12, rotation=rotation)
    back = read_video(tmp_path / "phone.mp4")
    assert back.shape == upright_frames.shape
    assert np.abs(back.astype(int) - upright_frames).mean() < 4


def test_default_detector_rejects_face_free_videos(tmp_path):
    for video in no_face_videos(FRAMES):
        with pytest.raises(NoFaceError, match=video.name):
            path = video.write(tmp_path / f"{video.name}.mp4")
            require_face(track_face(path, CFG)[0], CFG, path)


def test_haar_finds_upright_real_faces(real_videos):
    """Haar stays usable on real faces now that it no longer shrinks them to its 20-px window
    (it does lose faces rolled past ~20 degrees: grace_roll is left out)."""
    haar = replace(CFG, detector="haar")
    for video, path, frames in real_videos:
        if video.name in ("astronaut_pan", "grace_zoom", "phone_sideways"):
            assert track_face(path, haar)[0].found >= 0.95 * len(frames), video.name


def test_yunet_model_hash_is_checked(tmp_path, monkeypatch):
    model = detectors.resources.files(detectors.YUNET_PACKAGE) / detectors.YUNET_FILE
    assert len(read_verified(model, detectors.YUNET_SHA256)) > 100_000
    tampered = tmp_path / detectors.YUNET_FILE
    shutil.copyfile(model, tampered)
    with tampered.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00")
    with pytest.raises(RuntimeError, match=r"has sha256 [0-9a-f]{64}, expected 8f2383e4.*reinstall"):
        read_verified(tampered, detectors.YUNET_SHA256)
    with pytest.raises(RuntimeError, match="not found"):
        read_verified(tmp_path / "missing.onnx", detectors.YUNET_SHA256)
    monkeypatch.setattr(detectors, "YUNET_SHA256", "0" * 64)  # the detector refuses a file it does not expect
    with pytest.raises(RuntimeError, match="expected 0000"):
        YuNetDetector(CFG)


def test_detector_registry():
    for name in ("haar", "yunet"):
        assert len(make_detector(replace(CFG, detector=name))(np.zeros((120, 160, 3), np.uint8))) == 0
    with pytest.raises(ValueError, match=r"unknown face detector 'retinaface-typo'.*\['haar', 'yunet'\]"):
        make_detector(replace(CFG, detector="retinaface-typo"))
