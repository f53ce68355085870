"""The expression timeline of a video file, a camera or a stream, from the deployment artifact only (the
`timeline` command's library).

Its points come as the source plays (a live source gives each window when its frames have come), so a
caller can show each at once and still keep what came when a live source is stopped.

Example: python -m a3lign_dfer timeline interview.mp4 --out reports/interview_timeline.csv
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.config.serving import TimelineConfig
from a3lign_dfer.inference.artifact import verify
from a3lign_dfer.inference.backends import SplitRunner
from a3lign_dfer.inference.timeline import TimelinePoint, open_source, predict_windows
from a3lign_dfer.inference.video_input import PreprocessSpec


@dataclass(frozen=True)
class SourceTimeline:
    classes: list[str]
    points: Iterator[TimelinePoint]     # one per window as it completes; InputError where the source is unusable


def source_timeline(source: str, deploy_dir: Path, cfg: TimelineConfig, precision: str = "fp32", device: str = "cpu",
                    cache: bool = True, max_seconds: float | None = None) -> SourceTimeline:
    """The timeline of `source` through the artifact's split graphs; the artifact is checked here, the source
    is opened when the first point is asked for."""
    artifact = verify(deploy_dir)
    artifact.require_precision(precision)
    spec, classes = artifact.preprocess(), artifact.manifest.classes
    runner = SplitRunner(deploy_dir, precision, device)
    return SourceTimeline(classes, _points(source, spec, cfg, runner, classes, cache, max_seconds))


def _points(source: str, spec: PreprocessSpec, cfg: TimelineConfig, runner: SplitRunner, classes: list[str],
            cache: bool, max_seconds: float | None) -> Iterator[TimelinePoint]:
    faces = open_source(source, spec, cfg, max_seconds=max_seconds)
    yield from predict_windows(faces, runner, classes, spec.image, cache)
