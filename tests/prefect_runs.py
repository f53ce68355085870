"""Polling a Prefect server in the trigger and loop tests: a condition met in time, a deployment's runs, the
retrain automation once the server's triggers have it."""
from __future__ import annotations

import time

POLL_FAST = {"PREFECT_RUNNER_POLL_FREQUENCY": "1"}     # the runner looks for runs to start every second


def until(what: str, probe, timeout: float = 180, detail=lambda: ""):
    """probe()'s first true value, asked every half second; TimeoutError naming what did not happen (and `detail`)."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:.0f} s: {what}. {detail()}")
        time.sleep(0.5)
    return value


def child_runs(client, parent_id) -> list:
    """The subflow runs of a flow run, in start order."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))
    return sorted(runs, key=lambda r: r.start_time)


def deployment_runs(client, deployment_id) -> dict:
    """batch -> the deployment's flow run for it."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    return {r.parameters.get("batch"): r for r in runs}


def trigger_loaded(client, deployment_id):
    """The deployment's automation, once the server has it. Serving creates it just after the deployment, and an event
    that arrives before the server's triggers have loaded it is not acted on, so a test waits (2 s more: the
    triggers service loads a new automation right after it is stored)."""
    from flows.deployments import RETRAIN_AUTOMATION

    def owned():
        return [a for a in client.read_automations_by_name(RETRAIN_AUTOMATION)
                if a.actions[0].deployment_id == deployment_id]

    automation = until("the retrain automation is stored", lambda: next(iter(owned()), None))
    assert len(owned()) == 1                                              # serving again replaces it
    time.sleep(2)
    return automation


def retrain_deployment_of(client):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name("a3lign-dfer-retrain/on-drift")
    except ObjectNotFound:
        return None
