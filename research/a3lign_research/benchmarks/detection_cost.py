"""What face detection costs per setting, and what each setting finds, side by side in one run (not a test).

What: the working tree's face track (`a3lign_dfer.data.face_track.track_face`, the params' face_crop with three
fields replaced) for each setting of the detector's input side (face_crop.detect_max_side 320, 480, 640), its
runs per second of video (face_crop.detect_fps 5, 10, 15, 30) and OpenCV's threads (YuNet, cv2.setNumThreads
1 or 2), on the real-face clips of a3lign_research.face_videos (4 photo clips and 4 LFW faces, true boxes
known) filmed at 640x360, 1280x720 and 1920x1080, 3 s at 30 fps, H.264 mp4, and the astronaut's pan done in
0.8 s (a fast handheld swing). Per setting and resolution, means
over the clips: CPU seconds per clip (process time, every thread) and wall seconds, the detection rate (runs
that found the face / detector runs) and the IoU of the track's square boxes against the true ones (the
square of the true box's longer side about its centre) over every frame.

Why (issue 34): the detection defaults are chosen on these numbers, not on test labels. The block says which
setting the params use and whether it is the cheapest one (CPU s per clip over the three resolutions, one
thread: the face_crop stage and the service's workers run OpenCV on one) with detection rate >= 0.95 on every
clip and IoU
no worse than the best setting's minus 0.01 on every resolution, computed from the JSON.

How long: every side x rate on 1 thread, and 2 threads only at the params' detect_fps (2 threads buy wall
time with CPU; the whole 3x4x2 grid would double the run): 15 settings x 24 clips, about 5 minutes on 2 idle
cores. --quick (one clip per resolution, 2 sides x 2 rates + 2 threads at the params' setting; printed and
checked against a copy of the docs page, nothing written) takes about 15 seconds.

JSON in reports/benchmarks/detection_cost.json; block `detection-cost` in docs/serving.md.
Example: python -m a3lign_research.benchmarks.detection_cost
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.config.params import load_params
from a3lign_dfer.data.face_track import track_face
from a3lign_dfer.markdown_table import markdown_table
from a3lign_research import ROOT
from a3lign_research.blocks import publish, publish_to_copy
from a3lign_research.face_videos import FaceVideo, lfw_videos, photo_videos, square_iou

RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
SIDES, RATES = (320, 480, 640), (5, 10, 15, 30)
FPS, SECONDS = 30, 3
LFW_FACES = (0, 24, 48, 72)                  # video_cost's four
FAST_PAN_FRAMES = 24
RULE = {"detection_rate": 0.95, "iou_below_best": 0.01}


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str
    resolution: str
    path: Path
    truth: np.ndarray                         # (frames, 3) true square boxes cx, cy, side


def videos(size: tuple[int, int], quick: bool) -> Iterator[FaceVideo]:
    """The real-face clips filmed at `size`, a few at a time (90 frames of 1080p are 560 MB)."""
    if quick:
        yield from lfw_videos(FPS * SECONDS, LFW_FACES[:1], size)
        return
    yield from photo_videos(FPS * SECONDS, size)
    yield from lfw_videos(FPS * SECONDS, LFW_FACES, size)
    # The pan done in 0.8 s: the face crosses 3 of its widths a second, as a handheld phone swings.
    yield dataclasses.replace(photo_videos(FAST_PAN_FRAMES, size)[0], name="astronaut_fast_pan")


def film(folder: Path, quick: bool) -> list[Clip]:
    """The clips as mp4, 360p first (the first one warms each setting up); only their true boxes kept."""
    clips = []
    for res, size in RESOLUTIONS.items():
        for video in videos(size, quick):
            x, y, w, h = video.boxes.T
            truth = np.column_stack([x + w / 2, y + h / 2, np.maximum(w, h)])
            clips.append(Clip(video.name, res, video.write(folder / f"{video.name}_{res}.mp4", fps=FPS), truth))
    return clips


def tracked(clip: Clip, cfg) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    track = track_face(clip.path, cfg)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - start
    track = track[0] if isinstance(track, tuple) else track          # (track, kept frames) before issue 34
    if track.frames != len(clip.truth):
        raise RuntimeError(f"{clip.path.name}: {track.frames} frames tracked, {len(clip.truth)} filmed")
    iou = np.zeros(len(clip.truth)) if track.boxes is None else square_iou(np.asarray(track.boxes), clip.truth)
    iou = np.nan_to_num(iou)                                          # a frame without a box counts as a miss
    return {"cpu_s": cpu, "wall_s": wall, "detection_rate": track.detection_rate, "iou": float(iou.mean())}


def measure(clips: list[Clip], base, side: int, rate: float, threads: int) -> dict:
    """One setting on every clip, after one untimed run (the detector loaded, the decoder warm)."""
    cv2.setNumThreads(threads)
    cfg = dataclasses.replace(base, detect_max_side=side, detect_fps=float(rate))
    tracked(clips[0], cfg)
    row = {"detect_max_side": side, "detect_fps": float(rate), "threads": threads, "resolutions": {}}
    for res in RESOLUTIONS:
        runs = [tracked(c, cfg) for c in clips if c.resolution == res]
        row["resolutions"][res] = {"clips": len(runs), **{k: round(float(np.mean([r[k] for r in runs])), 4)
                                                        for k in ("cpu_s", "wall_s", "detection_rate", "iou")},
                                   "detection_rate_min": round(min(r["detection_rate"] for r in runs), 4)}
    row["cv2_threads_after"] = cv2.getNumThreads()                     # the track did not reset them
    return row


def settings(default: dict, quick: bool) -> list[tuple[int, float, int]]:
    sides = sorted({default["detect_max_side"], 320} if quick else {*SIDES, default["detect_max_side"]})
    rates = sorted({default["detect_fps"], 30.0} if quick else {*map(float, RATES), default["detect_fps"]})
    two = [default["detect_max_side"]] if quick else sides
    return [(s, r, 1) for s in sides for r in rates] + [(s, default["detect_fps"], 2) for s in two]


def _key(row: dict) -> tuple:
    return row["detect_max_side"], row["detect_fps"], row["threads"]


def cost(row: dict) -> float:
    """CPU s per clip, mean over the resolutions."""
    return float(np.mean([r["cpu_s"] for r in row["resolutions"].values()]))


def choice(record: dict) -> dict:
    """The one-thread settings that pass the rule on every resolution, the cheapest of them, and the params'."""
    one = [r for r in record["rows"] if r["threads"] == 1]
    best = {res: max(r["resolutions"][res]["iou"] for r in one) for res in record["resolutions"]}

    def misses(row: dict) -> list[str]:
        out = []
        for res, m in row["resolutions"].items():
            if m["detection_rate_min"] < record["rule"]["detection_rate"]:
                out.append(f"detection rate {m['detection_rate_min']:.3f} on a clip at {res}")
            if m["iou"] < best[res] - record["rule"]["iou_below_best"]:
                out.append(f"IoU {m['iou']:.3f} at {res} (best {best[res]:.3f})")
        return out

    passing = [r for r in one if not misses(r)]
    default = next(r for r in record["rows"] if _key(r) == _key({**record["default"], "threads": 1}))
    return {"best_iou": best, "passing": [_key(r) for r in passing],
            "cheapest": _key(min(passing, key=cost)) if passing else None,
            "default": _key(default), "default_misses": misses(default), "default_cost": cost(default)}


def _setting(key: tuple) -> str:
    side, rate, threads = key
    return f"side {side}, {rate:g} detections/s, {threads} thread{'s' * (threads > 1)}"


def markdown(record: dict) -> str:
    """The `detection-cost` block: one row per setting, each cell 360p / 720p / 1080p; the verdict below."""
    pick, res = choice(record), list(record["resolutions"])

    def cells(row: dict, field: str, digits: int) -> str:
        return " / ".join(f"{row['resolutions'][x][field]:.{digits}f}" for x in res)

    rows = []
    for r in record["rows"]:
        mark = ", ".join(m for m, on in (("**params**", _key(r) == pick["default"]),
                                         ("cheapest passing", _key(r) == pick["cheapest"])) if on)
        rows.append([r["detect_max_side"], f"{r['detect_fps']:g}", r["threads"], cells(r, "cpu_s", 2),
                     cells(r, "wall_s", 2), cells(r, "detection_rate_min", 3), cells(r, "iou", 3), mark])
    clips = record["rows"][0]["resolutions"][res[0]]["clips"]
    rule = record["rule"]
    lines = [f"The face track of {clips} real-face clips per resolution ({record['seconds']} s at {record['fps']} "
             f"fps; {', '.join(f'{x} {w}x{h}' for x, (w, h) in record['resolutions'].items())}), means per clip; "
             f"each cell is {' / '.join(res)}:", "",
             markdown_table(["detector side", "detections per s of video", "threads", "CPU s per clip", "wall s",
                             "detection rate (worst clip)", "box IoU vs true boxes", ""], rows), ""]
    said = (f"The params use {_setting(pick['default'])} ({pick['default_cost']:.2f} CPU s per clip over the "
            f"three resolutions). The rule (one thread; detection rate >= {rule['detection_rate']:g} on every clip and "
            f"IoU no worse than the best setting's minus {rule['iou_below_best']:g} on every resolution) ")
    if pick["cheapest"] is None:
        said += "is met by no setting"
    else:
        cheapest = next(r for r in record["rows"] if _key(r) == pick["cheapest"])
        said += (f"is met by {len(pick['passing'])} of {sum(r['threads'] == 1 for r in record['rows'])} settings; "
                 f"the cheapest is {_setting(pick['cheapest'])} ({cost(cheapest):.2f} CPU s per clip)")
    if pick["default"] == pick["cheapest"]:
        said += ": the params' setting is that one."
    elif pick["default_misses"]:
        said += f": the params' setting is **not** it, it misses on {'; '.join(pick['default_misses'])}."
    else:
        said += ": the params' setting passes but is **not** the cheapest."
    return "\n".join(lines + [said])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one clip per resolution, fewer settings; nothing "
                        "written (the block is rendered into a copy of its page)")
    args = parser.parse_args(argv)
    base = load_params(ROOT / "params.yaml").face_crop
    default = {"detect_max_side": base.detect_max_side, "detect_fps": float(base.detect_fps)}
    record = {"resolutions": RESOLUTIONS, "seconds": SECONDS, "fps": FPS, "default": default, "rule": RULE,
              "face_crop": dataclasses.asdict(base), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        clips = film(Path(tmp), args.quick)
        record["clips"] = sorted({c.name for c in clips})
        for side, rate, threads in settings(default, args.quick):
            row = measure(clips, base, side, rate, threads)
            record["rows"].append(row)
            print(_setting(_key(row)), {k: v["cpu_s"] for k, v in row["resolutions"].items()}, flush=True)
        record["choice"] = choice(record)
        if args.quick:
            publish_to_copy("detection-cost", record, Path(tmp) / "root")
        else:
            publish("detection-cost", record)
    print(markdown(record))
    return record


if __name__ == "__main__":
    main()
