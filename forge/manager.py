"""The TrainingManager actor: owns jobs, datasets and models, and the registry.

One named, detached actor per cluster (forge/manager_handle.py finds or creates it),
and a thin façade over `forge.jobs`:
`Admission` decides whether a job may start, `RunnerPool` hands it a runner actor
(one Ray Train run each), `JobTracker` applies what the workers report, decides how
each run ends and publishes every change on the feed the WebSocket route reads.
What needs Ray (the cluster's resources, actor handles, kills) stays here. The
manager never trains or generates itself, and never blocks its event loop.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Optional

import ray

from forge.dataset_store import DatasetStore
from forge.errors import Conflict, ForgeError, NotFound
from forge.feed import ChangeFeed
from forge.job_schemas import CheckpointList, JobEventPage, JobMetricsPage
from forge.jobs import listing
from forge.jobs.admission import Admission, PreparedJob, training_hardware
from forge.jobs.job_checkpoints import list_job_checkpoints
from forge.jobs.queue import JobQueue
from forge.jobs.runners import RunnerPool, resources_needed, shortfall, waiting_reason
from forge.jobs.tracker import ActiveJob, JobTracker
from forge.model_store import ModelStore
from forge.modeling.merging import MergeOutcome, MergeSpec, merge_adapter
from forge.registry import JobRecord, Registry
from forge.schemas import ACTIVE_STATUSES, ModelUpdate, TrainingRequest, ValidationReport
from forge.settings import Settings
from forge.storage import Storage
from forge.training.checkpoints import latest_registered_step
from forge.training.manager_link import ProgressUpdate, WorkerEvent
from forge.training.options import Hardware
from forge.unsloth_env import ProviderStatus, probe_unsloth

# A job whose workers have not started this long, for want of nodes, says why (its events, its status).
WAITING_NOTICE_S = 30.0
# A merge loads a whole base model with torch: a task of its own, on any node (storage is shared),
# awaited by the manager without blocking its loop. One CPU: it computes, unlike the runner actors.
_merge_task = ray.remote(num_cpus=1)(merge_adapter)


class TrainingManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = Storage(settings)
        self.storage.ensure_dirs()
        self.registry = Registry(self.storage.database)
        self.datasets = DatasetStore(self.registry, self.storage)
        self.models = ModelStore(self.registry, self.storage, trust_remote_code=settings.trust_remote_code)
        self.runners = RunnerPool(settings)
        self.admission = Admission(settings, self.storage, self.registry, self.unsloth_status)
        self.tracker = JobTracker(self.registry, self.storage, ChangeFeed(),
                                  checkpoint_step=self._latest_checkpoint_step,
                                  kill_runner=lambda job: self.runners.kill(job.runner))
        self.queue = JobQueue(self.registry, settings.queue_size)
        self._dequeuing = asyncio.Lock()
        self._unsloth_probe: Optional[asyncio.Task] = None
        # Queued jobs never started: they wait on (when a queue is configured) for start_queued.
        self.tracker.mark_orphans_interrupted(keep_queued=settings.queue_size > 0)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop runs this constructor (constructed outside Ray)
            return
        # The first job's runner, too, is started and warmed up ahead, while nothing waits for it (a job
        # that comes before it is warm waits for the rest). Before the queued start below, which takes it.
        self.runners.keep_a_spare()
        # A manager restarted by Ray starts what its previous life left queued.
        loop.create_task(self.start_queued())

    def _latest_checkpoint_step(self, job_id: str) -> Optional[int]:
        return latest_registered_step(self.storage.uri(self.storage.run_dir(job_id)))

    def _hardware(self) -> Hardware:
        return training_hardware(self.settings, ray.cluster_resources())

    async def unsloth_status(self) -> ProviderStatus:
        """Whether the unsloth venv imports, probed once (importing unsloth takes seconds)."""
        if self._unsloth_probe is None:
            self._unsloth_probe = asyncio.get_running_loop().create_task(
                probe_unsloth(self.settings.unsloth_python))
        return await asyncio.shield(self._unsloth_probe)

    async def current_settings(self) -> Settings:
        return self.settings

    async def is_idle(self) -> bool:
        """No job runs (queued ones may wait: they are in the registry, for whichever manager comes next)."""
        return not self.tracker.active

    async def provider_status(self) -> dict[str, Any]:
        return {"huggingface": {"available": True, "detail": "transformers + PEFT + TRL"},
                "unsloth": (await self.unsloth_status()).model_dump()}

    # -------------------------------------------------------------- datasets

    async def register_dataset(self, staged: str, filename: str, report: dict[str, Any]) -> dict[str, Any]:
        """Move a validated upload (a storage path) into place under a free name and record it."""
        return (await self.datasets.register(staged, filename, ValidationReport.model_validate(report))).model_dump()

    async def list_datasets(self) -> list[dict[str, Any]]:
        return [d.model_dump() for d in self.datasets.all()]

    async def dataset_rows(self, filename: str, offset: int, limit: int) -> dict[str, Any]:
        rows, more = await self.datasets.rows(filename, offset, limit)
        return {**self.datasets.get(filename).model_dump(), "rows": rows, "offset": offset,
                "next_offset": offset + len(rows) if more else None}

    async def delete_dataset(self, filename: str) -> None:
        jobs = [*(j.record for j in self.tracker.active.values()), *self.queue.waiting(self.tracker.active)]
        await self.datasets.delete(filename, used_by={j.job_id for j in jobs if j.request.get("dataset") == filename})

    # ------------------------------------------------------------------ jobs

    async def _prepare(self, request: TrainingRequest) -> PreparedJob:
        running = self.tracker.active
        return await self.admission.prepare(request, self._hardware(), running, len(self.queue.waiting(running)))

    async def start_training(self, request: TrainingRequest) -> dict[str, Any]:
        prepared = await self._prepare(request)
        # Again: another start may have taken the slot or the queue's last place meanwhile.
        waiting = self.queue.waiting(self.tracker.active)
        self.admission.check_capacity(self.tracker.active, len(waiting))
        job_id = f"train_{secrets.token_hex(6)}"
        # What the user asked for, as sent: a resume re-reads it with the same defaults and notes.
        record = self.registry.add_job(job_id, request.model_dump(mode="json", exclude_unset=True), status="queued")
        if waiting or not self.admission.has_free_slot(self.tracker.active):
            return self._joined_queue(job_id, len(waiting) + 1)
        self._launch(record, prepared)
        message = "Training started successfully"
        if prepared.notes:
            message += "; " + "; ".join(prepared.notes)
        return {"status": "started", "job_id": job_id, "message": message}

    def _joined_queue(self, job_id: str, position: int, *, resumed_from: str = "") -> dict[str, Any]:
        """A job (new, or resumed) waits in line at `position`: say so in its events, status and the answer."""
        message = self.queue.position_message(position, position)
        if resumed_from:
            message += f"; it continues {resumed_from}"
        self.registry.add_event(job_id, "queued", message)
        self.tracker.update(job_id, message=message)
        return {"status": "queued", "job_id": job_id, "message": message, "queue_position": position}

    async def start_queued(self) -> None:
        """Start queued jobs, first in line first, while slots are free (also after a restart: the ingress asks)."""
        async with self._dequeuing:  # one at a time: two callers must not launch one job twice
            while self.admission.has_free_slot(self.tracker.active):
                waiting = self.queue.waiting(self.tracker.active)
                if not waiting:
                    break
                request = TrainingRequest.model_validate(waiting[0].request)
                try:
                    # The slot is this job's: it is checked against the cluster and its data, not the queue.
                    prepared = await self.admission.prepare(request, self._hardware(), running=())
                except ForgeError as error:  # e.g. its dataset or model went away while it waited
                    self.tracker.finish(waiting[0].job_id, "failed", f"Could not start from the queue: {error}")
                    continue
                record = self.registry.get_job(waiting[0].job_id)
                if record is not None and record.status == "queued":  # else cancelled meanwhile
                    # A resumed job's substitutions were noted at its first start (which set its options).
                    self._launch(record, prepared, record_notes=record.options is None)
            for job_id, message in self.queue.renumber(self.tracker.active):
                self.tracker.update(job_id, message=message)

    async def resume_training(self, job_id: str) -> dict[str, Any]:
        """Continue an interrupted, stopped or failed job from its latest checkpoint, under the same id."""
        record = self.tracker.resumable(job_id)
        prepared = await self._prepare(TrainingRequest.model_validate(record.request))
        # With FORGE_QUEUE_SIZE, a resume while every slot is busy waits in line like a start.
        waiting = self.queue.waiting(self.tracker.active)
        self.admission.check_capacity(self.tracker.active, len(waiting))
        where = self.tracker.queue_resume(job_id)
        if waiting or not self.admission.has_free_slot(self.tracker.active):
            return self._joined_queue(job_id, len(waiting) + 1, resumed_from=where)
        self._launch(self.registry.get_job(job_id), prepared, record_notes=False)  # noted at the first start
        return {"status": "started", "job_id": job_id, "message": f"Training resumed {where}"}

    def _launch(self, record: JobRecord, prepared: PreparedJob, *, record_notes: bool = True) -> None:
        spec = self.admission.job_spec(record.job_id, prepared)
        job = self.tracker.open(record, spec, prepared.notes, record_notes=record_notes)
        job.task = asyncio.get_running_loop().create_task(self._run(job))

    async def _run(self, job: ActiveJob) -> None:
        watch = asyncio.get_running_loop().create_task(self._watch_start(job))
        try:
            self.tracker.starting(job)
            runner = await self.runners.runner_for(job)
            # Named by the job id: the Ray dashboard shows the run as this task (the console links to it).
            outcome = await runner.run.options(name=job.record.job_id).remote(job.spec)
        except Exception as error:  # the job ends; the manager lives on
            self.tracker.end_run(job, error, runner_lost=isinstance(error, ray.exceptions.RayActorError))
        else:
            self.tracker.end_run(job, outcome)
        finally:
            watch.cancel()
            self.runners.kill(job.runner)
            await self.tracker.close(job.record.job_id)
            asyncio.get_running_loop().create_task(self.start_queued())
            self.runners.keep_a_spare()

    async def _watch_start(self, job: ActiveJob) -> None:
        """Say why a job's workers wait for nodes; fail the job when they never start (FORGE_JOB_START_TIMEOUT_S).

        A worker group that no node can hold waits in Ray for ever (for the autoscaler,
        or for GPUs the cluster will never have), holding a job slot: the timeout frees it.
        """
        assert job.spec is not None
        timeout = self.settings.job_start_timeout_s
        notice_after = min(WAITING_NOTICE_S, timeout / 2)
        needed = resources_needed(job.spec)
        await asyncio.sleep(notice_after)
        cluster = ray.cluster_resources()
        if job.worker_starts == 0 and shortfall(needed, cluster):
            self.tracker.waiting(job, waiting_reason(needed, cluster))
        await asyncio.sleep(timeout - notice_after)
        if job.worker_starts == 0 and not job.stop_requested and job.failure is None:
            job.failure = (f"its workers did not start within {timeout:g} s (FORGE_JOB_START_TIMEOUT_S): "
                           f"{waiting_reason(needed, ray.cluster_resources())}")
            self.runners.kill(job.runner)

    # -------------------------------------------------------------- progress

    async def report_progress(self, job_id: str, updates: list[ProgressUpdate]) -> None:
        """Rank 0's progress, a few steps per call, oldest first; each step reaches the feed."""
        with self.registry.batch():  # one commit for the whole call
            for update in updates:
                self.tracker.apply_progress(job_id, update)

    async def record_worker_event(self, job_id: str, event: WorkerEvent) -> None:
        self.tracker.record_worker_event(job_id, event)

    async def stop_requested(self, job_id: str) -> bool:
        return self.tracker.stop_requested(job_id)

    async def stop_training(self, job_id: Optional[str] = None) -> dict[str, Any]:
        waiting = {j.job_id: j for j in self.queue.waiting(self.tracker.active)}
        if job_id in waiting:
            # A resumed job waiting in line keeps its checkpoints: it can be resumed again later.
            never = "it never started" if waiting[job_id].started_at is None else "it did not continue"
            self.tracker.finish(job_id, "stopped", f"Cancelled while queued; {never}")
            for waiting_id, message in self.queue.renumber(self.tracker.active):
                self.tracker.update(waiting_id, message=message)
            return {"status": "stopped", "message": "Queued job cancelled before it started", "job_id": job_id}
        job = self.tracker.request_stop(job_id)
        assert job.task is not None
        if job.worker_starts == 0:
            # No worker runs a step yet (they may be waiting for a node): there is no step boundary
            # to wait for, and nothing to lose.
            self.runners.kill(job.runner)
        done, _ = await asyncio.wait({job.task}, timeout=self.settings.stop_grace_s)
        if not done:
            # The workers did not reach a step boundary in time: kill the run.
            self.registry.add_event(job.record.job_id, "stop",
                                    f"no clean stop within {self.settings.stop_grace_s:g}s; killed")
            self.runners.kill(job.runner)
            await asyncio.wait({job.task}, timeout=30)
        return self._stop_answer(job)

    def _stop_answer(self, job: ActiveJob) -> dict[str, Any]:
        """"stopped" only for a job that has stopped; an error saying what happened otherwise."""
        job_id = job.record.job_id
        assert job.task is not None
        if not job.task.done():
            raise Conflict(f"job {job_id!r} is still stopping (its run did not end after the kill); "
                           f"GET /api/training_status?job_id={job_id} shows when it has")
        ended = self._job(job_id)
        if ended.status != "stopped":  # the run finished its last step before the stop reached it
            model = f"; its model {ended.model_id} is registered" if ended.model_id is not None else ""
            raise Conflict(f"job {job_id!r} ended {ended.status} before the stop took effect{model}")
        return {"status": "stopped", "message": "Training stopped successfully", "job_id": job_id}

    # ---------------------------------------------------------------- status

    async def training_status(self, job_id: Optional[str] = None) -> dict[str, Any]:
        return self.tracker.training_status(job_id).model_dump()

    def _job(self, job_id: str) -> JobRecord:
        record = self.registry.get_job(job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return record

    async def job_events(self, job_id: str, offset: int, limit: int) -> dict[str, Any]:
        self._job(job_id)
        events = self.registry.events(job_id, offset, limit + 1)  # one more: is there a next page?
        return JobEventPage(job_id=job_id, events=events[:limit],
                            next_offset=offset + limit if len(events) > limit else None).model_dump()

    async def list_jobs(self, statuses: list[str], limit: int, cursor: Optional[str]) -> dict[str, Any]:
        return listing.list_jobs(self.registry, statuses, limit, cursor).model_dump()

    async def job_detail(self, job_id: str) -> dict[str, Any]:
        return listing.job_detail(self.registry, job_id).model_dump()

    async def job_metrics(self, job_id: str, offset: int, limit: int) -> dict[str, Any]:
        self._job(job_id)
        metrics = self.registry.metrics(job_id, offset, limit + 1)
        return JobMetricsPage(job_id=job_id, metrics=metrics[:limit],
                              next_offset=offset + limit if len(metrics) > limit else None).model_dump()

    async def trained_tokens(self, job_id: str) -> Optional[int]:
        """Tokens the job has trained on so far (the trainer's running count), None before its first step."""
        self._job(job_id)
        tokens = self.registry.last_metric(job_id, "num_tokens")
        return int(tokens) if tokens is not None else None

    async def job_checkpoints(self, job_id: str) -> dict[str, Any]:
        self._job(job_id)
        kept = await asyncio.to_thread(list_job_checkpoints, self.storage, job_id)
        return CheckpointList(job_id=job_id, checkpoints=kept).model_dump()

    async def register_checkpoint(self, job_id: str, step: int) -> dict[str, Any]:
        """Register the adapter of one of the job's kept checkpoints as a model (also while it trains)."""
        return (await self.models.register_checkpoint(self._job(job_id), step)).model_dump()

    async def delete_job(self, job_id: str) -> None:
        """Forget a finished job: its record, history, checkpoints and logs (its models stay)."""
        record = self._job(job_id)
        if job_id in self.tracker.active or record.status in ACTIVE_STATUSES:
            raise Conflict(f"job {job_id!r} is {record.status}; stop it (or cancel it, if queued) before deleting it")
        # Rows first: a crash between the two leaves stray files, never a job without its files.
        self.registry.delete_job(job_id)
        for folder in (self.storage.run_dir(job_id), self.storage.job_logs_dir(job_id)):
            await asyncio.to_thread(self.storage.remove_tree, folder)

    async def feed_position(self, job_id: Optional[str] = None) -> tuple[str, int, dict[str, Any]]:
        """The feed's epoch and current sequence number, and the status a new subscriber starts from."""
        return (*await self.feed_head(), await self.training_status(job_id))

    async def feed_head(self) -> tuple[str, int]:
        """The feed's epoch and current sequence number: every change made so far is at or before it."""
        return self.tracker.feed.epoch, self.tracker.feed.seq

    async def feed_after(self, epoch: str, seq: int,
                         timeout: float = 15.0) -> Optional[list[tuple[int, dict[str, Any]]]]:
        """The feed's entries after `seq`; None when `epoch` is a previous feed's (the manager restarted)."""
        if epoch != self.tracker.feed.epoch:
            return None
        return await self.tracker.feed.wait_after(seq, timeout)

    # ---------------------------------------------------------------- models

    async def list_models(self) -> list[dict[str, Any]]:
        return [m.model_dump() for m in self.models.all()]

    async def get_model(self, model_id: int) -> dict[str, Any]:
        return self.models.get(model_id).model_dump()

    async def update_model(self, model_id: int, update: ModelUpdate) -> dict[str, Any]:
        return self.models.update(model_id, update).model_dump()

    async def delete_model(self, model_id: int) -> None:
        await self.models.delete(model_id)

    async def merge_model(self, model_id: int) -> dict[str, Any]:
        """Merge an adapter model into its base (a Ray task); the new model and a message saying how."""
        model, message = await self.models.merge(model_id, self._run_merge)
        return {"model": model.model_dump(), "message": message}

    @staticmethod
    async def _run_merge(spec: MergeSpec) -> MergeOutcome:
        return await _merge_task.remote(spec)
