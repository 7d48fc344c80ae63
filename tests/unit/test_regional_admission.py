"""A regional replica's admission: real-time requests take freed slots ahead of waiting tolerant ones."""

from __future__ import annotations

import asyncio

from serve_apps.concurrency_limit import ConcurrencyLimit


async def _admitted_order(limit: ConcurrencyLimit, arrivals: list[tuple[str, bool]]) -> list[str]:
    """Hold the only slot, let `arrivals` (name, urgent) queue in order, then release it: who got in, in order."""
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.slot(urgent=False):
            await release.wait()

    async def request(name: str, urgent: bool) -> None:
        async with limit.slot(urgent=urgent):
            order.append(name)
            await asyncio.sleep(0)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    tasks = []
    for name, urgent in arrivals:
        tasks.append(asyncio.create_task(request(name, urgent)))
        await asyncio.sleep(0)  # queued in this order
    assert limit.waiting == len(arrivals)
    assert limit.active == 1
    release.set()
    await asyncio.gather(first, *tasks)
    assert limit.active == 0
    assert limit.waiting == 0
    return order


def test_a_freed_slot_goes_to_waiting_realtime_work_first_then_in_arrival_order() -> None:
    arrivals = [("t1", False), ("t2", False), ("r1", True), ("t3", False), ("r2", True)]
    order = asyncio.run(_admitted_order(ConcurrencyLimit(1), arrivals))
    assert order == ["r1", "r2", "t1", "t2", "t3"]


def test_without_realtime_waiters_admission_is_first_come_first_served() -> None:
    arrivals = [(f"t{k}", False) for k in range(5)]
    assert asyncio.run(_admitted_order(ConcurrencyLimit(1), arrivals)) == [f"t{k}" for k in range(5)]


def test_raising_the_limit_admits_waiters_and_lowering_it_holds_new_ones() -> None:
    async def scenario() -> None:
        limit = ConcurrencyLimit(1)
        inside = asyncio.Event()
        release = asyncio.Event()
        entered: list[str] = []

        async def request(name: str, urgent: bool) -> None:
            async with limit.slot(urgent=urgent):
                entered.append(name)
                inside.set()
                await release.wait()

        tasks = [asyncio.create_task(request(name, name.startswith("r"))) for name in ("t1", "t2", "r1")]
        await inside.wait()
        await asyncio.sleep(0)
        assert entered == ["t1"]
        assert limit.waiting == 2
        await limit.set_limit(3)
        await asyncio.sleep(0.01)
        assert sorted(entered) == ["r1", "t1", "t2"]
        assert limit.active == 3
        await limit.set_limit(1)
        late = asyncio.create_task(request("r2", True))
        await asyncio.sleep(0.01)
        assert "r2" not in entered
        assert limit.waiting == 1
        release.set()
        await asyncio.gather(*tasks, late)
        assert entered[-1] == "r2"
        assert limit.active == 0

    asyncio.run(scenario())


def test_a_cancelled_realtime_waiter_does_not_hold_tolerant_work_back() -> None:
    async def scenario() -> None:
        limit = ConcurrencyLimit(1)
        release = asyncio.Event()
        entered: list[str] = []

        async def request(name: str, urgent: bool) -> None:
            async with limit.slot(urgent=urgent):
                entered.append(name)
                await release.wait()

        holder = asyncio.create_task(request("t0", False))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(request("t1", False))
        urgent = asyncio.create_task(request("r1", True))
        await asyncio.sleep(0)
        await limit.set_limit(2)  # a slot frees, but r1 is first in line for it
        urgent.cancel()  # ... and its client goes away before it runs
        await asyncio.sleep(0.01)
        assert entered[:1] == ["t0"]
        assert "t1" in entered
        assert limit.waiting == 0
        release.set()
        await asyncio.gather(holder, waiting, urgent, return_exceptions=True)
        assert limit.active == 0

    asyncio.run(scenario())
