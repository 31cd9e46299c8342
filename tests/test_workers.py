"""The render pool's limits and single-flight, with renders held open on purpose."""

from __future__ import annotations

import asyncio
import threading

import pytest

from proxy.errors import Overloaded
from proxy.workers import RenderPool, SingleFlight


async def test_pool_runs_at_most_concurrency_and_queues_the_rest() -> None:
    pool = RenderPool(concurrency=1, queue=1)
    release = threading.Event()
    first = asyncio.ensure_future(pool.run(release.wait, 5))
    second = asyncio.ensure_future(pool.run(lambda: "queued"))
    await asyncio.sleep(0.05)
    assert (pool.running, pool.waiting) == (1, 1)
    with pytest.raises(Overloaded) as caught:
        await pool.run(lambda: "refused")
    assert caught.value.headers["Retry-After"] == "1"
    release.set()
    assert await first is True
    assert await second == "queued"
    assert await pool.run(lambda: "again") == "again"  # recovered once the load is gone
    assert pool.pending == 0
    pool.close()


async def test_single_flight_shares_one_computation() -> None:
    flights = SingleFlight()
    calls = 0

    async def produce() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(flights.do("k", produce) for _ in range(5)))
    assert [value for value, _ in results] == [42] * 5
    assert sum(shared for _, shared in results) == 4
    assert calls == 1 and len(flights) == 0


async def test_a_cancelled_waiter_does_not_cancel_the_shared_work() -> None:
    flights = SingleFlight()
    done = asyncio.Event()

    async def produce() -> str:
        await asyncio.sleep(0.05)
        done.set()
        return "ok"

    impatient = asyncio.ensure_future(flights.do("k", produce))
    patient = asyncio.ensure_future(flights.do("k", produce))
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert await patient == ("ok", True)
    assert done.is_set()
