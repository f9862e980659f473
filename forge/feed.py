"""An in-order change feed of job status snapshots, with long-poll reads.

The manager publishes a snapshot on every change; each WebSocket in the ingress
reads with `wait_after(seq)`, so every change reaches every subscriber in order
without the manager knowing who listens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from typing import Any


class ChangeFeed:
    def __init__(self, capacity: int = 10_000) -> None:
        self._entries: deque[tuple[int, dict[str, Any]]] = deque(maxlen=capacity)
        self._seq = 0
        # Sequence numbers start over with each feed (a restarted manager has a new one): a
        # reader names the feed it read from, and one it no longer finds starts over from now.
        self.epoch = uuid.uuid4().hex
        self._changed = asyncio.Condition()

    @property
    def seq(self) -> int:
        return self._seq

    def publish(self, snapshot: dict[str, Any]) -> None:
        self._seq += 1
        self._entries.append((self._seq, snapshot))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        return [entry for entry in self._entries if entry[0] > seq]

    async def wait_after(self, seq: int, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        """Entries newer than `seq`, waiting up to `timeout` seconds for the first one."""
        if self._seq > seq:
            return self._after(seq)
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._seq > seq), timeout)
            except asyncio.TimeoutError:
                return []
        return self._after(seq)
