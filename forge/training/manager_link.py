"""The worker's line to the job's owner: progress, stop requests and events.

`JobLink` is what recipes and callbacks talk to; `ManagerLink` speaks to the
TrainingManager actor under Ray. Tests train in-process with a link that records.
Nothing heavy is imported here: the entry point's module imports it.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Optional, Protocol

from pydantic import BaseModel, Field

from forge.training.spec import JobSpec


class ProgressUpdate(BaseModel):
    """What rank 0 reports after a step, a log or an evaluation; a report carries only what it knows."""

    current_step: Optional[int] = Field(None, description="The job's step (across stages of a multi-stage job).")
    total_steps: Optional[int] = Field(None, description="Steps the whole job takes.")
    current_epoch: Optional[float] = Field(None, description="Epochs done so far (fractional).")
    loss: Optional[float] = Field(None, description="Training loss logged at this step.")
    learning_rate: Optional[float] = Field(None, description="Learning rate at this step.")
    eval_loss: Optional[float] = Field(None, description="Evaluation loss, when an evaluation ran.")
    grad_norm: Optional[float] = Field(None, description="Gradient norm logged at this step.")
    num_tokens: Optional[float] = Field(None, description="TRL's running count of train tokens, all ranks together.")
    logged_at: Optional[str] = Field(None, description="When the step was logged (the worker's clock, ISO 8601 UTC).")


class WorkerEvent(BaseModel):
    """Something the job's history should show, or that ends the job (an error in the training code)."""

    kind: Literal["workers_started", "checkpoint", "setting", "error"] = Field(
        description="workers_started (data: resumed_step; when resumed, history: the metric history up to "
                    "that checkpoint, as the trainer logged it), checkpoint (data: step, stage), setting (data: "
                    "message: a choice the worker made for the user) or error (data: message).")
    data: dict[str, Any] = Field(default_factory=dict, description="The event's details, by kind.")


class JobLink(Protocol):
    """The worker's line to whoever owns the job (the TrainingManager under Ray)."""

    def progress(self, update: ProgressUpdate) -> None:
        """A step's numbers; the link may hold them back briefly and send several at once."""
        ...

    def flush(self) -> None:
        """Send whatever progress is held back."""
        ...

    def stop_requested(self) -> bool: ...

    def event(self, event: WorkerEvent) -> None:
        """Something the job's history should show (`workers_started`, `checkpoint`, `setting`), or an error."""
        ...


class ManagerLink:
    """Reports to the TrainingManager actor; never blocks training on it."""

    # How often rank 0 asks whether the job should stop. The answer is read at a later step, never
    # waited for: a round trip to the manager at every step cost a small model a fifth of its
    # throughput (docs/benchmarks.md). A stop lands this long plus a step or two after the request.
    STOP_POLL_S = 0.25
    # Progress goes out in batches, one message at most this often: each actor call costs the
    # training thread a millisecond or two, a tenth of a small model's step. Users see every
    # step, this much later.
    REPORT_EVERY_S = 0.2

    def __init__(self, spec: JobSpec) -> None:
        import ray

        self._ray = ray
        self._job_id = spec.job_id
        self._manager = ray.get_actor(spec.manager_name, namespace=spec.namespace)
        self._stop = False
        self._stop_reply: Any = None  # the manager's answer, still on its way
        self._asked_at = float("-inf")
        self._unsent: list[ProgressUpdate] = []
        self._sent_at = float("-inf")

    def progress(self, update: ProgressUpdate) -> None:
        self._unsent.append(update)
        if time.monotonic() - self._sent_at >= self.REPORT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if not self._unsent:
            return
        updates, self._unsent = self._unsent, []
        self._sent_at = time.monotonic()
        try:
            self._manager.report_progress.remote(self._job_id, updates)  # fire-and-forget
        except Exception:  # a restarting manager must not kill the run
            pass

    def stop_requested(self) -> bool:
        if self._stop:
            return True
        try:
            if self._stop_reply is not None and self._ray.wait([self._stop_reply], timeout=0)[0]:
                reply, self._stop_reply = self._stop_reply, None
                self._stop = bool(self._ray.get(reply))
            if self._stop_reply is None and time.monotonic() - self._asked_at >= self.STOP_POLL_S:
                self._stop_reply = self._manager.stop_requested.remote(self._job_id)
                self._asked_at = time.monotonic()
        except Exception:  # a restarting manager must not kill the run
            self._stop_reply = None
        return self._stop

    def event(self, event: WorkerEvent) -> None:
        self.flush()  # the steps before the event reach the manager before it
        try:
            self._manager.record_worker_event.remote(self._job_id, event)  # fire-and-forget
        except Exception:
            pass
