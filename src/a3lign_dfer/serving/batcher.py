"""Micro-batching: requests that arrive together share one backend call.

The first request of a batch waits at most `max_wait_s` for others, up to
`max_batch` clips; then the stacked clips go to the backend in one call, on a
worker thread so the event loop keeps accepting uploads. One batch runs at a time.
With `max_batch` 1 every request is its own call: serving one at a time.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from a3lign_dfer.inference.backends import Backend


class MicroBatcher:
    def __init__(self, run: Backend, max_batch: int, max_wait_s: float, on_batch: Callable[[int], None]):
        self.run, self.max_batch, self.max_wait_s, self.on_batch = run, max_batch, max_wait_s, on_batch
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, ...]:
        """One clip (frames, 3, size, size) -> the backend's outputs for it (logits, probabilities, embedding)."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((frames, future))
        return await future

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(batch) < self.max_batch:
            left = deadline - asyncio.get_running_loop().time()
            try:
                batch.append(self._queue.get_nowait() if left <= 0 else
                             await asyncio.wait_for(self._queue.get(), left))
            except (asyncio.QueueEmpty, TimeoutError):
                break
        return [(frames, future) for frames, future in batch if not future.done()]   # gone: client cancelled

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            if not batch:
                continue
            try:
                outputs = await asyncio.to_thread(self.run, np.stack([frames for frames, _ in batch]))
            except Exception as err:                     # the requests fail, the service goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self.on_batch(len(batch))
            for i, (_, future) in enumerate(batch):
                if not future.done():
                    future.set_result(tuple(output[i] for output in outputs))
