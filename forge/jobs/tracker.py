"""The job tracker: active jobs, what their workers report, how their runs end, and their status.

Every change goes to the registry (SQLite) and, as a status snapshot, to the change
feed behind /ws/training. Nothing here touches Ray: the manager hands in what the
tracker cannot know itself (the latest checkpoint Ray Train recorded, how to kill
a job's runner, whether a runner was lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Optional

from forge.errors import Conflict, NotFound, one_line
from forge.feed import ChangeFeed
from forge.model_store import files_mover, model_name
from forge.registry import JobRecord, ModelRecord, Registry
from forge.schemas import ACTIVE_STATUSES, TrainingRequest, TrainingStatus, utc_iso
from forge.storage import Storage
from forge.training.manager_link import ProgressUpdate, WorkerEvent
from forge.training.spec import JobSpec

log = logging.getLogger(__name__)

RunEnd = Literal["completed", "stopped", "interrupted", "failed"]
# A job in one of these states can be continued with POST /api/jobs/{job_id}/resume.
RESUMABLE_STATUSES = frozenset({"interrupted", "stopped", "failed"})
# Fields of a progress update the job's status takes.
_PROGRESS_FIELDS = ("current_step", "total_steps", "current_epoch", "loss", "learning_rate", "eval_loss")
# Fields of a logged step the metric history keeps (logged_at and num_tokens give the job's throughput).
_HISTORY_FIELDS = ("loss", "learning_rate", "grad_norm", "num_tokens", "logged_at")


@dataclass
class ActiveJob:
    record: JobRecord
    spec: Optional[JobSpec] = None
    runner: Any = None
    task: Optional[asyncio.Task] = None
    stop_requested: bool = False
    notes: list[str] = field(default_factory=list)
    # How many times a worker group started for this launch: more than once means Ray Train restarted it.
    worker_starts: int = 0
    # The error a worker raised, as it reported it: such a job fails at once instead of restarting.
    failure: Optional[str] = None
    # The first logged step of the current worker group (its step and logged_at): the pace's origin.
    pace_origin: Optional[tuple[int, str]] = None
    # Folders to delete once the run is closed (a completed job's checkpoints).
    leftovers: list[str] = field(default_factory=list)


def estimate_finish(origin: tuple[int, str], step: int, logged_at: str, total: int) -> Optional[str]:
    """When a job at `step` (logged at `logged_at`) reaches `total`, at its pace since `origin`; None if unknown.

    The pace is measured from the group's first logged step, not from its start: loading
    the model and the data is not part of a step's time.
    """
    first_step, first_at = origin
    if step <= first_step or total <= 0:
        return None
    elapsed = (datetime.fromisoformat(logged_at) - datetime.fromisoformat(first_at)).total_seconds()
    seconds_left = elapsed / (step - first_step) * max(total - step, 0)
    return utc_iso(datetime.fromisoformat(logged_at) + timedelta(seconds=seconds_left))


def run_end(outcome: dict[str, Any] | BaseException, *, stop_requested: bool, worker_error: Optional[str],
            runner_lost: bool) -> RunEnd:
    """How a run ends, from what its runner returned (or raised) and what happened meanwhile."""
    if not isinstance(outcome, BaseException):
        # The run returned. A finished run completes even if a stop request arrived as it
        # finished: its adapter is written, and throwing it away would help no one.
        return "stopped" if outcome.get("stopped") else "completed"
    if stop_requested:  # killed by a hard stop
        return "stopped"
    if runner_lost and worker_error is None:
        # The runner process was lost (its node went down, e.g. the service is stopping),
        # not a training error: the job can continue from its checkpoint.
        return "interrupted"
    return "failed"


class JobTracker:
    """The jobs this manager runs now, and the one place their state changes."""

    def __init__(self, registry: Registry, storage: Storage, feed: ChangeFeed, *,
                 checkpoint_step: Callable[[str], Optional[int]],
                 kill_runner: Callable[[ActiveJob], None]) -> None:
        """`checkpoint_step(job_id)`: the step a resume continues from; `kill_runner(job)` ends a job's run."""
        self.registry = registry
        self.storage = storage
        self.feed = feed
        self.active: dict[str, ActiveJob] = {}
        self._checkpoint_step = checkpoint_step
        self._kill_runner = kill_runner

    def mark_orphans_interrupted(self, *, keep_queued: bool = False) -> None:
        """Jobs active in a previous life of the manager lost their runner with it (runners are its own).

        With `keep_queued`, queued jobs (which had no runner yet) stay queued.
        """
        statuses = set(ACTIVE_STATUSES) - ({"queued"} if keep_queued else set())
        for job in self.registry.jobs_with_status(statuses):
            message = self.interrupted_message(job.job_id, "the service stopped while this job was running")
            self.registry.update_job(job.job_id, status="interrupted", finished_at=utc_iso(), message=message,
                                     estimated_finish=None)
            self.registry.add_event(job.job_id, "interrupted", message)

    def interrupted_message(self, job_id: str, cause: str) -> str:
        checkpoint = self._checkpoint_step(job_id)
        return f"{cause}; " + (
            f"its checkpoint at step {checkpoint} is kept: POST /api/jobs/{job_id}/resume continues it"
            if checkpoint is not None else "it had no checkpoint yet: resuming starts it over")

    # ------------------------------------------------------------ lifecycle

    def open(self, record: JobRecord, spec: JobSpec, notes: list[str], *, record_notes: bool = True) -> ActiveJob:
        """Make a queued job active; its substitution notes become events (once, at its first start)."""
        options = spec.options.model_dump(mode="json")
        self.registry.update_job(record.job_id, options=options)
        job = ActiveJob(record=record.model_copy(update={"options": options}), spec=spec, notes=notes)
        self.active[record.job_id] = job
        for note in notes if record_notes else ():
            self.registry.add_event(record.job_id, "substitution", note)
        self._publish(record.job_id)
        return job

    def resumable(self, job_id: str) -> JobRecord:
        """The job's record, if it can be resumed now; else NotFound or Conflict."""
        record = self.registry.get_job(job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} does not exist")
        if job_id in self.active or record.status not in RESUMABLE_STATUSES:
            raise Conflict(f"job {job_id!r} is {record.status}; only {', '.join(sorted(RESUMABLE_STATUSES))} "
                           "jobs can be resumed")
        return record

    def queue_resume(self, job_id: str) -> str:
        """Queue a resumable job again; returns where it continues from, as words."""
        if job_id in self.active:
            raise Conflict(f"job {job_id!r} is already being resumed")
        checkpoint = self._checkpoint_step(job_id)
        where = f"from its checkpoint at step {checkpoint}" if checkpoint is not None else (
            "from step 0 (it has no checkpoint)")
        self.registry.add_event(job_id, "resume", f"resume requested; continuing {where}")
        self.registry.update_job(job_id, status="queued", finished_at=None, message=f"Resuming {where}",
                                 queued_at=utc_iso())
        return where

    def starting(self, job: ActiveJob) -> None:
        self.update(job.record.job_id, status="starting", message="; ".join(job.notes) or "Starting Ray Train workers")

    def waiting(self, job: ActiveJob, reason: str) -> None:
        """The job's workers wait for resources: say why, in its events and its status message."""
        job_id = job.record.job_id
        self.registry.add_event(job_id, "waiting", reason)
        if job.record.status == "starting":
            self.update(job_id, message=f"Waiting for the cluster: {reason}")

    def end_run(self, job: ActiveJob, outcome: dict[str, Any] | BaseException, *, runner_lost: bool = False) -> RunEnd:
        """Record how the job's run ended; a completed run's model is registered first."""
        job_id = job.record.job_id
        end = run_end(outcome, stop_requested=job.stop_requested, worker_error=job.failure, runner_lost=runner_lost)
        if end == "completed":
            assert isinstance(outcome, dict)
            try:
                model = self.register_model(job, outcome.get("metrics", {}))
            except Exception as error:
                log.exception("job %s finished but its model could not be registered", job_id)
                self.finish(job_id, "failed", f"Training failed: {one_line(error)}")
                return "failed"
            self.finish(job_id, "completed", "Training completed", model_id=model.id, progress=100.0)
            # The model is registered; its checkpoints have nothing left to resume (deleted on close).
            job.leftovers.append(self.storage.run_dir(job_id))
        elif end == "stopped":
            self.finish(job_id, "stopped", "Training stopped by request")
        elif end == "interrupted":
            self.finish(job_id, "interrupted", self.interrupted_message(job_id, "its runner was lost"))
        else:
            log.error("job %s failed", job_id, exc_info=outcome if isinstance(outcome, BaseException) else None)
            self.finish(job_id, "failed", f"Training failed: {job.failure or one_line(outcome)} "
                                          f"(the workers' output: GET /api/jobs/{job_id}/logs)")
        return end

    async def close(self, job_id: str) -> None:
        """The job's run is over: forget it, whatever it left unregistered in staging, and its leftovers.

        The files go in a thread: deleting a folder on an object store takes a while.
        """
        job = self.active.pop(job_id, None)
        for path in [self.storage.staging_dir(job_id), *(job.leftovers if job else ())]:
            await asyncio.to_thread(self.storage.remove_tree, path)

    def register_model(self, job: ActiveJob, metrics: dict[str, Any]) -> ModelRecord:
        """Move the job's adapter from staging to its model folder and register it, as one step."""
        assert job.spec is not None
        request = job.spec.request
        staging = self.storage.staging_dir(job.record.job_id)
        if not self.storage.exists(f"{staging}/forge.json"):
            raise RuntimeError("the run finished without writing an adapter")
        return self.registry.add_model(
            place_files=files_mover(self.storage, staging),
            size_bytes=lambda shown: self.storage.size_bytes(self.storage.path_of(shown)),
            name=model_name(request, job.record.job_id),
            base_model=request.model_name,
            task=request.task,
            provider=request.provider,
            strategy=request.strategy,
            job_id=job.record.job_id,
            metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float)) or v is None},
            training_params=job.spec.training_params(),
        )

    # ---------------------------------------------------------- stop requests

    def request_stop(self, job_id: Optional[str]) -> ActiveJob:
        """Mark the job (default: the newest active one) as asked to stop; NotFound/Conflict otherwise."""
        if job_id is None:
            job_id = self.newest_active()
            if job_id is None:
                raise Conflict("no training job is running")
        job = self.active.get(job_id)
        if job is None:
            if self.registry.get_job(job_id) is None:
                raise NotFound(f"job {job_id!r} does not exist")
            raise Conflict(f"job {job_id!r} is not running")
        if not job.stop_requested:
            job.stop_requested = True
            self.registry.add_event(job_id, "stop", "stop requested")
            self.update(job_id, status="stopping", message="Stop requested")
        return job

    def stop_requested(self, job_id: str) -> bool:
        job = self.active.get(job_id)
        return job is None or job.stop_requested

    # ------------------------------------------------------ worker reports

    def apply_progress(self, job_id: str, update: ProgressUpdate) -> None:
        """One step's report: status fields only move forward, the history keeps the step as reported."""
        job = self.active.get(job_id)
        if job is None or job.record.status not in ACTIVE_STATUSES:
            return
        record = job.record
        reported = update.model_dump(exclude_none=True)
        changes: dict[str, Any] = {k: reported[k] for k in _PROGRESS_FIELDS if k in reported}
        if "current_step" in changes:
            changes["current_step"] = max(record.current_step, changes["current_step"])
        total = int(changes.get("total_steps", record.total_steps) or 0)
        step = changes.get("current_step", record.current_step)
        if total > 0:
            # Never 100 before the model is registered; never backwards.
            changes["progress"] = max(record.progress, round(min(99.0, 100.0 * step / total), 2))
        if record.status in ("queued", "starting"):
            changes["status"] = "training"
            if record.started_at is None:  # a resumed job keeps the time it first started
                changes["started_at"] = utc_iso()
            changes["total_epochs"] = job.spec.request.num_train_epochs if job.spec else 0
        # The history is keyed by the step the worker reports (a resumed run redoes some
        # steps; the status's current_step meanwhile stays where users last saw it).
        history_step = update.current_step or step
        if update.logged_at is not None and update.current_step is not None:
            if job.pace_origin is None:
                job.pace_origin = (update.current_step, update.logged_at)
            estimate = estimate_finish(job.pace_origin, update.current_step, update.logged_at, total)
            if estimate is not None:
                changes["estimated_finish"] = estimate
        if update.loss is not None:
            self.registry.add_metrics(job_id, history_step, {k: reported[k] for k in _HISTORY_FIELDS if k in reported})
        if update.eval_loss is not None:
            self.registry.add_metrics(job_id, history_step, {"eval_loss": update.eval_loss})
        if changes:
            self.update(job_id, **changes)

    def record_worker_event(self, job_id: str, event: WorkerEvent) -> None:
        job = self.active.get(job_id)
        if job is None:
            return
        if event.kind == "error" and job.failure is None:
            # An exception in the training code fails the same way on every attempt:
            # restarting the workers (meant for lost processes and nodes) would only repeat it.
            job.failure = str(event.data.get("message") or "a training worker raised an error")
            self._kill_runner(job)
        elif event.kind == "checkpoint":
            self.registry.add_event(job_id, "checkpoint", f"checkpoint saved at step {event.data.get('step')}")
        elif event.kind == "setting":
            # Every restarted or resumed worker group says it again; the job's history says it once.
            message = str(event.data.get("message"))
            if all(e.message != message for e in self.registry.events(job_id) if e.kind == "setting"):
                self.registry.add_event(job_id, "setting", message)
        elif event.kind == "workers_started":
            self._workers_started(job, event.data.get("resumed_step"), event.data.get("history") or [])

    def _workers_started(self, job: ActiveJob, resumed: Optional[int], history: list[dict[str, Any]]) -> None:
        job_id = job.record.job_id
        job.worker_starts += 1
        job.pace_origin = None  # a restarted group redoes steps: its pace starts over
        if job.worker_starts > 1 or resumed is not None:
            # Steps after the checkpoint are redone: their first losses belong to lost work.
            self.registry.forget_metrics_after(job_id, resumed or 0)
        if resumed is not None:
            self._fill_history(job_id, resumed, history)
        where = f"from the checkpoint at step {resumed}" if resumed is not None else "from step 0"
        if job.worker_starts > 1:
            assert job.spec is not None
            self.registry.add_event(
                job_id, "restart",
                f"a training worker failed; Ray Train restarted the worker group (restart "
                f"{job.worker_starts - 1} of at most {job.spec.max_failures}), continuing {where}")
        elif resumed is not None:
            self.registry.add_event(job_id, "resume", f"workers started, continuing {where}")

    def _fill_history(self, job_id: str, resumed: int, history: list[dict[str, Any]]) -> None:
        """Add the steps up to the checkpoint that the history lacks, as the checkpoint's trainer logged them.

        A run resumed from a checkpoint does not redo the steps before it, and their live
        reports are lost if the manager was down while they ran (a manager killed and
        restarted while its workers went on to save one more checkpoint).
        """
        have = {kind: self.registry.metric_steps(job_id, kind) for kind in ("loss", "eval_loss")}
        for entry in history:
            kind = "loss" if "loss" in entry else "eval_loss"
            if kind in entry and entry["step"] <= resumed and entry["step"] not in have[kind]:
                self.registry.add_metrics(job_id, entry["step"], {k: v for k, v in entry.items() if k != "step"})

    # ----------------------------------------------------------------- status

    def update(self, job_id: str, **changes: Any) -> None:
        changes["updated_at"] = utc_iso()  # the same time in the registry and in the active job's record
        self.registry.update_job(job_id, **changes)
        job = self.active.get(job_id)
        if job is not None:
            job.record = job.record.model_copy(update=changes)
        self._publish(job_id)

    def finish(self, job_id: str, status: str, message: str, **changes: Any) -> None:
        self.registry.add_event(job_id, status, message)
        self.update(job_id, status=status, message=message, finished_at=utc_iso(), estimated_finish=None, **changes)

    def _publish(self, job_id: str) -> None:
        self.feed.publish(self.status_of(job_id).model_dump())

    def newest_active(self) -> Optional[str]:
        return max(self.active, key=lambda j: self.active[j].record.created_at, default=None)

    def status_of(self, job_id: str) -> TrainingStatus:
        job = self.active.get(job_id)
        record = job.record if job is not None else self.registry.get_job(job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} does not exist")
        requested_epochs = record.request.get(
            "num_train_epochs", TrainingRequest.model_fields["num_train_epochs"].default)
        status = record.model_dump(include=set(TrainingStatus.model_fields))
        return TrainingStatus(**{**status, "total_epochs": record.total_epochs or requested_epochs})

    def training_status(self, job_id: Optional[str] = None) -> TrainingStatus:
        """The job asked for; else the newest active job; else the latest job; else idle."""
        if job_id is None:
            job_id = self.newest_active() or getattr(self.registry.latest_job(), "job_id", None)
        return self.status_of(job_id) if job_id is not None else TrainingStatus()
