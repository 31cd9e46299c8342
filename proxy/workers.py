"""Bounded rendering: a fixed thread pool, a waiting-room limit (503 past it), single-flight."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from . import metrics
from .errors import Overloaded

T = TypeVar("T")


class RenderPool:
    """At most `concurrency` renders run at once; `queue` more may wait; beyond that, 503."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="render")
        self._slots = asyncio.Semaphore(concurrency)
        self.pending = 0  # running + waiting
        self.running = 0

    @property
    def waiting(self) -> int:
        return self.pending - self.running

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        if self.pending >= self.concurrency + self.queue:
            raise Overloaded(f"{self.pending} renders are running or waiting; try again shortly")
        self.pending += 1
        self._publish()
        try:
            async with self._slots:
                self.running += 1
                self._publish()
                try:
                    call = functools.partial(fn, *args, **kwargs)
                    ctx = contextvars.copy_context()
                    return await asyncio.get_running_loop().run_in_executor(
                        self._executor, ctx.run, call
                    )
                finally:
                    self.running -= 1
        finally:
            self.pending -= 1
            self._publish()

    def _publish(self) -> None:
        metrics.QUEUE_DEPTH.set(self.waiting)
        metrics.IN_FLIGHT.set(self.running)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class SingleFlight:
    """Identical concurrent requests share one computation.

    The shared task is shielded: one impatient client that disconnects does not cancel the
    work the others wait for.
    """

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Task] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: str, produce: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Returns (value, shared) where shared is True when another request produced it."""
        task = self._inflight.get(key)
        shared = task is not None
        if task is None:
            task = asyncio.ensure_future(produce())
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task), shared
