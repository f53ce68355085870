"""Prefect flow `a3lign-dfer-pipeline`: every DVC stage of dvc.yaml as its own task, in order.

Each task runs `dvc repro --single-item <stage>`, so DVC decides whether the
stage is up to date (then nothing is recomputed) and the task attaches the
stage's metrics to the run as a markdown artifact. One `dvc status` before the
first task names the changed stages: a stage outside it, none of whose upstream
stages re-ran, is reported up to date without a DVC call of its own. Tasks run
one after another: DVC holds one lock per workspace. A failing stage fails its
task and the flow with the stage's last output lines; later stages do not run.

    python -m flows.pipeline                                  # the committed params
    python -m flows.pipeline --set stage3.lr.mat=0.003        # recorded as a DVC experiment
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from a3lign_dfer.config.data import SCHEDULER_ENV
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.orchestration import experiments
from a3lign_dfer.orchestration.dvc_stages import (
    DvcLocked,
    Stage,
    StageRun,
    changed_stages,
    metrics_markdown,
    pipeline_stages,
    repro_stage,
)


def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def _lock_held(task, task_run, state) -> bool:
    """Retry only a transient failure: another DVC command held the workspace lock."""
    try:
        state.result()
    except DvcLocked:
        return True
    except Exception:
        return False
    return False


class ThrottledLog:
    """Stage output to the run's log; progress-bar redraws at most every `every` seconds."""

    def __init__(self, log, every: float = 15.0):
        self.log, self.every, self.last = log, every, 0.0

    def __call__(self, line: str) -> None:
        if "%|" in line and time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        if line.strip():
            self.log(line)


@task(retries=3, retry_delay_seconds=30, retry_condition_fn=_lock_held, cache_policy=NO_CACHE)
def run_stage(stage: Stage, repo: Path, env: dict[str, str], changed: bool = True) -> StageRun:
    """`changed` False: neither `dvc status` nor an upstream re-run touched the stage, so DVC is not asked."""
    if changed:
        run = repro_stage(stage.name, repo, on_line=ThrottledLog(get_run_logger().info), env=env)
    else:
        run = StageRun(stage.name, False, 0.0, "up to date: unchanged in `dvc status`, no upstream stage re-ran")
    create_markdown_artifact(key=f"{artifact_key(stage.name)}-metrics", markdown=metrics_markdown(stage, run, repo),
                             description=f"metrics of DVC stage {stage.name}")
    return run


@flow(name="a3lign-dfer-pipeline")
def pipeline(repo: str = ".", set_params: list[str] | None = None, commit: bool = True,
             dask_scheduler: str | None = None) -> dict:
    """Run every DVC stage as a task.

    Args:
        repo: the project's git + DVC workspace.
        set_params: params overrides in `dvc exp run -S` syntax (`stage3.lr.mat=0.003`,
            `data.dataset=csv`); the run is saved as a DVC experiment and params.yaml is put back.
        commit: on the committed params, commit dvc.lock and the metrics when they changed
            (what the release flow registers must be a commit).
        dask_scheduler: a Dask scheduler address for the sharded stages (face_crop, features), passed to
            them as $A3LIGN_DASK_SCHEDULER; None: scale.scheduler, or a LocalCluster. The stages are Dask
            clients themselves, so `dvc repro` and this flow scale out the same way.
    """
    root = Path(repo).resolve()
    logger = get_run_logger()
    stages = pipeline_stages(root)
    name = flow_run.get_name() or "local"
    if set_params:
        experiments.apply_params(root, set_params)
        logger.info(f"params overridden for this run only: {set_params}")
    try:
        env = {SCHEDULER_ENV: dask_scheduler} if dask_scheduler else {}
        changed, runs = changed_stages(root), []
        for stage in stages:
            rerun = stage.name in changed or bool(set(stage.upstream) & {r.name for r in runs if r.ran})
            runs.append(run_stage.with_options(name=stage.name, task_run_name=stage.name)(stage, root, env, rerun))
        if set_params:
            exp = experiments.experiment_name(name)
            rev = experiments.save_experiment(root, exp, f"pipeline flow run {name}: {' '.join(set_params)}")
            recorded = f"DVC experiment `{exp}` ({rev[:10]}); params.yaml restored to the commit"
        elif commit:
            rev = experiments.commit_results(root, stages, f"pipeline flow run {name}: dvc.lock and metrics")
            recorded = f"commit {rev[:10]}" if rev else "nothing changed, nothing committed"
        else:
            recorded = "not recorded (commit=False): dvc.lock and metrics are uncommitted in the workspace"
    finally:
        if set_params:
            experiments.restore_committed(root)
    table = markdown_table(["stage", "result", "seconds"],
                           [(r.name, "ran" if r.ran else "up to date", f"{r.seconds:.1f}") for r in runs])
    summary = f"{table}\n\nRecorded as: {recorded}."
    create_markdown_artifact(key="pipeline-summary", markdown=summary, description="stages run and how it was recorded")
    logger.info(f"pipeline done; recorded as: {recorded}")
    return {"ran": [r.name for r in runs if r.ran], "up_to_date": [r.name for r in runs if not r.ran],
            "recorded": recorded}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_params")
    parser.add_argument("--no-commit", action="store_true")
    parser.add_argument("--dask-scheduler", help="Dask scheduler address for face_crop and features")
    args = parser.parse_args()
    pipeline(args.repo, args.set_params or None, not args.no_commit, args.dask_scheduler)
