"""Prefect flow `a3lign-dfer-retrain`: the loop's retraining, as the drift monitor's event starts it.

The deployment `a3lign-dfer-retrain/on-drift` (flows/deployments.py) runs it when the
monitor emits `a3lign-dfer.drift.detected`; the event's batch, drift summary and id
arrive as parameters, are logged and attached as the artifact `retrain-cause`. Then,
in order, each a run of its own in the UI:

1. task `feedback_export`: the labelled requests of the prediction log
   (`serve.prediction_log`) as the csv-importer dataset `feedback.dataset` (data/feedback,
   which data.extra_sources trains on), its videos `dvc add`-ed and labels.csv and the
   .dvc file committed (commit_feedback): the release registers only a committed build,
   and that commit must pin the feedback it trained on;
2. the pipeline flow as a subflow (`commit=True`: dvc.lock and metrics committed);
3. the release flow as a subflow: the gates, then GTO `staging`.

A stage or a gate that fails fails the run, and nothing after it runs.

    python -m flows.retrain --batch tuesday     # the same chain by hand
"""
from __future__ import annotations

import argparse
import subprocess
from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from a3lign_dfer.config.feedback import FeedbackParams
from a3lign_dfer.config.schema import load
from a3lign_dfer.errors import MissingInput
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_dfer.orchestration.experiments import run_checked
from a3lign_dfer.serving.feedback_dataset import LABELS, VIDEOS, export_feedback
from a3lign_dfer.serving.prediction_log import open_log
from flows.pipeline import pipeline
from flows.release import release


def commit_feedback(repo: Path, dataset: str, message: str) -> str | None:
    """Version an export the way docs/data.md does by hand: `dvc add` its videos (faces: never in git), then commit
    labels.csv, the videos' .dvc file and the .gitignore beside them, and nothing else. The pipeline's own commit
    then names the feedback it trained on, and the release, which refuses a build that is not committed, can
    register it. The new commit, or None when the export is as already committed."""
    folder = Path(dataset)
    run_dvc(["add", "--quiet", (folder / VIDEOS).as_posix()], repo)
    paths = [p.as_posix() for p in (folder / LABELS, folder / f"{VIDEOS}.dvc", folder / ".gitignore")
             if (repo / p).exists()]
    run_checked(["git", "add", "--", *paths], repo)
    if subprocess.run(["git", "diff", "--cached", "--quiet", "--", *paths], cwd=repo, check=False).returncode == 0:
        return None
    run_checked(["git", "commit", "-q", "-m", message, "--", *paths], repo)
    return run_checked(["git", "rev-parse", "HEAD"], repo).strip()


def cause_markdown(batch: str | None, drift: dict | None, event_id: str | None) -> str:
    if not batch and not drift:
        return "# Retrain started by hand\n\nNo drift event: run from the UI or the command line."
    drift = drift or {}
    rows = [("batch", f"`{batch or drift.get('batch')}`"), ("verdict", drift.get("verdict", "")),
            ("drifted columns", ", ".join(drift.get("drifted_columns", [])) or "none"),
            ("embedding score", f"{drift['embedding_score']:.4g}" if drift.get("embedding_score") is not None else ""),
            ("model build (manifest sha256)", f"`{drift.get('artifact_sha256', '')[:12]}`"),
            ("report", f"`{drift.get('report', '')}`"), ("event", f"`{event_id or ''}`")]
    reasons = [f"* {r}" for r in drift.get("reasons", [])]
    return "\n".join([f"# Retrain on drift in batch `{batch or drift.get('batch')}`", "",
                      markdown_table(["", "drift event"], rows), "", *reasons])


@task(cache_policy=NO_CACHE, task_run_name="feedback_export")
def feedback_export(root: Path, run_name: str) -> dict:
    """The labelled requests as `feedback.dataset`, versioned and committed. Without a prediction log the dataset
    is left as it is (still committed where it changed)."""
    logger, params = get_run_logger(), load(FeedbackParams, root / "params.yaml")
    dataset = params.feedback.dataset
    source = params.serve.prediction_log.url or root / params.serve.prediction_log.path
    exported = None
    try:
        log = open_log(source, root / Path(params.serve.prediction_log.path).parent, create=False)
    except MissingInput as missing:
        logger.warning(f"{missing}; {dataset} is left as it is")
    else:
        try:
            exported = asdict(export_feedback(log, root / dataset, params.data.classes,
                                              params.feedback.test_fraction))
        finally:
            log.close()
        logger.info(f"feedback export: {exported['exported']} labelled request(s) -> {dataset} "
                    f"(per split {exported['per_split']}; skipped without crops: "
                    f"{len(exported['skipped_without_crops'])}, label not in data.classes: "
                    f"{len(exported['skipped_unknown_label'])})")
    commit = None
    if (root / dataset / LABELS).is_file():
        commit = commit_feedback(root, dataset, f"retrain flow run {run_name}: feedback export to {dataset}")
        logger.info(f"{dataset} committed as {commit[:10]}" if commit else f"{dataset} unchanged since its commit")
    return {"dataset": dataset, "exported": exported, "commit": commit}


@flow(name="a3lign-dfer-retrain")
def retrain(repo: str = ".", batch: str | None = None, drift: dict | None = None,
            event_id: str | None = None) -> dict:
    """Feedback export, the pipeline, the release: what a drift event starts.

    Args:
        repo: the project's git + DVC workspace.
        batch: the drifted batch that caused this run (the event's payload), for the record.
        drift: the event's payload: verdict, reasons, drifted columns, embedding score, report, model build.
        event_id: the triggering event's id (Prefect's Events page shows it).
    """
    root, logger = Path(repo).resolve(), get_run_logger()
    name = flow_run.get_name() or "local"
    create_markdown_artifact(key="retrain-cause", markdown=cause_markdown(batch, drift, event_id),
                             description="the drift event that started this retrain")
    if batch or drift:
        reasons = "; ".join((drift or {}).get("reasons", [])) or "no reasons given"
        logger.info(f"retrain on drift in batch {batch} (event {event_id}): {reasons}")
    feedback = feedback_export(root, name)
    built = pipeline(str(root), commit=True)
    released = release(str(root))
    logger.info(f"retrain done: {released.get('artifact')} {released.get('version')} -> "
                f"{released.get('stages')}")
    return {"batch": batch, "feedback": feedback, "pipeline": built, "release": released}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".")
    parser.add_argument("--batch", help="the drifted batch to name as the cause (for the record)")
    args = parser.parse_args()
    retrain(args.repo, args.batch)
