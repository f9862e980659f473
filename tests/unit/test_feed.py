"""ChangeFeed: in-order publication and long-poll reads with wait_after."""

from __future__ import annotations

import asyncio
import time

from forge.feed import ChangeFeed


def test_publish_then_read_all_in_order():
    async def scenario():
        feed = ChangeFeed()
        assert feed.seq == 0
        for status in ["queued", "training", "completed"]:
            feed.publish({"status": status})
        assert feed.seq == 3
        return await feed.wait_after(0, timeout=1)

    entries = asyncio.run(scenario())
    assert entries == [(1, {"status": "queued"}), (2, {"status": "training"}), (3, {"status": "completed"})]


def test_read_after_a_sequence_number():
    async def scenario():
        feed = ChangeFeed()
        for n in range(5):
            feed.publish({"n": n})
        return await feed.wait_after(3, timeout=1)

    assert asyncio.run(scenario()) == [(4, {"n": 3}), (5, {"n": 4})]


def test_wait_after_times_out_with_nothing_new():
    async def scenario():
        feed = ChangeFeed()
        for n in range(3):
            feed.publish({"n": n})
        started = time.monotonic()
        entries = await feed.wait_after(3, timeout=0.1)
        return entries, time.monotonic() - started

    entries, elapsed = asyncio.run(scenario())
    assert entries == []
    assert 0.05 <= elapsed < 2


def test_waiter_started_before_publish_gets_entry():
    async def scenario():
        feed = ChangeFeed()
        waiter = asyncio.create_task(feed.wait_after(0, timeout=5))
        await asyncio.sleep(0.05)  # let the waiter block on the condition
        assert not waiter.done()
        started = time.monotonic()
        feed.publish({"status": "training"})
        entries = await waiter
        return entries, time.monotonic() - started

    entries, elapsed = asyncio.run(scenario())
    assert entries == [(1, {"status": "training"})]
    assert elapsed < 1  # woken by the publish, not by the 5 s timeout


def test_several_waiters_all_woken():
    async def scenario():
        feed = ChangeFeed()
        waiters = [asyncio.create_task(feed.wait_after(0, timeout=5)) for _ in range(3)]
        await asyncio.sleep(0.05)
        feed.publish({"a": 1})
        return await asyncio.gather(*waiters)

    assert asyncio.run(scenario()) == [[(1, {"a": 1})]] * 3


def test_capacity_drops_oldest_entries():
    async def scenario():
        feed = ChangeFeed(capacity=2)
        for n in range(4):
            feed.publish({"n": n})
        return feed.seq, await feed.wait_after(0, timeout=1)

    seq, entries = asyncio.run(scenario())
    assert seq == 4
    assert entries == [(3, {"n": 2}), (4, {"n": 3})]


def test_each_feed_has_its_own_epoch_so_a_reader_notices_a_restarted_manager():
    # Sequence numbers start over with a new feed: the epoch tells a reader that seq 3 of the
    # old feed means nothing in the new one.
    first, second = ChangeFeed(), ChangeFeed()
    assert first.epoch != second.epoch and len(first.epoch) >= 16
