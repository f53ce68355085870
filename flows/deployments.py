"""The deployments the Prefect UI lists, served from this process (`make serve`).

Pipeline weekly (Monday 03:00 UTC), drift monitor daily (06:00 UTC, the newest batch
in data/batches against models/deploy), release on demand. All run in this
workspace; the pipeline deployment allows one run at a time (DVC's lock would
refuse a second anyway). Trigger a run from the UI ("Run" on a deployment) or
`prefect deployment run 'a3lign-dfer-pipeline/weekly'`.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.deployments
"""
from __future__ import annotations

from pathlib import Path

from prefect import serve

from flows.monitor import monitor
from flows.pipeline import pipeline
from flows.release import release

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_CRON = "0 3 * * 1"
MONITOR_CRON = "0 6 * * *"
MONITOR_WATCH = "data/batches"


def deployments(repo: Path = ROOT) -> list:
    return [
        pipeline.to_deployment(
            name="weekly", cron=PIPELINE_CRON, parameters={"repo": str(repo)}, concurrency_limit=1,
            tags=["a3lign-dfer", "dvc", "training"],
            description="Every DVC stage of dvc.yaml as a task (up-to-date stages are not recomputed), metrics "
                        "attached to the run; commits dvc.lock and metrics. `set_params` runs a DVC experiment."),
        monitor.to_deployment(
            name="daily", cron=MONITOR_CRON, parameters={"repo": str(repo), "watch": MONITOR_WATCH},
            concurrency_limit=1, tags=["a3lign-dfer", "monitoring", "drift"],
            description=f"Evidently drift report of the newest batch in {MONITOR_WATCH} against the reference "
                        "profile in models/deploy; the summary and a link to the report are attached, and the run "
                        "fails when drift is flagged."),
        release.to_deployment(
            name="on-demand", parameters={"repo": str(repo)}, tags=["a3lign-dfer", "registry"],
            description="Quality gate (params.yaml `release`) on the built model; a pass registers a GTO version "
                        "and assigns staging (prod with promote_to_prod)."),
    ]


if __name__ == "__main__":
    serve(*deployments())
