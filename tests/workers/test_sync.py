"""KeyedLocks: one lock per key, first come first served, forgotten when nobody needs it."""

from __future__ import annotations

import asyncio

import pytest

from collector.workers.sync import KeyedLocks

pytestmark = pytest.mark.anyio


async def test_holders_of_one_key_take_turns_in_arrival_order() -> None:
    locks = KeyedLocks()
    door = asyncio.Event()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with locks.hold("call"):
            order.append(f"{name} in")
            if name == "first":
                await door.wait()
            await asyncio.sleep(0)
            order.append(f"{name} out")

    tasks = [asyncio.create_task(hold(n)) for n in ("first", "second", "third")]
    for _ in range(10):
        await asyncio.sleep(0)
    assert order == ["first in"]  # the others wait
    assert len(locks) == 1
    door.set()
    await asyncio.gather(*tasks)
    assert order == [f"{n} {w}" for n in ("first", "second", "third") for w in ("in", "out")]
    assert len(locks) == 0


async def test_different_keys_do_not_wait_for_each_other() -> None:
    locks = KeyedLocks()
    door = asyncio.Event()

    async def hold_a() -> None:
        async with locks.hold("a"):
            await door.wait()

    a = asyncio.create_task(hold_a())
    await asyncio.sleep(0)
    async with locks.hold("b"):
        assert len(locks) == 2
    assert not a.done() and len(locks) == 1
    door.set()
    await a
    assert len(locks) == 0


async def test_a_holder_that_raises_or_is_cancelled_lets_the_next_one_in() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("k"):
            raise RuntimeError("step failed")
    assert len(locks) == 0

    door = asyncio.Event()
    inside: list[str] = []

    async def hold(name: str) -> None:
        async with locks.hold("k"):
            inside.append(name)
            await door.wait()

    first = asyncio.create_task(hold("first"))
    waiting = asyncio.create_task(hold("cancelled"))
    third = asyncio.create_task(hold("third"))
    for _ in range(5):
        await asyncio.sleep(0)
    waiting.cancel()  # a waiter that goes away takes its place in the queue with it
    first.cancel()
    await asyncio.gather(first, waiting, return_exceptions=True)
    for _ in range(5):
        await asyncio.sleep(0)
    assert inside == ["first", "third"]
    door.set()
    await third
    assert len(locks) == 0
