"""Prefect flow `a3lign-dfer-monitor`: the drift check on the newest batch in a watched folder.

A batch is a folder of videos or a CSV of video paths (a `predict --out` table works)
dropped into the watched folder; the newest (by modification time) is checked, in this
process, by the drift command's library function (monitoring.drift.check_batch) against
the reference profile in the deployment artifact. The summary (verdict, reasons, drifted
columns, embedding score, class mix, unreadable files) is attached as the markdown
artifact `drift-summary` with a link to the HTML report, and the run fails (red in the
UI) when drift is flagged. Before failing, it emits the Prefect event
`a3lign-dfer.drift.detected` (the batch, the model build, the summary): the retrain
deployment's trigger (flows/deployments.py) listens for it. A clean batch emits nothing.

    python -m flows.monitor --watch data/batches
"""
from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from a3lign_dfer.checksums import sha256
from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.inference.predict_videos import VIDEO_SUFFIXES
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.monitoring.drift import check_batch
from a3lign_dfer.monitoring.summary import DriftSummary
from a3lign_dfer.monitoring.text import describe

DRIFT_EVENT = "a3lign-dfer.drift.detected"
BATCH_RESOURCE = "a3lign-dfer.batch."          # + batch name + "@" + the first 12 hex of the build's manifest sha256


class DriftDetected(RuntimeError):
    """The batch drifted from the reference profile."""


def drift_event(summary: DriftSummary, artifact_sha256: str) -> dict:
    """emit_event's arguments for a flagged batch: the resource names the batch and the model build it was checked
    against (one retrain trigger matches every batch), the payload is what a retrain run shows as its cause."""
    raw, text = summary.to_dict(), describe(summary)
    resource = {"prefect.resource.id": f"{BATCH_RESOURCE}{summary.batch}@{artifact_sha256[:12]}",
                "prefect.resource.name": summary.batch, "a3lign-dfer.artifact.sha256": artifact_sha256}
    related = [{"prefect.resource.id": f"a3lign-dfer.artifact.{artifact_sha256}", "prefect.resource.role": "model",
                "prefect.resource.name": summary.deploy}]
    payload = {"batch": summary.batch, "verdict": text.verdict, "reasons": list(text.reasons),
               "drifted_columns": raw.get("drifted_columns", []), "alarm_columns": raw.get("alarm_columns", []),
               "embedding_score": float(raw["embedding"]["score"]) if "embedding" in raw else None,
               "report": str(Path(summary.report_html).resolve()), "artifact_sha256": artifact_sha256}
    return {"event": DRIFT_EVENT, "resource": resource, "related": related, "payload": payload}


@task(cache_policy=NO_CACHE, task_run_name="newest_batch")
def newest_batch(watch: Path) -> Path:
    """The most recently modified folder or CSV in `watch` (ties: the last name)."""
    if not watch.is_dir():
        raise FileNotFoundError(f"watched folder {watch} does not exist")
    batches = [p for p in watch.iterdir() if (p.is_dir() or p.suffix.lower() == ".csv" or
                                              p.suffix.lower() in VIDEO_SUFFIXES) and not p.name.startswith(".")]
    if not batches:
        raise FileNotFoundError(f"no batch (a folder of videos or a CSV) in {watch}")
    return max(batches, key=lambda p: (p.stat().st_mtime, p.name))


@task(cache_policy=NO_CACHE, task_run_name="drift_check")
def drift_check(batch: Path, deploy: Path, out: Path, backend: str) -> DriftSummary:
    """The drift check of `batch`, its report in `out`; a usage error (no videos, no profile) fails the task."""
    summary = check_batch([str(batch)], deploy, out, backend)
    text, logger = describe(summary), get_run_logger()
    for _, reason in text.unreadable:
        logger.warning(f"error: {reason}")
    logger.info(text.line)
    return summary


def summary_markdown(summary: DriftSummary) -> str:
    text = describe(summary)
    html = Path(summary.report_html).resolve()
    lines = [f"# {text.verdict[0].upper()}{text.verdict[1:]}: batch `{summary.batch}`", "",
             f"{text.compared}. Report: [{html.name}]({html.as_uri()}) (`{html}`)", ""]
    lines += [f"* {r}" for r in text.reasons]
    if text.caveat:
        lines += ["", f"Caveat: {text.caveat}."]
    if text.checks:
        lines += ["", markdown_table(["check", "value"], text.checks.items())]
    if text.unreadable:
        lines += ["", f"**{len(text.unreadable)} unreadable video(s):**", ""]
        lines += [f"* `{path}`: {reason}" for path, reason in text.unreadable]
    return "\n".join(lines)


@flow(name="a3lign-dfer-monitor")
def monitor(watch: str = "data/batches", repo: str = ".", deploy: str = str(DEPLOY_DIR),
            reports: str = "reports/drift", backend: str = "onnxruntime") -> dict:
    """Drift report of the newest batch in `watch`; fails when drift is flagged.

    Args:
        watch: folder where new batches (folders of videos or CSVs) arrive.
        repo: the project workspace: `watch`, `deploy` and `reports` are relative to it.
        deploy: the deployment artifact with its reference profile.
        reports: the report goes to <reports>/<batch name>/ (report.html, report.json, summary.json).
        backend: onnxruntime, torch or tensorrt.
    """
    root = Path(repo).resolve()
    batch = newest_batch(root / watch)
    summary = drift_check(batch, root / deploy, root / reports / batch.stem, backend)
    create_markdown_artifact(key="drift-summary", markdown=summary_markdown(summary),
                             description=f"drift of batch {summary.batch} against the reference profile")
    html = Path(summary.report_html).resolve()
    create_link_artifact(key="drift-report", link=html.as_uri(), link_text=f"{summary.batch}: report.html",
                         description="the Evidently drift report (HTML)")
    if summary.drift:
        event = emit_event(**drift_event(summary, sha256(root / deploy / "manifest.json")))
        get_run_logger().info(f"emitted {DRIFT_EVENT} for batch {summary.batch}"
                              + (f" (event {event.id})" if event else " (no Prefect API: not sent)"))
        raise DriftDetected(describe(summary).line)
    get_run_logger().info(describe(summary).line)
    return summary.to_dict()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watch", default="data/batches")
    parser.add_argument("--repo", default=".")
    parser.add_argument("--deploy", default=str(DEPLOY_DIR))
    args = parser.parse_args()
    monitor(args.watch, args.repo, args.deploy)
