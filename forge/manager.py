"""The TrainingManager actor: owns jobs, datasets and models, and the registry.

One named, detached actor per cluster, and a thin façade over `forge.jobs`:
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
from forge.errors import ForgeError, NotFound
from forge.feed import ChangeFeed
from forge.jobs import listing
from forge.jobs.admission import Admission, PreparedJob, training_hardware
from forge.jobs.queue import JobQueue
from forge.jobs.runners import RUNNER_ENV, RunnerPool, resources_needed, shortfall, waiting_reason
from forge.jobs.tracker import ActiveJob, JobTracker
from forge.model_store import ModelStore
from forge.modeling.merging import MergeOutcome, MergeSpec, merge_adapter
from forge.registry import JobRecord, Registry
from forge.schemas import ModelUpdate, TrainingRequest, ValidationReport
from forge.settings import RAY_NAMESPACE, Settings
from forge.storage import Storage
from forge.training.checkpoints import latest_registered_step
from forge.training.manager_link import ProgressUpdate, WorkerEvent
from forge.training.options import Hardware
from forge.unsloth_env import ProviderStatus, probe_unsloth

# A job whose workers have not started this long, for want of nodes, says why (its events, its status).
WAITING_NOTICE_S = 30.0
# Ray gives the head node, and only it, this resource.
HEAD_NODE_RESOURCE = "node:__internal_head__"
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
        try:  # a manager restarted by Ray starts what its previous life left queued
            asyncio.get_running_loop().create_task(self.start_queued())
        except RuntimeError:  # no event loop runs this constructor (constructed outside Ray)
            pass

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
            position = len(waiting) + 1
            message = self.queue.position_message(position, position)
            self.registry.add_event(job_id, "queued", message)
            self.tracker.update(job_id, message=message)
            return {"status": "queued", "job_id": job_id, "message": message, "queue_position": position}
        self._launch(record, prepared)
        message = "Training started successfully"
        if prepared.notes:
            message += "; " + "; ".join(prepared.notes)
        return {"status": "started", "job_id": job_id, "message": message}

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
                    self._launch(record, prepared)
            for job_id, message in self.queue.renumber(self.tracker.active):
                self.tracker.update(job_id, message=message)

    async def resume_training(self, job_id: str) -> dict[str, Any]:
        """Continue an interrupted, stopped or failed job from its latest checkpoint, under the same id."""
        record = self.tracker.resumable(job_id)
        prepared = await self._prepare(TrainingRequest.model_validate(record.request))
        self.admission.check_capacity(self.tracker.active)
        where = self.tracker.queue_resume(job_id)
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
            outcome = await runner.run.remote(job.spec)
        except Exception as error:  # the job ends; the manager lives on
            self.tracker.end_run(job, error, runner_lost=isinstance(error, ray.exceptions.RayActorError))
        else:
            self.tracker.end_run(job, outcome)
        finally:
            watch.cancel()
            self.runners.kill(job.runner)
            self.tracker.close(job.record.job_id)
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
        for update in updates:
            self.tracker.apply_progress(job_id, update)

    async def record_worker_event(self, job_id: str, event: WorkerEvent) -> None:
        self.tracker.record_worker_event(job_id, event)

    async def stop_requested(self, job_id: str) -> bool:
        return self.tracker.stop_requested(job_id)

    async def stop_training(self, job_id: Optional[str] = None) -> dict[str, Any]:
        if job_id in {j.job_id for j in self.queue.waiting(self.tracker.active)}:
            self.tracker.finish(job_id, "stopped", "Cancelled while queued; it never started")
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
        return {"status": "stopped", "message": "Training stopped successfully", "job_id": job.record.job_id}

    # ---------------------------------------------------------------- status

    async def training_status(self, job_id: Optional[str] = None) -> dict[str, Any]:
        return self.tracker.training_status(job_id).model_dump()

    async def job_events(self, job_id: str) -> list[dict[str, Any]]:
        if self.registry.get_job(job_id) is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return [e.model_dump() for e in self.registry.events(job_id)]

    async def list_jobs(self, statuses: list[str], limit: int, cursor: Optional[str]) -> dict[str, Any]:
        return listing.list_jobs(self.registry, statuses, limit, cursor).model_dump()

    async def job_detail(self, job_id: str) -> dict[str, Any]:
        return listing.job_detail(self.registry, job_id).model_dump()

    async def job_metrics(self, job_id: str) -> list[dict[str, Any]]:
        if self.registry.get_job(job_id) is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return self.registry.metrics(job_id)

    async def feed_position(self, job_id: Optional[str] = None) -> tuple[int, dict[str, Any]]:
        """The feed's current sequence number and the status a new subscriber starts from."""
        return self.tracker.feed.seq, await self.training_status(job_id)

    async def feed_after(self, seq: int, timeout: float = 15.0) -> list[tuple[int, dict[str, Any]]]:
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


def get_or_create_manager(settings: Settings):
    """The cluster's one TrainingManager, created on first use."""
    return (
        ray.remote(TrainingManager)
        .options(
            name=settings.manager_name,
            namespace=RAY_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            num_cpus=0,
            # On the head node, always: the registry file it owns must outlive worker-node churn.
            resources={HEAD_NODE_RESOURCE: 0.001},
            runtime_env={"env_vars": RUNNER_ENV},
        )
        .remote(settings)
    )
