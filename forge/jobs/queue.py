"""The job queue (FORGE_QUEUE_SIZE): jobs accepted while every slot was busy, started in order as slots free.

The queue is the registry's jobs in status `queued` that no run holds yet, oldest
first: nothing of it lives only in memory, so a restarted manager finds it as it was.
With FORGE_QUEUE_SIZE=0 (the default) nothing ever waits here: a start while the
slots are busy is the contract's 409.
"""

from __future__ import annotations

from collections.abc import Collection

from forge.registry import JobRecord, Registry


class JobQueue:
    def __init__(self, registry: Registry, size: int) -> None:
        self.registry = registry
        self.size = size

    def waiting(self, running: Collection[str]) -> list[JobRecord]:
        """The queued jobs, first in line first (`running`: the ids of jobs a run holds, which are not waiting)."""
        return [job for job in self.registry.jobs_with_status({"queued"}) if job.job_id not in running]

    def has_room(self, running: Collection[str]) -> bool:
        return len(self.waiting(running)) < self.size

    @staticmethod
    def position_message(position: int, length: int) -> str:
        return f"Queued: {position} of {length} in line; it starts when a running job ends"

    def renumber(self, running: Collection[str]) -> list[tuple[str, str]]:
        """Each waiting job's id and the message that says its place now (after a job joined or left the line)."""
        waiting = self.waiting(running)
        return [(job.job_id, self.position_message(n, len(waiting))) for n, job in enumerate(waiting, start=1)]
