"""`timeline`: one label per stride over a sliding window of a video file, a camera or a stream."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from a3lign_dfer.commands import run_module
from a3lign_dfer.config.deploy import DEPLOY_DIR, PRECISIONS

HELP = ("expression timeline of a video file, a camera index or a stream URL: JSON lines (start, end, label, "
        "probabilities, face box), window and stride in params timeline")


def add_arguments(p) -> None:
    p.add_argument("source", help="a video file, a camera index (0) or a stream URL OpenCV opens (rtsp://, http://)")
    p.add_argument("--deploy", default=str(DEPLOY_DIR))
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="int8: the INT8 image encoder, refused unless the manifest releases it")
    p.add_argument("--out", help="also write the timeline table (CSV) here, and its plot beside it (.png)")
    p.add_argument("--window-seconds", type=float, help="default params timeline.window_seconds")
    p.add_argument("--stride-seconds", type=float, help="default params timeline.stride_seconds")
    p.add_argument("--max-seconds", type=float, help="stop a camera or stream after this much of its video "
                                                     "(default: until it ends, or Ctrl-C)")
    p.add_argument("--no-cache", action="store_true", help="encode every window's frames anew (for benchmarks)")
    p.add_argument("--device", default=None)


def run(args) -> int:
    """Each window's prediction as a JSON line as soon as it comes; a bad source is one line on stderr."""
    from tqdm import tqdm

    from a3lign_dfer.config.schema import load
    from a3lign_dfer.config.serving import TimelineParams
    from a3lign_dfer.errors import ConfigError
    from a3lign_dfer.inference.timeline_files import write
    from a3lign_dfer.inference.timeline_source import source_timeline
    from a3lign_dfer.inference.video_input import InputError

    cfg = load(TimelineParams, args.params).timeline
    try:
        cfg = replace(cfg, window_seconds=args.window_seconds or cfg.window_seconds,
                      stride_seconds=args.stride_seconds or cfg.stride_seconds)
    except ValueError as err:
        raise ConfigError(f"--window-seconds/--stride-seconds: {err}") from err
    timeline = source_timeline(args.source, Path(args.deploy), cfg, args.precision, args.device, not args.no_cache,
                               args.max_seconds)
    points = []
    try:
        for point in tqdm(timeline.points, desc="windows", unit="window", file=sys.stderr, disable=None):
            points.append(point)
            print(json.dumps(point.to_json()), flush=True)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:                       # a live source stops here; what came is still written
        print(f"stopped after {len(points)} window(s)", file=sys.stderr)
    if not points:
        print(f"error: {args.source}: ended after fewer frames than one window ({cfg.window_seconds:g} s)",
              file=sys.stderr)
        return 1
    if args.out:
        csv = Path(args.out)
        png = write(points, timeline.classes, csv, f"{args.source}: {cfg.window_seconds:g} s windows every "
                                                  f"{cfg.stride_seconds:g} s ({args.precision})")
        print(f"wrote {csv} and {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
