"""The deployments the Prefect UI lists, served from this process (`make serve`).

Pipeline weekly (Monday 03:00 UTC), drift monitor daily (06:00 UTC, the newest batch
in data/batches against models/deploy), release on demand, and the retrain chain
(feedback export, pipeline, release) on the monitor's drift event. All run in this
workspace; the pipeline deployment allows one run at a time (DVC's lock would
refuse a second anyway). Trigger a run from the UI ("Run" on a deployment) or
`prefect deployment run 'a3lign-dfer-pipeline/weekly'`.

The retrain trigger is a Prefect automation (the open-source server runs them; the UI's
Automations page lists it), created when the deployment is served: it fires on the first
`a3lign-dfer.drift.detected` event, passes the event's batch, payload and id as the run's
parameters (Jinja on the event), and then ignores drift events for RETRAIN_COOLDOWN. The
deployment's concurrency limit of 1 with collision strategy CANCEL_NEW cancels a run that
would start while another retrain runs (one that outlives the cool-down).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.deployments
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import serve
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
)
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from flows.monitor import BATCH_RESOURCE, DRIFT_EVENT, monitor
from flows.pipeline import pipeline
from flows.release import release
from flows.retrain import retrain

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_CRON = "0 3 * * 1"
MONITOR_CRON = "0 6 * * *"
MONITOR_WATCH = "data/batches"
# After the trigger fires, drift events are ignored this long: the monitor keeps flagging a drifted batch until a
# retrained model is in prod, so events within the window are that same drift, not news (a re-run monitor, more
# batches from the same camera). The daily monitor's next flag, a day later, may start the next retrain.
RETRAIN_COOLDOWN = timedelta(hours=12)
RETRAIN_AUTOMATION = "a3lign-dfer: retrain on drift"
# The event as the flow's parameters. A template that is one expression renders through `tojson` and is parsed
# back (Prefect's automations), so `drift` arrives as the payload's dict; the event id is a UUID, hence `string`.
RETRAIN_PARAMETERS = {"batch": "{{ event.payload.batch }}", "drift": "{{ event.payload }}",
                      "event_id": "{{ event.id | string }}"}


def retrain_trigger(cooldown: timedelta = RETRAIN_COOLDOWN) -> DeploymentEventTrigger:
    """The automation that runs the retrain deployment on the monitor's drift event, once per `cooldown`: a
    reactive trigger fires on its first matching event, then opens its next window only when this one ends (one
    window for every batch: no `for_each`)."""
    return DeploymentEventTrigger(
        name=RETRAIN_AUTOMATION, expect={DRIFT_EVENT}, match={"prefect.resource.id": f"{BATCH_RESOURCE}*"},
        posture="Reactive", threshold=1, within=cooldown, parameters=RETRAIN_PARAMETERS,
        description=f"The monitor flagged drift ({DRIFT_EVENT}): export the feedback, run the pipeline, then the "
                    f"release; further drift events within {_hours(cooldown)} of a firing are ignored.")


def retrain_deployment(flow=retrain, repo: Path = ROOT, cooldown: timedelta = RETRAIN_COOLDOWN):
    """`a3lign-dfer-retrain/on-drift` with its trigger and one run at a time (a run that would start beside
    another is cancelled, not queued). `flow`: the retrain flow, or a stand-in of the same name in tests."""
    return flow.to_deployment(
        name="on-drift", parameters={"repo": str(repo)}, triggers=[retrain_trigger(cooldown)],
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        tags=["a3lign-dfer", "training", "registry", "drift"],
        description=f"On the monitor's drift event ({DRIFT_EVENT}): feedback export to data/feedback (committed "
                    "with DVC), the pipeline flow, then the release flow, each as its own run. The event's batch "
                    f"and summary are the run's parameters; at most one run per {_hours(cooldown)}, never two at once.")


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


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
        retrain_deployment(repo=repo),
    ]


if __name__ == "__main__":
    serve(*deployments())
