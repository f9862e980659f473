"""Requests for the models of one base, generated together: when a batch starts, and who may share it.

A playground replica keeps one Batcher per loaded base. One thread per base runs its
batches one after another (on a CPU one generation already uses every core; on a GPU a
bigger batch is what fills the device):
- **When.** A request that finds the thread idle waits `gather_s` (10 ms) for the
  requests sent with it; requests that arrive while a batch runs queue, and the next batch
  takes what has queued by the time it ends, oldest first, up to `max_rows`. A running
  batch takes no new rows: transformers' `generate` cannot add a sequence mid-way (that,
  continuous batching as vLLM does it, needs a decoding loop and KV cache of our own), so a
  request waits at most for the batch in flight, as it waited for the request before it
  when the replica answered one at a time.
- **Who.** Rows share a batch when their `together` keys are equal: the caller's choice
  (forge.playground.adapter_cache keys them by decoding, and a model whose adapter PEFT
  cannot mix with others, DoRA, by the model too).

The batch sizes run are counted, so a test or an operator can see that batching happened.
Pure Python (threads); what a batch does is the caller's `run`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar, Union

MAX_ROWS = 16
GATHER_S = 0.01

Item = TypeVar("Item")
Result = TypeVar("Result")
log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """The batcher's base was dropped from the replica before the request's turn came."""


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    together: Hashable
    future: Future


class Batcher(Generic[Item, Result]):
    """Runs submitted items in batches on a thread of its own: `run(items)` gives one result per item.

    `run` may return an exception in an item's place: that item's future raises it.
    """

    def __init__(self, run: Callable[[list[Item]], Sequence[Union[Result, BaseException]]], *, name: str = "batcher",
                 max_rows: int = MAX_ROWS, gather_s: float = GATHER_S,
                 on_start: Callable[[], None] = lambda: None) -> None:
        self._run = run
        self._on_start = on_start  # the batch thread's own setup (e.g. torch's thread count), before any batch
        self.max_rows = max_rows
        self.gather_s = gather_s
        self._waiting: list[_Waiting[Item, Result]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._sizes: Counter[int] = Counter()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item, together: Hashable) -> "Future[Result]":
        """Queue `item` for a batch of items whose `together` is equal; its future gives its result."""
        future: Future[Result] = Future()
        with self._ready:
            if self._closed:
                raise BatcherClosed("this base is no longer loaded")
            self._waiting.append(_Waiting(item, together, future))
            self._ready.notify()
        return future

    def sizes(self) -> dict[int, int]:
        """Batch size -> how many batches of that size have run."""
        with self._ready:
            return dict(self._sizes)

    def close(self) -> None:
        """Run no more batches (the one running ends); queued items fail with BatcherClosed."""
        with self._ready:
            self._closed = True
            dropped, self._waiting = self._waiting, []
            self._ready.notify()
        for waiting in dropped:
            waiting.future.set_exception(BatcherClosed("this base was dropped before the request's turn"))

    # ------------------------------------------------------------------ the batch thread

    def _loop(self) -> None:
        self._on_start()
        idle = True
        while True:
            with self._ready:
                while not self._waiting:
                    if self._closed:
                        return
                    self._ready.wait()
                    idle = True
            if idle and self.gather_s > 0:
                time.sleep(self.gather_s)  # the requests sent together with this one join it
            with self._ready:
                batch = self._take()
            idle = False
            if batch:
                self._run_batch(batch)

    def _take(self) -> list[_Waiting[Item, Result]]:
        """The oldest waiting item and those that may join it, up to max_rows (under self._ready)."""
        if not self._waiting:
            return []
        together = self._waiting[0].together
        batch = [w for w in self._waiting if w.together == together][:self.max_rows]
        taken = {id(w) for w in batch}
        self._waiting = [w for w in self._waiting if id(w) not in taken]
        self._sizes[len(batch)] += 1
        return batch

    def _run_batch(self, batch: list[_Waiting[Item, Result]]) -> None:
        started = time.perf_counter()
        try:
            results = self._run([w.item for w in batch])
        except BaseException as error:  # the batch failed: every request in it hears why
            for waiting in batch:
                waiting.future.set_exception(error)
            return
        for waiting, result in zip(batch, results):
            if isinstance(result, BaseException):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)
        log.debug("%s: a batch of %d in %.2f s", self._thread.name, len(batch), time.perf_counter() - started)
