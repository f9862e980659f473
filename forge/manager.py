"""The TrainingManager actor: owns jobs, datasets and models, and the registry.

One named, detached actor per cluster. It validates and launches jobs (one Ray
Train run each, inside a per-job runner actor), receives progress from rank 0,
handles stop requests, registers finished models, and publishes every status
change on a feed the WebSocket route reads. It never trains or generates itself,
and it never blocks its event loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Optional

import ray

from forge import catalog
from forge.datasets import sanitize_filename, validate_jsonl, versioned_name
from forge.errors import BadRequest, Conflict, NotFound, one_line
from forge.feed import ChangeFeed
from forge.registry import DatasetRecord, JobRecord, ModelRecord, Registry
from forge.schemas import ACTIVE_STATUSES, TrainingRequest, TrainingStatus, ValidationReport, utc_iso
from forge.settings import RAY_NAMESPACE, Settings
from forge.sources import resolve_dataset_path, resolve_model_source
from forge.storage import Storage
from forge.training.checkpoints import latest_registered_step
from forge.training.options import Hardware, ResolvedOptions, resolve_options
from forge.jobs.runners import RUNNER_ENV, JobRunner
from forge.training.spec import JobSpec
from forge.unsloth_env import ProviderStatus, probe_unsloth

log = logging.getLogger(__name__)

# For requests that do not use unsloth: its probe is not worth waiting for.
_UNSLOTH_NOT_ASKED = ProviderStatus(available=False, detail="not probed")
_FORMAT_FIELDS_HINT = (
    "pairs: input/output; chat: messages; preference: prompt/chosen/rejected; qa: context/question/answer"
)
# Ray gives the head node, and only it, this resource.
HEAD_NODE_RESOURCE = "node:__internal_head__"
# A job in one of these states can be continued with POST /api/jobs/{job_id}/resume.
RESUMABLE_STATUSES = frozenset({"interrupted", "stopped", "failed"})
# Fields of a progress update a worker may set.
_PROGRESS_FIELDS = ("current_step", "total_steps", "current_epoch", "loss", "learning_rate", "eval_loss")
# Fields of a logged step the metric history keeps (logged_at and num_tokens give the job's throughput).
_HISTORY_FIELDS = ("loss", "learning_rate", "grad_norm", "num_tokens", "logged_at")


@dataclass
class _PreparedJob:
    request: TrainingRequest
    options: ResolvedOptions
    notes: list[str]
    model_source: str
    dataset_location: str  # a path, or a URI in FORGE_STORAGE
    dataset_format: str


# The huggingface provider's runner environment, the one a spare runner is started in.
_HUGGINGFACE_RUNNER_ENV: dict[str, Any] = {"env_vars": RUNNER_ENV}


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


class TrainingManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = Storage(settings)
        self.storage.ensure_dirs()
        self.registry = Registry(self.storage.database)
        self.feed = ChangeFeed()
        self.active: dict[str, ActiveJob] = {}
        # A JobRunner started and warmed ahead for the next huggingface job, with its warm-up call.
        self._spare: Optional[tuple[Any, Any]] = None
        self._unsloth_probe: Optional[asyncio.Task] = None
        self._mark_orphans_interrupted()

    def _mark_orphans_interrupted(self) -> None:
        # Jobs that were active in a previous life of this actor lost their
        # runner with it (runners are owned by the manager).
        for job in self.registry.jobs_with_status(set(ACTIVE_STATUSES)):
            message = self._interrupted_message(job.job_id, "the service stopped while this job was running")
            self.registry.update_job(job.job_id, status="interrupted", finished_at=utc_iso(), message=message)
            self.registry.add_event(job.job_id, "interrupted", message)

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
        validation = ValidationReport.model_validate(report)
        try:
            name = versioned_name(sanitize_filename(filename), lambda n: self._dataset_taken(n))
            final = self.storage.dataset_path(name)
            await asyncio.to_thread(self.storage.move, staged, final)
        finally:
            await asyncio.to_thread(self.storage.remove_tree, staged)
        record = DatasetRecord(
            filename=name, format=validation.format, num_examples=validation.num_examples,
            size_bytes=self.storage.size_bytes(final), uploaded_at=utc_iso(),
        )
        self.registry.add_dataset(record)
        return record.model_dump()

    def _dataset_taken(self, name: str) -> bool:
        return self.registry.get_dataset(name) is not None or self.storage.exists(self.storage.dataset_path(name))

    async def list_datasets(self) -> list[dict[str, Any]]:
        return [d.model_dump() for d in self.registry.list_datasets()]

    # ------------------------------------------------------------------ jobs

    def _check_capacity(self) -> None:
        if len(self.active) >= self.settings.max_concurrent_jobs:
            running = ", ".join(sorted(self.active))
            raise Conflict(
                f"training already in progress ({running}); at most {self.settings.max_concurrent_jobs} "
                "job(s) run at once — stop it or wait for it to finish"
            )

    async def start_training(self, body: dict[str, Any]) -> dict[str, Any]:
        request = TrainingRequest.model_validate(body)
        prepared = await self._prepare(request)
        self._check_capacity()  # again: other requests may have started a job while we awaited
        job_id = f"train_{secrets.token_hex(6)}"
        # What the user asked for, as sent: a resume re-reads it with the same defaults and notes.
        record = self.registry.add_job(job_id, request.model_dump(mode="json", exclude_unset=True), status="queued")
        self._launch(record, prepared)
        message = "Training started successfully"
        if prepared.notes:
            message += "; " + "; ".join(prepared.notes)
        return {"status": "started", "job_id": job_id, "message": message}

    async def resume_training(self, job_id: str) -> dict[str, Any]:
        """Continue an interrupted, stopped or failed job from its latest checkpoint, under the same id."""
        record = self.registry.get_job(job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} does not exist")
        if job_id in self.active or record.status not in RESUMABLE_STATUSES:
            raise Conflict(f"job {job_id!r} is {record.status}; only {', '.join(sorted(RESUMABLE_STATUSES))} "
                           "jobs can be resumed")
        prepared = await self._prepare(TrainingRequest.model_validate(record.request))
        self._check_capacity()
        if job_id in self.active:
            raise Conflict(f"job {job_id!r} is already being resumed")
        checkpoint = self._latest_checkpoint_step(job_id)
        where = f"from its checkpoint at step {checkpoint}" if checkpoint is not None else (
            "from step 0 (it has no checkpoint)")
        self.registry.add_event(job_id, "resume", f"resume requested; continuing {where}")
        self.registry.update_job(job_id, status="queued", finished_at=None, message=f"Resuming {where}")
        self._launch(self.registry.get_job(job_id), prepared, record_notes=False)  # noted at the first start
        return {"status": "started", "job_id": job_id, "message": f"Training resumed {where}"}

    async def _prepare(self, request: TrainingRequest) -> _PreparedJob:
        """Everything a job needs that can be refused with a 4xx, checked before anything is written."""
        catalog.check_supported(request, await self.unsloth_status() if request.provider == "unsloth"
                                     else _UNSLOTH_NOT_ASKED)
        self._check_capacity()
        dataset_location, dataset_format = await self._resolve_dataset(request)
        model_source = await asyncio.to_thread(resolve_model_source, request.model_name)
        hardware = self._hardware()
        if not hardware.has_gpu and request.num_workers > max(1, int(hardware.cpus)):
            raise BadRequest(
                f"num_workers={request.num_workers} needs {request.num_workers} CPUs; the cluster has {hardware.cpus:g}"
            )
        options, notes = resolve_options(request, hardware)
        if request.provider == "unsloth" and not hardware.has_gpu:
            notes.append("provider unsloth without a GPU runs Unsloth's CPU backend (it uses fused AdamW and "
                         "turns packing off)")
        return _PreparedJob(request=request, options=options, notes=notes, model_source=model_source,
                            dataset_location=dataset_location, dataset_format=dataset_format)

    def _launch(self, record: JobRecord, prepared: _PreparedJob, *, record_notes: bool = True) -> None:
        job_id = record.job_id
        job = ActiveJob(record=record, notes=prepared.notes)
        job.spec = JobSpec(
            job_id=job_id, request=prepared.request, options=prepared.options, model_source=prepared.model_source,
            dataset_path=prepared.dataset_location, dataset_format=prepared.dataset_format,
            output_dir=self.storage.uri(self.storage.staging_dir(job_id)),
            builtin_dir=str(self.storage.builtin_dir), runs_dir=self.storage.uri(self.storage.runs_dir),
            manager_name=self.settings.manager_name, namespace=RAY_NAMESPACE,
            trust_remote_code=self.settings.trust_remote_code,
            max_failures=self.settings.max_worker_failures,
            worker_resources=self.settings.worker_resources,
        )
        self.active[job_id] = job
        for note in prepared.notes if record_notes else ():
            self.registry.add_event(job_id, "substitution", note)
        self._publish(job_id)
        job.task = asyncio.get_running_loop().create_task(self._run(job))

    def _interrupted_message(self, job_id: str, cause: str) -> str:
        checkpoint = self._latest_checkpoint_step(job_id)
        return f"{cause}; " + (
            f"its checkpoint at step {checkpoint} is kept: POST /api/jobs/{job_id}/resume continues it"
            if checkpoint is not None else "it had no checkpoint yet: resuming starts it over")

    def _latest_checkpoint_step(self, job_id: str) -> Optional[int]:
        return latest_registered_step(self.storage.uri(self.storage.run_dir(job_id)))

    async def _resolve_dataset(self, request: TrainingRequest) -> tuple[str, str]:
        """Where the dataset is (a path or a storage URI) and its row format, checked against the job."""
        record = self.registry.get_dataset(request.dataset)
        if record is not None:
            location = self.storage.uri(self.storage.dataset_path(record.filename))
            row_format = record.format or "pairs"
        else:
            # A file under FORGE_DATASET_ROOTS: on a cluster, a folder mounted on every node.
            path = resolve_dataset_path(request.dataset, self.settings.dataset_roots)
            location = str(path)
            report = await asyncio.to_thread(validate_jsonl, path, None)
            if not report.valid:
                raise BadRequest(
                    f"dataset {request.dataset!r} is not a valid dataset",
                    extra={"validation": report.model_dump()},
                )
            row_format = report.format or "pairs"
        wanted = catalog.formats_for(request.task, request.strategy)
        if row_format not in wanted:
            raise BadRequest(
                f"dataset {request.dataset!r} holds {row_format} rows; task {request.task!r} with strategy "
                f"{request.strategy!r} trains on {' or '.join(wanted)} rows ({_FORMAT_FIELDS_HINT})"
            )
        return location, row_format

    @staticmethod
    def _hardware() -> Hardware:
        resources = ray.cluster_resources()
        return Hardware(gpus=resources.get("GPU", 0), cpus=resources.get("CPU", 0))

    async def _run(self, job: ActiveJob) -> None:
        job_id = job.record.job_id
        assert job.spec is not None
        try:
            self._update(job_id, status="starting", message="; ".join(job.notes) or "Starting Ray Train workers")
            job.runner = await self._runner_for(job)
            outcome = await job.runner.run.remote(job.spec.model_dump(mode="json"))
            if job.stop_requested or outcome.get("stopped"):
                self._finish(job_id, "stopped", "Training stopped by request")
            else:
                model = self._register_model(job, outcome.get("metrics", {}))
                self._finish(job_id, "completed", "Training completed", model_id=model.id, progress=100.0)
                # The model is registered; its checkpoints have nothing left to resume.
                self.storage.remove_tree(self.storage.run_dir(job_id))
        except Exception as error:  # the job ends; the manager lives on
            if job.stop_requested:
                self._finish(job_id, "stopped", "Training stopped by request")
            elif isinstance(error, ray.exceptions.RayActorError) and job.failure is None:
                # The runner process was lost (its node went down, e.g. the service is
                # stopping), not a training error: the job can continue from its checkpoint.
                self._finish(job_id, "interrupted", self._interrupted_message(job_id, "its runner was lost"))
            else:
                log.exception("job %s failed", job_id)
                self._finish(job_id, "failed", f"Training failed: {job.failure or one_line(error)}")
        finally:
            if job.runner is not None:
                ray.kill(job.runner, no_restart=True)
            self.storage.remove_tree(self.storage.staging_dir(job_id))
            self.active.pop(job_id, None)
            self._keep_a_spare()

    async def _runner_for(self, job: ActiveJob) -> Any:
        """The job's runner: the spare when the job runs in the spare's environment, else a new one."""
        assert job.spec is not None
        runtime_env = self._runtime_env(job.spec)
        if self._spare is not None and runtime_env == _HUGGINGFACE_RUNNER_ENV:
            (job.runner, warming), self._spare = self._spare, None
            try:
                await warming
                return job.runner
            except ray.exceptions.RayActorError:
                if job.stop_requested:  # killed by a hard stop while it warmed up
                    raise
                log.warning("the spare job runner was lost; starting a new one for %s", job.record.job_id)
        return JobRunner.options(
            name=f"runner-{job.record.job_id}", namespace=RAY_NAMESPACE, runtime_env=runtime_env
        ).remote()

    def _keep_a_spare(self) -> None:
        """Start a runner for the next job now, while nothing waits for it (after a job, not during one)."""
        if self.settings.spare_runner and self._spare is None:
            # Named for its manager (the job id is not known yet): several services may share a cluster.
            name = f"{self.settings.manager_name}-runner-{secrets.token_hex(4)}"
            runner = JobRunner.options(name=name, namespace=RAY_NAMESPACE, runtime_env=_HUGGINGFACE_RUNNER_ENV).remote()
            self._spare = (runner, runner.warm.remote())

    def _runtime_env(self, spec: JobSpec) -> dict[str, Any]:
        """The runner's environment; Ray Train's controller and workers inherit it."""
        if spec.request.provider == "unsloth":
            return {**_HUGGINGFACE_RUNNER_ENV, "py_executable": str(self.settings.unsloth_python)}
        return dict(_HUGGINGFACE_RUNNER_ENV)

    def _register_model(self, job: ActiveJob, metrics: dict[str, Any]) -> ModelRecord:
        assert job.spec is not None
        request = job.spec.request
        staging = self.storage.staging_dir(job.record.job_id)
        if not self.storage.exists(f"{staging}/forge.json"):
            raise RuntimeError("the run finished without writing an adapter")

        # Inside the registry's transaction, on the event loop: a rename on a local or
        # mounted storage; a copy of the adapter's few files on an object store.
        def place_files(model_id: int) -> str:
            target = self.storage.model_dir(model_id)
            self.storage.remove_tree(target)
            self.storage.move(staging, target)
            return self.storage.display(target)

        base = request.model_name.rstrip("/").split("/")[-1]
        return self.registry.add_model(
            place_files=place_files,
            size_bytes=lambda shown: self.storage.size_bytes(self.storage.path_of(shown)),
            name=f"{base}-{request.strategy}-{job.record.job_id.removeprefix('train_')}",
            base_model=request.model_name,
            task=request.task,
            provider=request.provider,
            strategy=request.strategy,
            job_id=job.record.job_id,
            metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float)) or v is None},
            training_params=job.spec.training_params(),
        )

    # -------------------------------------------------------------- progress

    async def report_progress(self, job_id: str, updates: list[dict[str, Any]]) -> None:
        """Rank 0's progress, a few steps per call, oldest first; each step reaches the feed."""
        for update in updates:
            self._apply_progress(job_id, update)

    def _apply_progress(self, job_id: str, update: dict[str, Any]) -> None:
        job = self.active.get(job_id)
        if job is None or job.record.status not in ACTIVE_STATUSES:
            return
        record = job.record
        changes: dict[str, Any] = {k: update[k] for k in _PROGRESS_FIELDS if update.get(k) is not None}
        if "current_step" in changes:
            changes["current_step"] = max(record.current_step, int(changes["current_step"]))
        total = int(changes.get("total_steps", record.total_steps) or 0)
        step = changes.get("current_step", record.current_step)
        if total > 0:
            # Never 100 before the model is registered; never backwards.
            changes["progress"] = max(record.progress, round(min(99.0, 100.0 * step / total), 2))
        if record.status in ("queued", "starting"):
            changes["status"] = "training"
            changes["total_epochs"] = job.spec.request.num_train_epochs if job.spec else 0
        # The history is keyed by the step the worker reports (a resumed run redoes some
        # steps; the status's current_step meanwhile stays where users last saw it).
        reported = int(update.get("current_step") or step)
        if "loss" in update and update["loss"] is not None:
            self.registry.add_metrics(job_id, reported, {k: update[k] for k in _HISTORY_FIELDS
                                                     if update.get(k) is not None})
        if "eval_loss" in update:
            self.registry.add_metrics(job_id, reported, {"eval_loss": update["eval_loss"]})
        if changes:
            self._update(job_id, **changes)

    async def record_worker_event(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        job = self.active.get(job_id)
        if job is None:
            return
        if kind == "error" and job.failure is None:
            # An exception in the training code fails the same way on every attempt:
            # restarting the workers (meant for lost processes and nodes) would only repeat it.
            job.failure = str(data.get("message") or "a training worker raised an error")
            if job.runner is not None:
                ray.kill(job.runner, no_restart=True)
        elif kind == "checkpoint":
            self.registry.add_event(job_id, "checkpoint", f"checkpoint saved at step {data.get('step')}")
        elif kind == "workers_started":
            job.worker_starts += 1
            resumed = data.get("resumed_step")
            if job.worker_starts > 1 or resumed is not None:
                # Steps after the checkpoint are redone: their first losses belong to lost work.
                self.registry.forget_metrics_after(job_id, resumed or 0)
            where = f"from the checkpoint at step {resumed}" if resumed is not None else "from step 0"
            if job.worker_starts > 1:
                assert job.spec is not None
                self.registry.add_event(
                    job_id, "restart",
                    f"a training worker failed; Ray Train restarted the worker group (restart "
                    f"{job.worker_starts - 1} of at most {job.spec.max_failures}), continuing {where}")
            elif resumed is not None:
                self.registry.add_event(job_id, "resume", f"workers started, continuing {where}")

    async def stop_requested(self, job_id: str) -> bool:
        job = self.active.get(job_id)
        return job is None or job.stop_requested

    async def stop_training(self, job_id: Optional[str] = None) -> dict[str, Any]:
        if job_id is None:
            if not self.active:
                raise Conflict("no training job is running")
            job_id = max(self.active, key=lambda j: self.active[j].record.created_at)
        job = self.active.get(job_id)
        if job is None:
            if self.registry.get_job(job_id) is None:
                raise NotFound(f"job {job_id!r} does not exist")
            raise Conflict(f"job {job_id!r} is not running")
        if not job.stop_requested:
            job.stop_requested = True
            self.registry.add_event(job_id, "stop", "stop requested")
            self._update(job_id, status="stopping", message="Stop requested")
        assert job.task is not None
        done, _ = await asyncio.wait({job.task}, timeout=self.settings.stop_grace_s)
        if not done:
            # The workers did not reach a step boundary in time: kill the run.
            self.registry.add_event(job_id, "stop", f"no clean stop within {self.settings.stop_grace_s:g}s; killed")
            if job.runner is not None:
                ray.kill(job.runner, no_restart=True)
            await asyncio.wait({job.task}, timeout=30)
        return {"status": "stopped", "message": "Training stopped successfully", "job_id": job_id}

    # ---------------------------------------------------------------- status

    def _update(self, job_id: str, **changes: Any) -> None:
        self.registry.update_job(job_id, **changes)
        job = self.active.get(job_id)
        if job is not None:
            job.record = job.record.model_copy(update=changes)
        self._publish(job_id)

    def _finish(self, job_id: str, status: str, message: str, **changes: Any) -> None:
        self.registry.add_event(job_id, status, message)
        self._update(job_id, status=status, message=message, finished_at=utc_iso(), **changes)

    def _publish(self, job_id: str) -> None:
        self.feed.publish(self._status_of(job_id).model_dump())

    def _status_of(self, job_id: str) -> TrainingStatus:
        job = self.active.get(job_id)
        record = job.record if job is not None else self.registry.get_job(job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} does not exist")
        requested_epochs = record.request.get(
            "num_train_epochs", TrainingRequest.model_fields["num_train_epochs"].default)
        return TrainingStatus(
            job_id=record.job_id, status=record.status, progress=record.progress,
            current_epoch=record.current_epoch, total_epochs=record.total_epochs or requested_epochs,
            current_step=record.current_step, total_steps=record.total_steps,
            loss=record.loss, learning_rate=record.learning_rate, eval_loss=record.eval_loss,
            message=record.message, model_id=record.model_id, created_at=record.created_at,
            updated_at=record.updated_at,
        )

    async def training_status(self, job_id: Optional[str] = None) -> dict[str, Any]:
        if job_id is not None:
            return self._status_of(job_id).model_dump()
        if self.active:
            return self._status_of(max(self.active, key=lambda j: self.active[j].record.created_at)).model_dump()
        latest = self.registry.latest_job()
        return (self._status_of(latest.job_id) if latest else TrainingStatus()).model_dump()

    async def job_events(self, job_id: str) -> list[dict[str, Any]]:
        if self.registry.get_job(job_id) is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return [e.model_dump() for e in self.registry.events(job_id)]

    async def job_metrics(self, job_id: str) -> list[dict[str, Any]]:
        if self.registry.get_job(job_id) is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return self.registry.metrics(job_id)

    async def feed_position(self, job_id: Optional[str] = None) -> tuple[int, dict[str, Any]]:
        """The feed's current sequence number and the status a new subscriber starts from."""
        return self.feed.seq, await self.training_status(job_id)

    async def feed_after(self, seq: int, timeout: float = 15.0) -> list[tuple[int, dict[str, Any]]]:
        return await self.feed.wait_after(seq, timeout)

    # ---------------------------------------------------------------- models

    async def list_models(self) -> list[dict[str, Any]]:
        return [m.model_dump() for m in self.registry.list_models()]

    async def get_model(self, model_id: int) -> dict[str, Any]:
        model = self.registry.get_model(model_id)
        if model is None:
            raise NotFound(f"model {model_id} does not exist")
        return model.model_dump()

    async def delete_model(self, model_id: int) -> None:
        model = self.registry.get_model(model_id)
        if model is None:
            raise NotFound(f"model {model_id} does not exist")
        # Row first: a crash between the two leaves stray files, never a model without files.
        self.registry.delete_model(model_id)
        await asyncio.to_thread(self.storage.remove_tree, self.storage.path_of(model.path))


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
