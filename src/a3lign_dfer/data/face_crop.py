"""The face_crop stage: every video's face track (data.face_track), its crops stored as JPEGs.

A video is decoded once: each frame's crop is cut as soon as the track has decided its box (at most
face_crop.track_lookahead_seconds later), so a worker holds that many full-resolution frames whatever the
video's length. Frames more than the look-ahead before the face first shows get no crop. A video whose
face is found too rarely is rejected (its crops removed) rather than cropped blindly; an unreadable one
is rejected too, never fatal.

Clips of kind "frames" (datasets that ship face-cropped frame folders) skip detection:
each frame is padded to a square and resized into the same layout as the crops.

The clips run in shards (data.shards) on the Dask cluster (data.cluster): a shard's
results land in shards/<n>.json once its crops are on disk, so a killed run resumes
from the shards it finished.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import pandas as pd

from a3lign_dfer.config.data import FaceCropConfig, ScaleConfig
from a3lign_dfer.data import shards
from a3lign_dfer.data.cluster import dask_client, limit_threads, map_shards
from a3lign_dfer.data.face_track import NoFaceError, require_face, square_crop, video_crops
from a3lign_dfer.data.frame_folders import frame_files, read_frame
from a3lign_dfer.data.manifest import ClipError, kinds, reject, validate
from a3lign_dfer.data.video_io import VideoDecodeError, VideoReader


@dataclass(frozen=True)
class ClipResult:
    """What a worker did with one clip (it crosses a process boundary, so plain fields only)."""

    clip_id: str
    decoded: int                     # frames decoded
    num_frames: int = 0              # crops stored on disk
    found: int | None = None         # frames the detector ran on that have a tracked face (videos only)
    detected: int | None = None      # frames the detector ran on (videos only)
    problem: str | None = None       # rejected: the manifest.PROBLEMS key,
    reason: str = ""                 # why,
    path: str = ""                   # and the file it is about

    @property
    def detection_rate(self) -> float:
        return self.found / self.detected if self.detected else float("nan")


def _rejected(clip_id: str, err: ClipError, decoded: int) -> ClipResult:
    return ClipResult(clip_id, decoded, problem=err.problem, reason=str(err), path=err.path)


def _write_jpegs(crops, dst: Path, quality: int) -> int:
    """Store (index, RGB crop) pairs as dst/<index>.jpg as they come."""
    dst.mkdir(parents=True, exist_ok=True)
    for t, crop in crops:
        cv2.imwrite(str(dst / f"{t:05d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return len(list(dst.glob("*.jpg")))


def _crop_video(task: tuple) -> ClipResult:
    """Worker: one video -> JPEG crops, or a reject (problem, reason). Never raises on bad input."""
    clip_id, src, dst, cfg = task
    shutil.rmtree(dst, ignore_errors=True)  # no stale frames from an earlier run
    try:
        video = VideoReader(src)
    except VideoDecodeError as err:
        return _rejected(clip_id, err, 0)
    with video:
        tracker, crops = video_crops(video, cfg)
        try:
            written = _write_jpegs(crops, dst, cfg.jpeg_quality)
            track = tracker.track()
            require_face(track, cfg, src)
        except (VideoDecodeError, NoFaceError) as err:
            shutil.rmtree(dst, ignore_errors=True)
            return _rejected(clip_id, err, tracker.seen)
    return ClipResult(clip_id, track.frames, written, track.found, len(track.detected))


def _resize_frames(task: tuple) -> ClipResult:
    """Worker: one folder of face-cropped frames -> the same square JPEG layout, no detection.
    Every frame is read before anything is written, so a bad image rejects the clip whole."""
    clip_id, src, dst, cfg = task
    shutil.rmtree(dst, ignore_errors=True)
    try:
        frames = [read_frame(f) for f in frame_files(src)]
    except ClipError as err:
        return _rejected(clip_id, err, 0)
    crops = ((t, square_crop(f, cfg.size)) for t, f in enumerate(frames))
    return ClipResult(clip_id, len(frames), _write_jpegs(crops, dst, cfg.jpeg_quality))


def _crop_clip(task: tuple) -> ClipResult:
    kind, *rest = task
    return (_resize_frames if kind == "frames" else _crop_video)(tuple(rest))


def _crop_shard(task: tuple) -> tuple[list[ClipResult], bool]:
    """Worker: the clips of one shard, their results under the shard's final name; (results, reused)
    where an earlier run already finished this shard from the same inputs and code."""
    path, out_dir, root, setting, threads, clips = task
    key = shards.key("face_crop", setting, [(kind, clip_id, shards.digest(src)) for kind, clip_id, src, *_ in clips])
    if shards.reusable(out_dir, path, key):
        return [ClipResult(**clip) for clip in json.loads(path.read_text())], True
    limit_threads(threads)
    results = [_relative_path(_crop_clip(clip), root) for clip in clips]
    with shards.written_atomically(path) as tmp:
        tmp.write_text(json.dumps([dataclasses.asdict(r) for r in results]))
    shards.record(out_dir, path, key)
    return results, False


def _relative_path(result: ClipResult, root: Path) -> ClipResult:
    """A reject's file (and its reason's) relative to the data root, so the shard's bytes do not depend on
    where the data is."""
    path = Path(result.path)
    if not path.is_relative_to(root):
        return result
    return dataclasses.replace(result, path=str(path.relative_to(root)), reason=result.reason.replace(f"{root}/", ""))


def crop_dataset(manifest: pd.DataFrame, root: Path, out_dir: Path, cfg: FaceCropConfig, scale: ScaleConfig,
                 classes: tuple[str, ...]) -> tuple[pd.DataFrame, list[dict], dict]:
    """Crop every clip of `manifest` (paths relative to `root`) into out_dir/frames/<clip_id>/.

    Videos are decoded, detected and cropped; frame folders (kind "frames") are only
    resized. Returns the crops manifest (input rows and extra columns, path
    "frames/<clip_id>", num_frames counted on disk, detection_rate: the clip's fraction
    of detected frames (every face_crop.detect_stride-th) with a tracked face, NaN for
    frame folders; the caller writes it), reject rows (clip_id, path, problem, reason) and
    metrics. The metrics' detection_rate is that fraction over all detected frames of
    accepted videos (None without videos); frames_per_second counts the frames decoded by
    this run (not by the shards it reused).
    """
    start = time.time()
    root, out_dir = Path(root).resolve(), Path(out_dir).resolve()    # workers may run elsewhere (shared disk)
    setting = [{k: v for k, v in dataclasses.asdict(cfg).items() if k != "workers"}, shards.code_digest()]
    clips = [(kind, r.clip_id, root / r.path, out_dir / "frames" / r.clip_id, cfg)
             for kind, r in zip(kinds(manifest), manifest.itertuples())]
    tasks = [(out_dir / "shards" / f"{shards.name(i)}.json", out_dir, root, setting, scale.torch_threads, clips[rows])
             for i, rows in enumerate(shards.plan(len(clips), scale.shard_size))]
    with dask_client(scale) as client:
        workers = len(client.scheduler_info()["workers"])
        per_shard = map_shards(client, _crop_shard, tasks, scale.retries, "face crops")
    results = {r.clip_id: r for shard, _ in per_shard for r in shard}
    decoded_now = sum(r.decoded for shard, reused in per_shard if not reused for r in shard)

    accepted = manifest["clip_id"].map(lambda c: results[c].problem is None).astype(bool)
    kept = manifest.loc[accepted].copy()
    kept["path"] = "frames/" + kept["clip_id"]
    kept["num_frames"] = [results[c].num_frames for c in kept["clip_id"]]
    # Per clip: the validate stage gates training on it (validate.min_clip_detection_rate).
    kept["detection_rate"] = [results[c].detection_rate for c in kept["clip_id"]]
    shards.keep_only(out_dir, [out_dir / "manifest.parquet", out_dir / "rejects.csv", *(task[0] for task in tasks),
                               *(shards.record_of(out_dir, task[0]) for task in tasks),
                               *(out_dir / "frames" / c for c in kept["clip_id"])])
    rejects = []
    for r in manifest.itertuples():
        result = results[r.clip_id]
        if result.problem is not None:
            rejects.append(reject(r.clip_id, Path(result.path), result.problem, result.reason))
    frames = int(kept["num_frames"].sum())
    detected = [results[c] for c in kept["clip_id"] if results[c].detected is not None]
    detected_frames = sum(r.detected for r in detected)
    seconds = time.time() - start
    metrics = {
        "videos": len(manifest),
        "accepted": len(kept),
        "rejected": len(rejects),
        "frames": frames,
        "frame_folders": int((kinds(manifest) == "frames").sum()),
        "detection_rate": (sum(r.found for r in detected) / detected_frames) if detected_frames else None,
        "frames_per_second": decoded_now / max(seconds, 1e-9),
        "seconds": round(seconds, 2),
        "rejected_by_problem": pd.Series([r["problem"] for r in rejects], dtype=object).value_counts().to_dict(),
        "shards": len(tasks),
        "shards_reused": sum(reused for _, reused in per_shard),
        "workers": workers,
    }
    return validate(kept.reset_index(drop=True), classes, where="crops manifest"), rejects, metrics
