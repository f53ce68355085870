"""Order-preserving process pool with a progress bar, shared by the data stages."""
from __future__ import annotations

import multiprocessing as mp
from typing import Any, Callable, Sequence

import cv2
from tqdm import tqdm


def _one_thread() -> None:
    cv2.setNumThreads(1)  # the pool already uses every core; nested threads only contend


def run_parallel(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int, desc: str) -> list[Any]:
    """[fn(t) for t in tasks] over `workers` spawned processes (in this process when workers <= 1).

    spawn, not fork: a forked child of a process that already runs threads (torch,
    OpenCV) can deadlock. Callers' scripts therefore need an `if __name__ == "__main__"` guard.
    """
    workers = min(workers, len(tasks))
    if workers <= 1:
        return [fn(t) for t in tqdm(tasks, desc=desc)]
    with mp.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
        return list(tqdm(pool.imap(fn, tasks), total=len(tasks), desc=desc))
