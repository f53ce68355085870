"""What one video costs to prepare for the model: today's path, the new one and the decode-only floor side by side
in one run (issue 34; a script, not a test).

  today  `face_frames` of commit BASELINE_REV with that commit's face_crop params: OpenCV decode, a whole-file
         face track, then a second streamed pass for the sampled frames;
  new    `face_frames` of the working tree with its params (or --deploy's preprocess.json);
  floor  the same file decoded by PyAV, one codec thread, no frame converted: what decoding alone costs.
Clips:
  real   8 real-face clips (face_videos: photos and LFW faces) at 640x360, 1280x720 and 1920x1080, 3 s at
         30 fps, as a phone records, with their true face boxes;
  test   the first test clips of data/raw scaled to 480x360, 960x720 and 1440x1080 (skipped without data/raw);
  long   one 30 s 1080p clip of a real face.
Each (clip, path) runs in a fresh process (baseline_tree.run_in_tree) on one OpenCV thread: CPU seconds are the
process time of the call alone (after imports and the detector's warm-up), peak extra MB the kernel's peak-RSS
mark (reset before the call) minus the RSS then. Both face paths give the detection rate and the square crop
boxes at the sampled frames: their IoU with the true boxes (squared on their longer side) and with each other.
With an artifact (--deploy, or models/deploy when present) both paths' crops get its label, and today's service
(BASELINE_REV's code) and the new one run side by side at concurrency 1, 4 and 16 on 720p clips. Then a cProfile
of one 3 s 1080p real clip through the new path, and the targets (TARGETS), met or missed.

Writes reports/benchmarks/video_cost.json and the block `video-cost` of docs/serving.md. Heavy modules are
imported inside the functions that need them: every measuring child imports this module.
  python -m a3lign_research.benchmarks.video_cost             about 12 minutes on 2 cores (artifact, data/raw)
  python -m a3lign_research.benchmarks.video_cost --quick     one clip per set and resolution, no long clip and
                                                              no service; prints the block, publishes nothing
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.markdown_table import markdown_table
from a3lign_research import ROOT
from a3lign_research.benchmarks.baseline_tree import BASELINE_REV, extract, run_in_tree
from a3lign_research.blocks import publish

MODULE = "a3lign_research.benchmarks.video_cost"       # what the children import (not __main__)
PATHS = ("today", "new", "floor")
REAL = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
TEST = {"360p": (480, 360), "720p": (960, 720), "1080p": (1440, 1080)}
FPS, SECONDS, LONG_SECONDS = 30, 3, 30
CONCURRENCY = (1, 4, 16)
PROFILE_ROWS = 12
TARGETS = {"cpu_s_3s_1080p": 0.6, "floor_ratio_3s_1080p": 1.5, "detection_rate": 0.95}


@dataclasses.dataclass(frozen=True)
class Clip:
    set: str
    resolution: str
    path: Path
    truth: np.ndarray | None      # (frames, 3) true face box as a square (cx, cy, side); None: not known


# --- in the measuring child ----------------------------------------------------------------------------------

def measure(path: str, kind: str, spec: dict) -> dict:
    """One clip through one path (PATHS) in this fresh process: CPU s, peak extra MB, and for the face paths
    the crops, the crop boxes at the sampled frames, which frames those are and the detection rate (or the
    error that refused the clip)."""
    call = (lambda: {"frames": decode_only(path)}) if kind == "floor" else face_call(path, spec)
    Path("/proc/self/clear_refs").write_text("5")          # the peak RSS (VmHWM) starts again from now
    before = _status_kb("VmRSS")
    start = time.process_time()
    out = call()
    cpu = time.process_time() - start
    return {**out, "cpu_s": cpu, "extra_mb": (_status_kb("VmHWM") - before) / 1024}


def face_call(path: str, spec: dict) -> Callable[[], dict]:
    """This tree's `face_frames` on `path`, ready to call: imported, one OpenCV thread, the detector loaded."""
    import cv2

    from a3lign_dfer.data.face_track import warm_detector
    from a3lign_dfer.inference.video_input import InputError, PreprocessSpec, face_frames

    preprocess = PreprocessSpec.from_json(spec)
    cv2.setNumThreads(1)
    warm_detector(preprocess.face_crop)

    def call() -> dict:
        try:
            faces = face_frames(path, preprocess)
        except InputError as err:
            return {"error": str(err), "detection_rate": 0.0}
        return {"crops": faces.crops, "boxes": faces.track[faces.used], "used": faces.used,
                "detection_rate": faces.stats.detection_rate}
    return call


def decode_only(path: str) -> int:
    """Every frame decoded by PyAV with one codec thread and none converted: the floor under any path."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return sum(1 for _ in container.decode(stream))


def profile(path: str, spec: dict, rows: int) -> dict:
    """cProfile (process time) of one clip through this tree's `face_frames`: the `rows` functions with the
    most own time."""
    import cProfile
    import pstats

    from a3lign_dfer.data.face_track import warm_detector
    from a3lign_dfer.inference.video_input import PreprocessSpec, face_frames

    preprocess = PreprocessSpec.from_json(spec)
    warm_detector(preprocess.face_crop)
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(face_frames, path, preprocess)
    stats = pstats.Stats(profiler)      # .stats: (file, line, name) -> (primitive calls, calls, own, cumulative, _)
    top = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:rows]
    return {"total_s": stats.total_tt,
            "rows": [{"function": name if file == "~" else f"{Path(file).name}:{line} {name}", "calls": calls,
                      "own_s": own, "cumulative_s": cumulative}
                     for (file, line, name), (_, calls, own, cumulative, _) in top]}


def _status_kb(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


# --- in the benchmark's process -------------------------------------------------------------------------------

def today_spec(spec: dict, tree: Path) -> dict:
    """The preprocess.json today's path reads: `spec` with the face_crop section of the tree's params.yaml
    (today's settings, and none of the keys its FaceCropConfig(**face_crop) would refuse)."""
    import yaml

    return {**spec, "face_crop": yaml.safe_load((tree / "params.yaml").read_text())["face_crop"]}


def new_spec(deploy: Path | None) -> dict:
    """The artifact's preprocess.json, or one from the working tree's params (its image part then unused)."""
    if deploy is not None:
        return json.loads((deploy / "preprocess.json").read_text())
    from a3lign_dfer.config.params import load_params
    from a3lign_dfer.inference.video_input import PreprocessSpec
    from a3lign_dfer.model.image_spec import ImageSpec

    params = load_params(ROOT / "params.yaml")
    return PreprocessSpec(params.face_crop, ImageSpec(224, (0.5,) * 3, (0.5,) * 3), params.features.num_frames,
                          params.export.min_frames).to_json()


def squares(boxes: np.ndarray) -> np.ndarray:
    """(x, y, w, h) boxes as (cx, cy, side) squares on their longer side."""
    return np.column_stack([boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2:].max(1)])


def make_clips(tmp: Path, raw: Path, quick: bool) -> tuple[list[Clip], list[str]]:
    """The clips of every set, written to `tmp`; and what was skipped, in words."""
    from a3lign_dfer.data.video_io import write_video
    from a3lign_research.face_videos import lfw_videos, photo_videos

    clips, skipped = [], []
    for res, size in REAL.items():
        videos = photo_videos(FPS * SECONDS, size)[:1] if quick else \
            photo_videos(FPS * SECONDS, size) + lfw_videos(FPS * SECONDS, (0, 24, 48, 72), size)
        clips += [Clip("real", res, v.write(tmp / f"{v.name}_{res}.mp4", fps=FPS), squares(v.boxes)) for v in videos]
        del videos
    if (raw / "manifest.parquet").is_file():
        clips += test_clips(tmp, raw, 1 if quick else 8)
    else:
        skipped.append(f"test clips: no {raw / 'manifest.parquet'}")
    if quick:
        skipped.append("the 30 s clip and the service: --quick")
    else:
        pan = photo_videos(FPS * SECONDS, REAL["1080p"])[0]              # the astronaut crossing the frame
        frames, boxes = np.concatenate([pan.frames, pan.frames[::-1]]), np.concatenate([pan.boxes, pan.boxes[::-1]])
        order = np.arange(FPS * LONG_SECONDS) % len(frames)
        long = tmp / "astronaut_pan_30s_1080p.mp4"
        write_video((frames[t] for t in order), long, FPS)
        clips.append(Clip("long", "1080p", long, squares(boxes[order])))
    return clips, skipped


def test_clips(tmp: Path, raw: Path, count: int) -> list[Clip]:
    """data/raw's first `count` test clips, each scaled to the TEST sizes (no true boxes)."""
    import cv2
    import pandas as pd

    from a3lign_dfer.data.video_io import write_video

    manifest = pd.read_parquet(raw / "manifest.parquet")
    videos = {}
    for row in manifest[manifest["split"] == "test"].head(count).itertuples():
        with av.open(str(raw / row.path)) as container:
            fps = round(float(container.streams.video[0].average_rate))
            videos[row.clip_id] = fps, [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    clips = []
    for res, size in TEST.items():
        for clip_id, (fps, frames) in videos.items():
            path = tmp / f"{clip_id}_{res}.mp4"
            write_video((cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames), path, fps)
            clips.append(Clip("test", res, path, None))
    return clips


def measure_clip(clip: Clip, tree: Path, specs: dict, label: Callable[[np.ndarray], int] | None) -> dict:
    """One clip through the three paths, each in a fresh process: its per-path numbers."""
    from a3lign_research.face_videos import square_iou

    runs = {kind: run_in_tree(tree if kind == "today" else None, f"{MODULE}:measure", str(clip.path), kind,
                              specs.get(kind, {})) for kind in PATHS}
    faces = {kind: runs[kind] for kind in ("today", "new")}
    ok = {kind: "error" not in r for kind, r in faces.items()}
    result = {"clip": clip.path.stem, "cpu_s": {k: r["cpu_s"] for k, r in runs.items()},
              "extra_mb": {k: r["extra_mb"] for k, r in runs.items()},
              "detection_rate": {k: r["detection_rate"] for k, r in faces.items()},
              "errors": {k: r["error"] for k, r in faces.items() if not ok[k]},
              "iou_truth": {k: float(square_iou(r["boxes"], clip.truth[r["used"]]).mean())
                            for k, r in faces.items() if ok[k] and clip.truth is not None}}
    if all(ok.values()):
        result["iou_today_new"] = float(square_iou(faces["today"]["boxes"], faces["new"]["boxes"]).mean())
        if label is not None:
            result["labels"] = {k: label(r["crops"]) for k, r in faces.items()}
    print(f"{clip.set} {clip.resolution} {result['clip']}: CPU s " +
          ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_s"].items()), flush=True)
    return result


def summarize_clips(results: list[dict]) -> dict:
    """A row of the table: per path mean and max CPU s, max peak MB, mean detection rate and IoUs."""
    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    face_paths = ("today", "new")
    cpu = {k: [r["cpu_s"][k] for r in results] for k in PATHS}
    labelled = [r["labels"] for r in results if "labels" in r]
    return {"clips": len(results),
            "cpu_s": {k: {"mean": float(np.mean(v)), "max": float(np.max(v))} for k, v in cpu.items()},
            "extra_mb_max": {k: max(r["extra_mb"][k] for r in results) for k in PATHS},
            "detection_rate": {k: mean([r["detection_rate"][k] for r in results]) for k in face_paths},
            "refused": {k: sum(k in r["errors"] for r in results) for k in face_paths},
            "iou_truth": {k: mean([r["iou_truth"][k] for r in results if k in r["iou_truth"]]) for k in face_paths},
            "iou_today_new": mean([r["iou_today_new"] for r in results if "iou_today_new" in r]),
            "same_label": sum(x["today"] == x["new"] for x in labelled) if labelled else None,
            "labelled": len(labelled)}


def labeller(deploy: Path, spec: dict) -> Callable[[np.ndarray], int]:
    """crops -> the artifact's label index (ONNX Runtime), as the service computes it."""
    from a3lign_dfer.inference.backends import load_backend
    from a3lign_dfer.inference.video_input import PreprocessSpec

    backend, image = load_backend(deploy, "onnxruntime"), PreprocessSpec.from_json(spec).image
    return lambda crops: int(backend(image.graph_input(crops)[None])[1].argmax())


def baseline_artifact(deploy: Path, tree: Path, dest: Path) -> Path:
    """A copy of the artifact that today's service reads: today's preprocess.json, its manifest hash updated."""
    shutil.copytree(deploy, dest)
    spec = today_spec(json.loads((dest / "preprocess.json").read_text()), tree)
    (dest / "preprocess.json").write_text(json.dumps(spec, indent=2) + "\n")
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["files"]["preprocess.json"] = hashlib.sha256((dest / "preprocess.json").read_bytes()).hexdigest()
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dest


def service_levels(deploy: Path, tree: Path, uploads: dict[str, list], rounds: int, tmp: Path) -> dict:
    """Clips/s and latency of today's and the new service on the same 720p uploads, in alternating rounds; each
    answer is checked against its own path's label computed here."""
    import contextlib

    from a3lign_dfer.serving.process import running_service
    from a3lign_research.benchmarks.common import load_level, summarize

    results: dict[str, dict] = {"today": {}, "new": {}}
    with contextlib.ExitStack() as services:
        urls = {"today": services.enter_context(running_service(
                    ["--artifact", str(baseline_artifact(deploy, tree, tmp / "deploy_today"))], tree,
                    tree / "params.yaml", env={"PYTHONPATH": str(tree / "src")})),
                "new": services.enter_context(running_service(["--artifact", str(deploy)], ROOT))}
        for level in CONCURRENCY:
            runs = {"today": [], "new": []}
            for _ in range(rounds):
                for name in runs:
                    runs[name].append(load_level(urls[name], uploads[name], level))
            for name in runs:
                results[name][str(level)] = summarize(runs[name])
            print(f"service, concurrency {level}: " + ", ".join(
                f"{name} {results[name][str(level)]['clips_per_s']:.2f} clips/s" for name in runs), flush=True)
    return results


def targets(rows: dict) -> dict:
    """Each target of issue 34 on the measured rows: its value and whether it is met."""
    real = {key: row for key, row in rows.items() if key.startswith("real/")}
    cpu = rows["real/1080p"]["cpu_s"]
    ratio = cpu["new"]["mean"] / cpu["floor"]["mean"]
    out = {"cpu_s_3s_1080p": {"value": cpu["new"]["mean"], "met": cpu["new"]["mean"] <= TARGETS["cpu_s_3s_1080p"]},
           "floor_ratio_3s_1080p": {"value": ratio, "met": ratio <= TARGETS["floor_ratio_3s_1080p"]}}
    lowest = min(row["detection_rate"]["new"] for row in real.values())
    out["detection_rate"] = {"value": lowest, "met": lowest >= TARGETS["detection_rate"]}
    pairs = {key: (row["iou_truth"]["today"] or 0.0, row["iou_truth"]["new"] or 0.0) for key, row in real.items()}
    out["iou_vs_truth"] = {"value": pairs, "met": all(new >= today for today, new in pairs.values())}
    return out


def markdown(report: dict) -> str:
    def num(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    def pair(a: float | None, b: float | None, fmt: str) -> str:
        return f"{num(a, fmt)} / {num(b, fmt)}"

    table = []
    for key, r in report["rows"].items():
        cpu = r["cpu_s"]
        refused = sum(r["refused"].values())
        table.append([f"{key.split('/')[0]} ({r['clips']})", key.split("/")[1],
                      pair(cpu["today"]["mean"], cpu["today"]["max"], ".2f"),
                      pair(cpu["new"]["mean"], cpu["new"]["max"], ".2f"), f"{cpu['floor']['mean']:.2f}",
                      f"{cpu['new']['mean'] / cpu['floor']['mean']:.2f}x",
                      f"{cpu['today']['mean'] / cpu['new']['mean']:.2f}x",
                      pair(r["extra_mb_max"]["today"], r["extra_mb_max"]["new"], ".0f"),
                      pair(r["detection_rate"]["today"], r["detection_rate"]["new"], ".3f")
                      + (f" ({r['refused']['today']}/{r['refused']['new']} refused)" if refused else ""),
                      pair(r["iou_truth"]["today"], r["iou_truth"]["new"], ".3f"),
                      num(r["iou_today_new"], ".3f"),
                      f"{r['same_label']}/{r['labelled']}" if r["same_label"] is not None else "-"])
    out = [markdown_table(["clips", "resolution", "today: CPU s mean / max", "new: CPU s mean / max",
                           "floor: CPU s", "new / floor", "today / new", "peak extra MB today / new",
                           "detection rate today / new", "IoU vs truth today / new", "IoU today-new",
                           "same label"], table)]
    if svc := report.get("service"):
        per_s = {name: [svc[name][str(c)]["clips_per_s"] for c in CONCURRENCY] for name in ("today", "new")}
        wrong = {name: sum(svc[name][str(c)]["wrong_or_failed"] for c in CONCURRENCY) for name in per_s}
        out += ["", markdown_table(["service on 720p clips", *(f"concurrency {c}" for c in CONCURRENCY)], [
            [f"today's ({report['baseline_rev']}): clips/s", *(f"{x:.2f}" for x in per_s["today"])],
            ["new: clips/s", *(f"{x:.2f}" for x in per_s["new"])],
            ["new / today", *(f"{b / a:.2f}x" for a, b in zip(per_s["today"], per_s["new"]))]]),
            "", f"Answers other than the label computed here from the same path's crops: today's {wrong['today']}, "
                f"new {wrong['new']}."]
    out += ["", "Targets (issue 34):", *target_lines(report["targets"])]
    p = report["profile"]
    out += ["", f"Profile of `{p['clip']}` (3 s 1080p) through the new path under cProfile: {p['total_s']:.2f} "
                f"CPU s in all, the {len(p['rows'])} functions with the most own time:", "",
            markdown_table(["function", "calls", "own s", "cumulative s"],
                           [[f"`{r['function']}`", r["calls"], f"{r['own_s']:.3f}", f"{r['cumulative_s']:.3f}"]
                            for r in p["rows"]])]
    notes = [f"today: the code and face_crop params of `{report['baseline_rev']}`; face_crop keys whose value "
             f"differs from the new path's: {settings_diff(report['face_crop']) or 'none'}",
             "labels: " + (f"artifact `{report['deploy']}`" if report["deploy"] else
                           "no artifact given (`--deploy`), not compared"),
             *report["skipped"]]
    return "\n".join([*out, "", "; ".join(notes) + "."])


def target_lines(found: dict) -> list[str]:
    def line(key: str, text: str) -> str:
        slow = key.startswith(("cpu", "floor")) and not found[key]["met"]
        return f"* {text}: {'**met**' if found[key]['met'] else '**missed**'}" + \
            (" (where the time goes: the profile below)" if slow else "")

    pairs = ", ".join(f"{key.split('/')[1]} {today:.3f} / {new:.3f}"
                      for key, (today, new) in found["iou_vs_truth"]["value"].items())
    return [line("cpu_s_3s_1080p", f"3 s 1080p real-face clips, new path: {found['cpu_s_3s_1080p']['value']:.3f} "
                                   f"CPU s mean (at most {TARGETS['cpu_s_3s_1080p']})"),
            line("floor_ratio_3s_1080p", f"the same against the decode-only floor: "
                                         f"{found['floor_ratio_3s_1080p']['value']:.2f}x (at most "
                                         f"{TARGETS['floor_ratio_3s_1080p']}x)"),
            line("detection_rate", f"detection rate, new path, lowest real-face row: "
                                   f"{found['detection_rate']['value']:.3f} (at least {TARGETS['detection_rate']})"),
            line("iou_vs_truth", f"crop box IoU vs the true boxes no worse than today's on any real-face row "
                                 f"(today / new: {pairs})")]


def settings_diff(face_crop: dict) -> str:
    today, new = face_crop["today"], face_crop["new"]
    return ", ".join(f"{k} {today.get(k, 'absent')} -> {new.get(k, 'absent')}" for k in dict.fromkeys([*today, *new])
                     if k != "workers" and today.get(k) != new.get(k))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deploy", help="an artifact (default: models/deploy when present): labels and the service")
    ap.add_argument("--raw", default=str(ROOT / "data/raw"), help="the test clips' manifest.parquet and videos")
    ap.add_argument("--rounds", type=int, default=1, help="service rounds per concurrency")
    ap.add_argument("--skip-service", action="store_true")
    ap.add_argument("--quick", action="store_true", help="one clip per set and resolution, no long clip, no "
                    "service; prints the block and publishes nothing")
    args = ap.parse_args(argv)
    deploy = Path(args.deploy) if args.deploy else ROOT / DEPLOY_DIR
    deploy = deploy if (deploy / "preprocess.json").is_file() else None
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        tree = extract(BASELINE_REV, tmp / "baseline")
        specs = {"new": new_spec(deploy)}
        specs["today"] = today_spec(specs["new"], tree)
        label = None if deploy is None else labeller(deploy, specs["new"])
        clips, skipped = make_clips(tmp, Path(args.raw), args.quick)
        results = [measure_clip(clip, tree, specs, label) for clip in clips]
        per_clip = {}
        for clip, result in zip(clips, results):
            per_clip.setdefault(f"{clip.set}/{clip.resolution}", []).append(result)
        first_1080p = next(c for c in clips if c.set == "real" and c.resolution == "1080p")
        found = run_in_tree(None, f"{MODULE}:profile", str(first_1080p.path), specs["new"], PROFILE_ROWS)
        rows = {key: summarize_clips(results) for key, results in per_clip.items()}
        report = {"baseline_rev": BASELINE_REV, "quick": args.quick, "deploy": None if deploy is None else str(deploy),
                  "face_crop": {name: specs[name]["face_crop"] for name in ("today", "new")},
                  "rows": rows, "per_clip": per_clip, "skipped": skipped,
                  "profile": {"clip": first_1080p.path.stem, **found}, "targets": targets(rows)}
        if deploy is not None and not args.quick and not args.skip_service:
            classes = json.loads((deploy / "labels.json").read_text())["classes"]
            uploads = {name: [(c.path.name, c.path.read_bytes(), classes[r["labels"][name]])
                              for c, r in zip(clips, results) if c.resolution == "720p" and c.set != "long"
                              and "labels" in r] for name in ("today", "new")}
            report["service"] = service_levels(deploy, tree, uploads, args.rounds, tmp)
    if not args.quick:
        publish("video-cost", report)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
