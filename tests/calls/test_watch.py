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


async def test_a_cancellation_arriving_with_an_expiry_is_not_swallowed():
    # GIVEN a wait that expires just as someone else (a client leaving) cancels the task too
    loop = asyncio.get_running_loop()
    watch = Watch(loop.time() + 0.05)
    task = asyncio.current_task()

    async def both():
        await asyncio.sleep(0.2)

    def cancel_too():
        watch._check(loop.time() + 1)  # the sweep finds the wait expired and cancels
        task.cancel()  # and the client-gone callback cancels as well

    loop.call_later(0.01, cancel_too)
    # THEN the other cancellation wins: CancelledError, not Expired
    with pytest.raises(asyncio.CancelledError):
        await watch.wait(both())
    task.uncancel()
    watch.close()


def test_closed_loops_are_not_kept_alive_by_the_sweep():
    import gc
    import weakref

    refs = []
    for _ in range(5):
        loop = asyncio.new_event_loop()

        async def one():
            w = Watch(asyncio.get_running_loop().time() + 10)
            await w.wait(asyncio.sleep(0))
            w.close()

        loop.run_until_complete(one())
        loop.close()
        refs.append(weakref.ref(loop))
        del loop
    gc.collect()
    assert all(r() is None for r in refs)
