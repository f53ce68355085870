"""Micro-batching: requests that arrive together share one backend call.

A batch takes every clip already waiting, up to `max_batch`; while other requests
are still being decoded and cropped (`preparing()` > 0) it waits for them, at most
`max_wait_s` after its first clip, so a lone request never waits for nobody. The
stacked clips go to the backend in one call, on a worker thread so the event loop
keeps accepting uploads; one batch runs at a time. With `max_batch` 1 every request
is its own call: serving one at a time.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from a3lign_dfer.inference.backends import Backend


class MicroBatcher:
    def __init__(self, run: Backend, max_batch: int, max_wait_s: float, preparing: Callable[[], int],
                 on_batch: Callable[[int], None]):
        self.run, self.max_batch, self.max_wait_s = run, max_batch, max_wait_s
        self.preparing, self.on_batch = preparing, on_batch
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
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0 or not self.preparing():
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
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
