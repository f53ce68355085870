"""Jobs of the paper experiments: one recipe, one set of params overrides, one training seed.

A job runs on a Dask worker (data/cluster.py, the same cluster `face_crop` and `features`
use), so the seeds of an experiment run side by side on a LocalCluster, or across a real
cluster with `scale.scheduler`. A worker loads the frozen CLIP and the feature cache once
and keeps them for its next jobs. The result of a job depends only on the job, never on
which worker ran it or what it ran before.
"""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

from a3lign_dfer.config.data import ScaleConfig
from a3lign_dfer.config.schema import load, to_dict
from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.data.cluster import dask_client, limit_threads, map_shards
from a3lign_dfer.data.feature_cache import FeatureSet, load_feature_set
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_research.seeds import stats


@dataclass(frozen=True)
class Workspace:
    """What every recipe reads: the frozen CLIP and the three splits of the feature cache."""

    clip: FrozenCLIP
    train: FeatureSet
    val: FeatureSet
    test: FeatureSet


@dataclass(frozen=True)
class Job:
    recipe: str                      # "module:function" under a3lign_research.paper
    variant: str                     # the row this job is one seed of
    seed: int                        # train.seed
    overrides: dict = field(default_factory=dict)   # params.yaml sections merged on top (schema.merge)
    params_path: str = "params.yaml"
    features: str = "data/features"
    device: str = "cpu"
    threads: int = 1


Recipe = Callable[[Workspace, TrainingParams], dict[str, dict]]   # -> {row: {"val": report, "test": report}}


@lru_cache(maxsize=2)
def workspace(clip_model: str, features: str, classes: tuple[str, ...], device: str) -> Workspace:
    return Workspace(FrozenCLIP.load(clip_model, device),
                     *(load_feature_set(Path(features), split, classes) for split in ("train", "val", "test")))


def job_params(job: Job) -> TrainingParams:
    """params.yaml with the job's overrides and its seed."""
    return load(TrainingParams, job.params_path, {**job.overrides, "train": {**job.overrides.get("train", {}),
                                                                             "seed": job.seed}})


def run_job(job: Job) -> dict:
    """Worker: the recipe's rows for this job, and its seconds."""
    limit_threads(job.threads)
    params = job_params(job)
    ws = workspace(params.clip.model, job.features, tuple(params.data.classes), job.device)
    module, name = job.recipe.split(":")
    recipe: Recipe = getattr(importlib.import_module(f"a3lign_research.paper.{module}"), name)
    start = time.perf_counter()
    rows = recipe(ws, params)
    return {"variant": job.variant, "seed": job.seed, "rows": rows, "seconds": time.perf_counter() - start}


def run_jobs(jobs: list[Job], scale: ScaleConfig, desc: str) -> list[dict]:
    """Every job on the cluster, results in job order. Paths are made absolute here: a worker of a
    long-lived cluster has a working directory of its own."""
    def absolute(job: Job) -> Job:
        model = load(TrainingParams, job.params_path, job.overrides).clip.model
        clip = {"clip": {"model": str(Path(model).resolve())}} if Path(model).exists() else {}
        return replace(job, params_path=str(Path(job.params_path).resolve()),
                       features=str(Path(job.features).resolve()), overrides={**job.overrides, **clip})

    keyed = [(key(job), job) for job in (absolute(job) for job in jobs)]    # each key reads params.yaml once
    todo = {k: job for k, job in keyed if k not in _DONE}                   # a shared job runs once
    if todo:
        with dask_client(scale) as client:
            for k, result in zip(todo, map_shards(client, run_job, list(todo.values()), scale.retries, desc)):
                _DONE[k] = result
    return [{**_DONE[k], "variant": job.variant} for k, job in keyed]


_DONE: dict[str, dict] = {}      # this process's finished jobs, by what they ran


def key(job: Job) -> str:
    """What a job computes: its recipe, the params it resolves to (two variants that set the same value, one
    by default and one by override, are one job) and its features (its variant name is only a label)."""
    params = job_params(job)
    return json.dumps([job.recipe, to_dict(params), job.features, job.device], sort_keys=True)


def spread(results: list[dict], variant: str, row: str, split: str, metric: str = "uar") -> dict:
    """Mean +- std over the seeds of one variant's row (stats of multi_seed: sample std)."""
    values = [r["rows"][row][split][metric] for r in results if r["variant"] == variant]
    if not values:
        raise KeyError(f"no results for {variant}/{row}")
    return stats(values)
