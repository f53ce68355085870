"""`timeline`: an expression timeline of a video file, a camera or a stream, from the deployment artifact only.

Each window's prediction is printed as a JSON line as soon as its frames have come (a live source gives
them as it plays); `--out` writes the CSV and, beside it, the PNG. A bad source is one line on stderr.

Example: python -m a3lign_dfer timeline interview.mp4 --out reports/interview_timeline.csv
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from a3lign_dfer.config.serving import TimelineConfig
from a3lign_dfer.inference.backends import SplitRunner
from a3lign_dfer.inference.timeline import open_source, predict_windows
from a3lign_dfer.inference.timeline_files import plot, table
from a3lign_dfer.inference.video_input import InputError, PreprocessSpec
from a3lign_dfer.serving.artifact import verify


def print_timeline(source: str, deploy_dir: Path, cfg: TimelineConfig, precision: str = "fp32", device: str = "cpu",
                   out_csv: str | None = None, cache: bool = True, max_seconds: float | None = None) -> int:
    verify(deploy_dir).require_precision(precision)
    spec = PreprocessSpec.load(deploy_dir / "preprocess.json")
    classes = json.loads((deploy_dir / "labels.json").read_text())["classes"]
    runner = SplitRunner(deploy_dir, precision, device)
    points = []
    try:
        faces = open_source(source, spec, cfg, max_seconds=max_seconds)
        for point in tqdm(predict_windows(faces, runner, classes, spec.image, cache), desc="windows", unit="window",
                          file=sys.stderr, disable=None):
            points.append(point)
            print(json.dumps(point.to_json()), flush=True)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:                       # a live source stops here; what came is still written
        print(f"stopped after {len(points)} window(s)", file=sys.stderr)
    if not points:
        print(f"error: {source}: ended after fewer frames than one window ({cfg.window_seconds:g} s)", file=sys.stderr)
        return 1
    if out_csv:
        csv = Path(out_csv)
        csv.parent.mkdir(parents=True, exist_ok=True)
        table(points, classes).to_csv(csv, index=False)
        plot(points, classes, csv.with_suffix(".png"), f"{source}: {cfg.window_seconds:g} s windows every "
                                                        f"{cfg.stride_seconds:g} s ({precision})")
        print(f"wrote {csv} and {csv.with_suffix('.png')}", file=sys.stderr)
    return 0
