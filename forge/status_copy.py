"""A copy of the manager's job statuses, kept current from its change feed.

The ingress answers `GET /api/training_status` from this copy instead of making one
actor call per request: under load on a small machine that call is most of the
route's cost. The copy answers only what it knows to be as current as the feed it has
read; for anything else it answers None, the caller asks the manager, and the
manager's answer (read with the feed's position) teaches the copy.

- A job's status: the newest snapshot of it, from the feed or from the manager.
- The default status (no job id: the newest active job, else the latest job, else
  idle): what the manager answered, for as long as no job has appeared or changed
  state since; progress of the running job keeps it valid.
- Read your writes: after a change made through this ingress (a start, stop, resume
  or delete), nothing is answered until the copy has read the feed up to that change.
- A feed with a gap (the manager's feed holds a bounded number of entries) or of
  another epoch (a restarted manager) is read again from the start.

Plain state, no Ray and no I/O: deployments/status_follower.py reads the feed into it.
"""

from __future__ import annotations

from typing import Any, Optional

Snapshot = dict[str, Any]


class StatusCopy:
    # Jobs whose snapshots are kept; the oldest-learned go first (a miss asks the manager again).
    MAX_JOBS = 10_000

    def __init__(self) -> None:
        self.epoch: Optional[str] = None  # the feed being followed; None: not following, answer nothing
        self.applied = 0  # the feed's sequence number up to which every entry has been applied
        # A change made through this ingress: answer nothing until `applied` reaches it in that epoch's feed.
        self._required: tuple[Optional[str], int] = (None, 0)
        self._deleted: set[str] = set()  # deleted jobs (ids are never reused): the feed's older entries are ignored
        self._clear()

    def _clear(self) -> None:
        self._jobs: dict[str, tuple[int, Snapshot]] = {}  # job id -> (sequence number it is current at, snapshot)
        self._default: Optional[tuple[int, Snapshot]] = None  # the default status and the sequence number it is at
        self._last_transition = 0  # the latest entry where a job appeared or changed state

    # ----------------------------------------------------------------- feed

    def restart(self, epoch: str, seq: int, default: Snapshot) -> None:
        """Start over from the feed's position `seq`, where the default status was `default`."""
        self._clear()
        self.epoch, self.applied, self._last_transition = epoch, seq, seq
        self.learn(epoch, seq, None, default)

    def stop_following(self) -> None:
        """The feed cannot be read (the manager is away): answer nothing until `restart`."""
        self.epoch = None

    def apply(self, entries: list[tuple[int, Snapshot]]) -> bool:
        """Apply the feed's next entries, in order; False when they do not follow on (restart, then)."""
        if entries and entries[0][0] != self.applied + 1:
            self.stop_following()
            return False
        for seq, snapshot in entries:
            job_id = snapshot["job_id"]
            known = self._jobs.get(job_id)
            if known is None or known[1]["status"] != snapshot["status"]:
                self._last_transition = seq  # a new job, or a state change: the default may differ now
            self._keep(seq, job_id, snapshot)
            self.applied = seq
        return True

    # ------------------------------------------------------- the manager's answers

    def learn(self, epoch: str, seq: int, job_id: Optional[str], status: Snapshot) -> None:
        """The manager's status for `job_id` (None: the default status) as of the feed's position `seq`."""
        if epoch != self.epoch:
            return
        if job_id is None and (self._default is None or self._default[0] < seq):
            self._default = (seq, status)
        if status.get("job_id") is not None:
            self._keep(seq, status["job_id"], status)

    def require(self, epoch: str, seq: int) -> None:
        """A change was made through this ingress, at or before the feed's position `seq`."""
        if epoch != self.epoch:  # the manager restarted: what the copy holds is of its previous life
            self.stop_following()
        required_epoch, required = self._required
        self._required = (epoch, max(seq, required) if epoch == required_epoch else seq)

    def forget(self, job_id: str) -> None:
        """The job was deleted through this ingress."""
        self._jobs.pop(job_id, None)
        if len(self._deleted) < self.MAX_JOBS:
            self._deleted.add(job_id)
        self._default = None  # it may have been the default job

    # --------------------------------------------------------------- answers

    def answer(self, job_id: Optional[str]) -> Optional[Snapshot]:
        """The status of `job_id` (None: the default status), or None when the copy cannot vouch for it."""
        required_epoch, required = self._required
        if self.epoch is None or (required_epoch == self.epoch and self.applied < required):
            return None
        if job_id is not None:
            known = self._jobs.get(job_id)
            return known[1] if known is not None else None
        if self._default is None or self._default[0] < self._last_transition:
            return None
        default_job = self._default[1].get("job_id")
        if default_job is None:
            return self._default[1]  # idle: no job yet
        known = self._jobs.get(default_job)
        return known[1] if known is not None else None

    def _keep(self, seq: int, job_id: str, snapshot: Snapshot) -> None:
        if job_id in self._deleted:
            return
        known = self._jobs.get(job_id)
        if known is not None and known[0] >= seq:
            return  # the copy already has this job as of a later position
        self._jobs.pop(job_id, None)  # re-inserted last: the dict's order is the order of learning
        self._jobs[job_id] = (seq, snapshot)
        if len(self._jobs) > self.MAX_JOBS:
            del self._jobs[next(iter(self._jobs))]
