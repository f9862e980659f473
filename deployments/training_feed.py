"""/ws/training: a WebSocket that follows the TrainingManager's change feed.

Each socket long-polls the manager's feed (`feed_after`) and sends every status
snapshot, in order; with a job id it sends only that job's and closes (1000) after
its terminal status. A restarted manager has a new feed (its sequence numbers start
over): the socket then sends the status as the restarted manager sees it and follows
the new feed, so a client sees no gap. A manager that stays away longer than
MANAGER_RETURN_S closes the socket with 1011 and a reason; a client reconnects and
gets the current status first, as on any new connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from fastapi import WebSocket, WebSocketDisconnect
from ray.exceptions import RayActorError

from deployments.auth import selected_subprotocol
from deployments.errors import unwrap
from forge.errors import ForgeError
from forge.schemas import TERMINAL_STATUSES

# How long a socket waits for a restarting training manager (Ray restarts it in seconds).
MANAGER_RETURN_S = 60.0


class ManagerAway(Exception):
    """The training manager stayed unreachable: the socket closes (1011) with this as its reason."""


async def serve_feed(websocket: WebSocket, manager: Any, job_id: Optional[str]) -> None:
    """Accept the socket and follow the feed until the job ends, the client leaves, or the manager stays away."""
    await websocket.accept(subprotocol=selected_subprotocol(websocket.scope))
    pump = asyncio.create_task(_pump(websocket, manager, job_id))
    hangup = asyncio.create_task(_wait_for_disconnect(websocket))
    done, pending = await asyncio.wait({pump, hangup}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if pump in done:
        error = pump.exception()
        if error is None:
            await websocket.close()
        elif isinstance(error, ManagerAway):
            await websocket.close(code=1011, reason=str(error))


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    try:
        while True:
            await websocket.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return


async def _pump(websocket: WebSocket, manager: Any, job_id: Optional[str]) -> None:
    try:
        epoch, seq, current = await manager.feed_position.remote(job_id)
    except Exception as error:
        cause = unwrap(error)
        body = cause.to_body() if isinstance(cause, ForgeError) else {"error": "Internal server error",
                                                                     "detail": "feed unavailable",
                                                                     "status_code": 500}
        await websocket.send_json(body)
        return
    await websocket.send_json(current)
    if job_id and current["status"] in TERMINAL_STATUSES:
        return
    while True:
        entries = await _feed_after(manager, epoch, seq)
        if entries is None:  # a restarted manager: its feed starts over, from the status as it is now
            epoch, seq, now = await manager.feed_position.remote(job_id)
            entries = [(seq, now)] if now != current else []
        for seq, snapshot in entries:
            if job_id and snapshot["job_id"] != job_id:
                continue
            current = snapshot
            await websocket.send_json(snapshot)
            if job_id and snapshot["status"] in TERMINAL_STATUSES:
                return


async def _feed_after(manager: Any, epoch: str, seq: int) -> Optional[list]:
    """The manager's feed after `seq` (None: the manager restarted), waiting out a restart up to MANAGER_RETURN_S."""
    away_since: Optional[float] = None
    while True:
        try:
            return await manager.feed_after.remote(epoch, seq)
        except RayActorError as error:  # died with the call in flight, or unavailable while it restarts
            now = asyncio.get_running_loop().time()
            away_since = away_since if away_since is not None else now
            if now - away_since > MANAGER_RETURN_S:
                raise ManagerAway(f"the training manager did not come back within {MANAGER_RETURN_S:g} s; "
                                  "reconnect to follow the jobs") from error
            await asyncio.sleep(1.0)
