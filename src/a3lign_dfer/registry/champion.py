"""The comparison a release runs before it registers anything: the candidate (models/deploy) against the
version in prod, fetched from the registry into a temporary folder, on the same clips.

The test split and the labelled feedback are scored apart (registry.scoring), judged
(registry.challenger), and written to reports/release/challenger.json (its contract in
report_files.py) with the tables beside it as challenger.md.

Example: python -m a3lign_dfer release          # the fixed gate, this comparison, then the registry
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from a3lign_dfer.config.deploy import DEPLOY_DIR, ReleaseConfig
from a3lign_dfer.inference.predict_videos import Predictor
from a3lign_dfer.registry.challenger import (
    FEEDBACK,
    TEST,
    SetScores,
    challenger_markdown,
    judge,
)
from a3lign_dfer.registry.fetch import fetch_registered
from a3lign_dfer.registry.scoring import (
    BACKEND,
    feedback_clips,
    input_note,
    score,
    stored_crop_input,
    test_split_clips,
    video_file_input,
)
from a3lign_dfer.registry.versions import stages_held
from a3lign_dfer.report_files import RELEASE_CHALLENGER, ChallengerReport

PROD = "prod"


def compare_with_prod(repo: Path, cfg: ReleaseConfig, crops_dir: Path, feedback_dir: Path) -> ChallengerReport:
    """The candidate in `repo`'s models/deploy against `cfg.artifact`'s prod version (none: the candidate
    alone, verdict no_prod), on the test crops under `crops_dir` and the feedback under `feedback_dir`."""
    candidate = Predictor(repo / DEPLOY_DIR, BACKEND)
    classes = candidate.classes
    version = stages_held(str(repo), cfg.artifact).get(PROD)
    with tempfile.TemporaryDirectory(prefix="a3lign-prod-") as tmp:
        models, prod_sha256, comparable, note = {"candidate": candidate}, None, True, None
        if version is not None:
            prod = Predictor(fetch_registered(str(repo), cfg.artifact, PROD, Path(tmp) / PROD).path, BACKEND)
            prod_sha256 = prod.artifact.manifest_sha256
            if list(prod.classes) == list(classes):
                models[PROD] = prod
                note = input_note(models)
            else:
                comparable = False
                note = f"not compared: prod {version} has classes {list(prod.classes)}, the candidate {list(classes)}"
        test = score(models, test_split_clips(crops_dir, classes), stored_crop_input)
        feedback = feedback_clips(feedback_dir, classes)
        on_feedback = score(models, feedback.clips, video_file_input)
    sets = [SetScores(TEST, len(test.labels), test.skipped, test.scores("candidate", classes),
                      test.scores(PROD, classes) if PROD in models else None, note),
            SetScores(FEEDBACK, len(on_feedback.labels), on_feedback.skipped,
                      on_feedback.scores("candidate", classes),
                      on_feedback.scores(PROD, classes) if PROD in models else None,
                      "; ".join(n for n in (feedback.note, note) if n) or None)]
    return judge(sets, cfg.challenger, candidate.artifact.manifest_sha256, version, prod_sha256, comparable)


def write_challenger_report(reports_dir: Path, report: ChallengerReport) -> Path:
    """reports/release/challenger.json, and its tables as challenger.md beside it; returns the markdown's path."""
    path = reports_dir / RELEASE_CHALLENGER.path
    RELEASE_CHALLENGER.write(path, report)
    markdown = path.with_suffix(".md")
    markdown.write_text(challenger_markdown(report))
    return markdown
