"""The in-process queue in front of SQLite's single writer: urgent writers first, cancellation safe."""

from __future__ import annotations

import asyncio

from storage.engine import WriterQueue


async def _writer(queue: WriterQueue, name: str, order: list[str], *, urgent: bool = False) -> None:
    async with queue.hold(urgent=urgent):
        order.append(name)
        await asyncio.sleep(0)


async def test_urgent_writers_go_before_queued_ordinary_ones_and_each_group_keeps_its_order() -> None:
    queue = WriterQueue()
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with queue.hold():
            order.append("first")
            await release.wait()

    tasks = [asyncio.create_task(first())]
    await asyncio.sleep(0)
    for name, urgent in (("turn-1", False), ("turn-2", False), ("webhook-1", True), ("webhook-2", True)):
        tasks.append(asyncio.create_task(_writer(queue, name, order, urgent=urgent)))
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first", "webhook-1", "webhook-2", "turn-1", "turn-2"]


async def test_one_writer_at_a_time() -> None:
    queue = WriterQueue()
    inside = 0
    most = 0

    async def writer(urgent: bool) -> None:
        nonlocal inside, most
        async with queue.hold(urgent=urgent):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(writer(i % 3 == 0) for i in range(30)))
    assert most == 1


async def test_a_cancelled_waiter_neither_blocks_nor_skips_the_others() -> None:
    queue = WriterQueue()
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with queue.hold():
            await release.wait()

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    gone = asyncio.create_task(_writer(queue, "gone", order))
    after = asyncio.create_task(_writer(queue, "after", order))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await asyncio.gather(holder, after)
    assert gone.cancelled() and order == ["after"]
    await asyncio.wait_for(_writer(queue, "later", order), 1)  # the queue is free again
    assert order == ["after", "later"]


async def test_a_waiter_cancelled_just_as_its_turn_came_passes_the_turn_on() -> None:
    queue = WriterQueue()
    order: list[str] = []
    release = asyncio.Event()
    tasks: dict[str, asyncio.Task[None]] = {}

    async def first() -> None:
        async with queue.hold():
            await release.wait()
        tasks["unlucky"].cancel()  # the turn was just handed to it; it is cancelled before it runs

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    tasks["unlucky"] = asyncio.create_task(_writer(queue, "unlucky", order))
    after = asyncio.create_task(_writer(queue, "after", order))
    await asyncio.sleep(0)
    release.set()
    await holder
    await asyncio.wait_for(after, 1)
    assert tasks["unlucky"].cancelled() and order == ["after"]
