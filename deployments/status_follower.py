"""The ingress's copy of job statuses (forge/status_copy.py), read from the manager's change feed.

`GET /api/training_status` answers from the copy, and asks the manager only for what
the copy cannot vouch for. One task per ingress replica long-polls the feed, as each
/ws/training socket does; it starts with the first status request, in the replica's
event loop. Routes that change a job do so inside `changing()`, so that a status read
through this ingress right after a stop (or a start, resume, delete) shows it.

Several ingress replicas each keep a copy: a change made through one shows in the
others' answers once their feed has delivered it (milliseconds), and a job deleted
through one keeps answering its last status from the others until they restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Optional

from forge.status_copy import Snapshot, StatusCopy

logger = logging.getLogger(__name__)

# How long the follower waits before reading the feed again after the manager could not be reached.
RETRY_S = 1.0


class StatusFollower:
    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self.copy = StatusCopy()
        self._task: Optional[asyncio.Task] = None

    async def training_status(self, job_id: Optional[str]) -> Snapshot:
        """The job's status (None: the default one), from the copy when it can vouch for it."""
        self._follow_in_background()
        known = self.copy.answer(job_id)
        if known is not None:
            return known
        epoch, seq, status = await self._manager.feed_position.remote(job_id)
        self.copy.learn(epoch, seq, job_id, status)
        return status

    @contextlib.asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """Around a manager call that changes a job (or may have, even if it failed): reads after it show it."""
        try:
            yield
        finally:
            try:
                epoch, seq = await self._manager.feed_head.remote()
            except Exception:  # the manager is away: the copy answers nothing until it is followed again
                self.copy.stop_following()
            else:
                self.copy.require(epoch, seq)

    def forget(self, job_id: str) -> None:
        """The job was deleted: its last status is no longer an answer."""
        self.copy.forget(job_id)

    def _follow_in_background(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            try:
                epoch, seq, default = await self._manager.feed_position.remote(None)
                self.copy.restart(epoch, seq, default)
                while True:
                    entries = await self._manager.feed_after.remote(epoch, self.copy.applied)
                    if entries is None or not self.copy.apply(entries):
                        break  # a restarted manager, or entries the feed no longer holds: start over
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the manager died or restarts: answer from it until it is back
                self.copy.stop_following()
                logger.info("status copy: the manager's feed is unavailable (%s); retrying", error)
                await asyncio.sleep(RETRY_S)
