"""The one-timer watch of an upstream call: deadline, idle bound per wait, others' cancellations."""

import asyncio

import pytest

from aigw.calls.watch import DEADLINE, IDLE, Expired, Watch


async def test_a_wait_past_the_deadline_expires():
    loop = asyncio.get_running_loop()
    watch = Watch(loop.time() + 0.05)
    with pytest.raises(Expired) as info:
        await watch.wait(asyncio.sleep(5))
    assert info.value.reason == DEADLINE
    watch.close()


async def test_each_wait_is_bounded_by_idle_but_time_between_waits_is_not():
    loop = asyncio.get_running_loop()
    watch = Watch(loop.time() + 10)
    watch.idle(0.1)
    for _ in range(3):
        await watch.wait(asyncio.sleep(0.06))  # each wait is under the bound
        await asyncio.sleep(0.15)  # time outside waits (a slow client) never counts
    with pytest.raises(Expired) as info:
        await watch.wait(asyncio.sleep(1))
    assert info.value.reason == IDLE
    watch.close()


async def test_switching_to_idle_after_a_long_deadline_takes_effect_at_once():
    loop = asyncio.get_running_loop()
    watch = Watch(loop.time() + 600)
    await watch.wait(asyncio.sleep(0))  # arms a timer for the deadline
    watch.idle(0.05)
    with pytest.raises(Expired):
        await asyncio.wait_for(watch.wait(asyncio.sleep(5)), 2)  # not 600 s
    watch.close()


async def test_a_cancellation_from_elsewhere_is_passed_on_and_the_task_stays_usable():
    loop = asyncio.get_running_loop()
    watch = Watch(loop.time() + 10, 5)
    task = asyncio.ensure_future(watch.wait(asyncio.sleep(5)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    watch.close()
    # after an expiry the cancellation is taken back: the task can go on and await again
    watch = Watch(loop.time() + 0.02)
    with pytest.raises(Expired):
        await watch.wait(asyncio.sleep(1))
    assert asyncio.current_task().cancelling() == 0
    await asyncio.sleep(0.01)
    watch.close()
