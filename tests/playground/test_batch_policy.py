"""When a batch starts and who shares it: the Batcher's policy, with a batch that records what it was given.

Pure Python threads (the batch here is a function that records its items and can be
held back), so each rule is checked exactly, without timing a model.
"""

from __future__ import annotations

import threading

import pytest

from forge.playground.batching import Batcher, BatcherClosed


class Recorder:
    """A batch `run`: records each batch's items; the first batch waits until `release` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: list[str]) -> list[object]:
        self.batches.append(items)
        self.running.set()
        self.release.wait(timeout=30)
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


def test_requests_queued_while_a_batch_runs_make_the_next_batch_together():
    run = Recorder()
    batcher = Batcher(run, gather_s=0)
    first = batcher.submit("a", "greedy")
    assert run.running.wait(timeout=30)
    later = [batcher.submit(item, "greedy") for item in "bcd"]
    run.release.set()
    assert first.result(timeout=30) == "A" and [f.result(timeout=30) for f in later] == ["B", "C", "D"]
    assert run.batches == [["a"], ["b", "c", "d"]]
    assert batcher.sizes() == {1: 1, 3: 1}


def test_only_requests_with_the_same_key_share_a_batch_and_a_batch_has_at_most_max_rows():
    run = Recorder()
    batcher = Batcher(run, gather_s=0, max_rows=2)
    batcher.submit("a", "greedy")
    assert run.running.wait(timeout=30)
    futures = [batcher.submit(item, key) for item, key in
               [("b", "greedy"), ("c", "sampled"), ("d", "greedy"), ("e", "greedy"), ("f", "sampled")]]
    run.release.set()
    assert [f.result(timeout=30) for f in futures] == ["B", "C", "D", "E", "F"]
    # Oldest first: b's key, then c's (the oldest left), then e's.
    assert run.batches == [["a"], ["b", "d"], ["c", "f"], ["e"]]


def test_a_request_that_finds_the_batcher_idle_waits_for_those_sent_with_it():
    run = Recorder()
    run.release.set()
    batcher = Batcher(run, gather_s=0.5)
    futures = [batcher.submit(item, "greedy") for item in "abc"]
    assert [f.result(timeout=30) for f in futures] == ["A", "B", "C"]
    assert run.batches == [["a", "b", "c"]]


def test_an_items_failure_is_its_own_and_a_closed_batcher_refuses_and_drops_what_waits():
    run = Recorder()
    batcher = Batcher(run, gather_s=0)
    batcher.submit("a", "greedy")
    assert run.running.wait(timeout=30)
    bad, good = batcher.submit("bad", "greedy"), batcher.submit("good", "greedy")
    queued = batcher.submit("late", "other")
    run.release.set()
    with pytest.raises(ValueError, match="bad"):
        bad.result(timeout=30)
    assert good.result(timeout=30) == "GOOD"
    assert queued.result(timeout=30) == "LATE"

    run.release.clear()
    run.running.clear()
    batcher.submit("x", "greedy")
    assert run.running.wait(timeout=30)
    waiting = batcher.submit("y", "greedy")
    batcher.close()
    with pytest.raises(BatcherClosed):
        waiting.result(timeout=30)
    with pytest.raises(BatcherClosed):
        batcher.submit("z", "greedy")
    run.release.set()


def test_the_batch_threads_own_setup_runs_in_it_before_its_first_batch():
    """What the playground sets per thread (torch's thread count) must be set in the thread that generates."""
    events: list[tuple[str, str]] = []

    def run(items: list[str]) -> list[str]:
        events.append(("batch", threading.current_thread().name))
        return items

    batcher = Batcher(run, name="batches of base", gather_s=0,
                      on_start=lambda: events.append(("setup", threading.current_thread().name)))
    assert [batcher.submit(item, "greedy").result(timeout=30) for item in "ab"] == ["a", "b"]
    assert events == [("setup", "batches of base"), ("batch", "batches of base"), ("batch", "batches of base")]
