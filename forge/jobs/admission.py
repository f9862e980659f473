"""Admission: everything that can refuse a job with a 4xx, checked before anything is written.

Capability, capacity, the dataset (where it is, and whether its rows fit the task),
the model, and whether the job fits the hardware. The hardware is an input: the
manager reads the cluster's resources, tests pass any `Hardware` they like.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Optional

from pydantic import BaseModel, Field

from forge import catalog
from forge.dataset_names import closest_name, missing_dataset
from forge.datasets import validate_jsonl
from forge.errors import BadRequest, Conflict
from forge.registry import Registry
from forge.schemas import TrainingRequest
from forge.settings import RAY_NAMESPACE, Settings
from forge.sources import resolve_dataset_path, resolve_model_source
from forge.storage import Storage
from forge.training.options import Hardware, ResolvedOptions, resolve_options
from forge.training.spec import JobSpec
from forge.unsloth_env import ProviderStatus

# For requests that do not use unsloth: its probe is not worth waiting for.
UNSLOTH_NOT_ASKED = ProviderStatus(available=False, detail="not probed")
_FORMAT_FIELDS_HINT = (
    "pairs: input/output; chat: messages; preference: prompt/chosen/rejected; qa: context/question/answer; "
    "text: text"
)


def training_hardware(settings: Settings, resources: Mapping[str, float]) -> Hardware:
    """What jobs train on, from the cluster's resources (`ray.cluster_resources()`) and the settings.

    The resources are what is up now. On an autoscaling cluster GPU nodes may be
    down until a job asks for them, so FORGE_TRAIN_DEVICE=gpu trains on GPUs anyway,
    and FORGE_MAX_TRAIN_GPUS says how many the cluster can ever have.
    """
    gpus_up, cpus = resources.get("GPU", 0), resources.get("CPU", 0)
    configured = settings.max_train_gpus
    if settings.train_device == "cpu" or (settings.train_device == "auto" and not gpus_up):
        return Hardware(gpus=0, cpus=cpus)
    if configured is not None:
        return Hardware(gpus=max(configured, gpus_up), cpus=cpus)
    # Without a configured limit, what is up is the limit, unless nothing is up yet (gpu mode).
    return Hardware(gpus=gpus_up or 1, cpus=cpus, gpus_known=bool(gpus_up))


class PreparedJob(BaseModel):
    """An admitted request with everything its launch needs."""

    request: TrainingRequest = Field(description="The request as the user sent it.")
    options: ResolvedOptions = Field(description="What the worker uses, after hardware substitutions.")
    notes: list[str] = Field(description="Every substitution made, as a sentence for the job's events.")
    model_source: str = Field(description="A built-in name, a local directory or a Hub id.")
    dataset_location: str = Field(description="A path, or a URI in FORGE_STORAGE.")
    dataset_format: str = Field(description="pairs | chat | preference | qa | text: how the worker reads the rows.")
    eval_dataset_location: Optional[str] = Field(None, description="The eval dataset (same format), when one was named.")


class Admission:
    """Checks a training request against the service's capabilities, capacity, data and hardware."""

    def __init__(self, settings: Settings, storage: Storage, registry: Registry,
                 unsloth_status: Callable[[], Awaitable[ProviderStatus]]) -> None:
        self.settings = settings
        self.storage = storage
        self.registry = registry
        self._unsloth_status = unsloth_status

    def has_free_slot(self, running: Collection[str]) -> bool:
        return len(running) < self.settings.max_concurrent_jobs

    def check_capacity(self, running: Collection[str], waiting: int = 0) -> None:
        """409 unless a new job can run now (a free slot, nobody waiting) or join the queue (FORGE_QUEUE_SIZE)."""
        if (self.has_free_slot(running) and waiting == 0) or waiting < self.settings.queue_size:
            return
        message = (f"training already in progress ({', '.join(sorted(running))}); at most "
                   f"{self.settings.max_concurrent_jobs} job(s) run at once")
        if self.settings.queue_size:
            raise Conflict(f"{message} and the queue is full ({waiting} waiting, FORGE_QUEUE_SIZE="
                           f"{self.settings.queue_size}) — try again when a job ends")
        raise Conflict(f"{message} — stop it or wait for it to finish")

    async def prepare(self, request: TrainingRequest, hardware: Hardware, running: Collection[str],
                      waiting: int = 0) -> PreparedJob:
        """The request admitted, or the 4xx that refuses it (`running`, `waiting`: the jobs holding slots, queued)."""
        catalog.check_supported(request, await self._unsloth_status() if request.provider == "unsloth"
                                else UNSLOTH_NOT_ASKED)
        self.check_capacity(running, waiting)
        dataset_location, dataset_format = await self.resolve_dataset(request, request.dataset)
        eval_location = None
        if request.eval_dataset is not None:
            eval_location, eval_format = await self.resolve_dataset(request, request.eval_dataset, field="eval_dataset")
            if eval_format != dataset_format:
                raise BadRequest(f"eval_dataset {request.eval_dataset!r} holds {eval_format} rows and dataset "
                                 f"{request.dataset!r} {dataset_format} rows: both must have one format")
        model_source = await asyncio.to_thread(resolve_model_source, request.model_name)
        if not hardware.has_gpu and request.num_workers > max(1, int(hardware.cpus)):
            raise BadRequest(
                f"num_workers={request.num_workers} needs {request.num_workers} CPUs; the cluster has {hardware.cpus:g}"
            )
        if hardware.has_gpu and hardware.gpus_known and request.num_workers > hardware.gpus:
            limit = ("FORGE_MAX_TRAIN_GPUS" if self.settings.max_train_gpus is not None
                     else "the GPUs up now; FORGE_MAX_TRAIN_GPUS tells the service what an autoscaler can add")
            raise BadRequest(f"num_workers={request.num_workers} needs {request.num_workers} GPUs (one per worker); "
                             f"the cluster can have {hardware.gpus:g} ({limit})")
        options, notes = resolve_options(request, hardware)
        if request.provider == "unsloth" and not hardware.has_gpu:
            notes.append("provider unsloth without a GPU runs Unsloth's CPU backend (it uses fused AdamW and "
                         "turns packing off)")
        return PreparedJob(request=request, options=options, notes=notes, model_source=model_source,
                           dataset_location=dataset_location, dataset_format=dataset_format,
                           eval_dataset_location=eval_location)

    async def resolve_dataset(self, request: TrainingRequest, name: str, field: str = "dataset") -> tuple[str, str]:
        """Where the dataset `name` (the request's `field`) is, a path or a storage URI, and its row format,
        checked against the job."""
        record = self.registry.get_dataset(name)
        if record is not None:
            location = self.storage.uri(self.storage.dataset_path(record.filename))
            row_format = record.format or "pairs"
        else:
            uploaded = [d.filename for d in self.registry.list_datasets()]
            if not os.path.isabs(name) and closest_name(name, uploaded):
                raise BadRequest(missing_dataset(name, uploaded))  # a typo, or data.csv for data.jsonl
            # A file under FORGE_DATASET_ROOTS: on a cluster, a folder mounted on every node.
            path = resolve_dataset_path(name, self.settings.dataset_roots)
            location = str(path)
            report = await asyncio.to_thread(validate_jsonl, path, None)
            if not report.valid:
                raise BadRequest(
                    f"{field} {name!r} is not a valid dataset",
                    extra={"validation": report.model_dump()},
                )
            row_format = report.format or "pairs"
        wanted = catalog.formats_for(request.task, request.strategy)
        if row_format not in wanted:
            raise BadRequest(
                f"{field} {name!r} holds {row_format} rows; task {request.task!r} with strategy "
                f"{request.strategy!r} trains on {' or '.join(wanted)} rows ({_FORMAT_FIELDS_HINT})"
            )
        return location, row_format

    def job_spec(self, job_id: str, prepared: PreparedJob) -> JobSpec:
        """The spec the job's run is a pure function of."""
        return JobSpec(
            job_id=job_id, request=prepared.request, options=prepared.options, model_source=prepared.model_source,
            dataset_path=prepared.dataset_location, dataset_format=prepared.dataset_format,
            eval_dataset_path=prepared.eval_dataset_location,
            output_dir=self.storage.uri(self.storage.staging_dir(job_id)),
            builtin_dir=str(self.storage.builtin_dir), runs_dir=self.storage.uri(self.storage.runs_dir),
            logs_dir=self.storage.uri(self.storage.job_logs_dir(job_id)),
            manager_name=self.settings.manager_name, namespace=RAY_NAMESPACE,
            trust_remote_code=self.settings.trust_remote_code,
            max_failures=self.settings.max_worker_failures,
            worker_resources=self.settings.worker_resources,
        )
