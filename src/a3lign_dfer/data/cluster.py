"""The Dask cluster that face_crop and features run their shards on.

By default a LocalCluster of one-thread worker processes on this machine; with
`scale.scheduler` (or $A3LIGN_DASK_SCHEDULER) the scheduler of a cluster that is already
running, whose workers import this package. A shard is one task, so a worker that dies
mid-shard costs that shard only: the scheduler re-runs it on another worker.
"""
from __future__ import annotations

import logging
import sys
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from a3lign_dfer.config.data import SCHEDULER_ENV, ScaleConfig
from a3lign_dfer.errors import UserError


class SchedulerUnreachable(UserError):
    """scale.scheduler names a scheduler that did not answer."""


@contextmanager
def dask_client(cfg: ScaleConfig) -> Iterator[Any]:
    """A distributed.Client on scale.scheduler, or on a LocalCluster sized to scale.workers."""
    from distributed import Client, LocalCluster

    address = cfg.address
    if address:
        try:
            client = Client(address, timeout=cfg.connect_timeout)
        except (OSError, TimeoutError) as err:
            raise SchedulerUnreachable(
                f"the Dask scheduler {address} (scale.scheduler or ${SCHEDULER_ENV}) did not answer within "
                f"{cfg.connect_timeout:g} s ({type(err).__name__}): start it, fix the address, or unset both to "
                f"run on a LocalCluster") from None
        with client:
            yield client
        return
    import dask

    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also stops glibc from raising its mmap
    # threshold: every large torch buffer is then a fresh mmap, and a features shard took 3x as long (15.9 s
    # vs 4.9 s for 64 training clips on one thread, measured). The other defaults (one BLAS thread) stay.
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
            LocalCluster(n_workers=cfg.local_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def limit_threads(n: int) -> None:
    """One task per worker thread already fills the cores; nested threads only contend (and torch
    splits reductions by thread count, so the count is part of what makes the bytes). Torch only where
    the task uses it: face_crop's workers never load it."""
    import cv2

    cv2.setNumThreads(n)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def map_shards(client: Any, fn: Callable[[Any], Any], tasks: Sequence[Any], retries: int, desc: str) -> list[Any]:
    """[fn(t) for t in tasks] as one Dask task each, results in task order, with a progress bar.
    A task that raises is re-run up to `retries` times; one that still fails fails the stage."""
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]
    futures = [client.submit(fn, task, key=f"{desc.replace(' ', '-')}-{i:05d}-{run}", retries=retries, pure=False)
               for i, task in enumerate(tasks)]
    position = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    try:
        with tqdm(total=len(futures), desc=desc, unit="shard") as bar:
            for future in as_completed(futures):
                results[position[future.key]] = future.result()
                bar.update()
    finally:
        client.cancel(futures)
    return results
