"""The registered models: read, renamed and described, merged, deleted (row first, then files).

A plain class over the registry and the storage, used by the TrainingManager (its
only writer); no Ray: a merge's heavy part is a function the manager hands in (it
runs forge.modeling.merging as a Ray task). Registering a finished job's model is the
tracker's, at the end of the job; registering one of a job's checkpoints is this store's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from forge.errors import Conflict, NotFound
from forge.jobs.job_checkpoints import stage_checkpoint_model
from forge.modeling.merging import MergeOutcome, MergeSpec
from forge.modeling.model_card import CARD_FILE, ModelCard
from forge.registry import JobRecord, ModelRecord, Registry
from forge.schemas import ModelUpdate, TrainingRequest
from forge.storage import Storage
from forge.training.spec import training_params


def model_name(request: TrainingRequest, job_id: str) -> str:
    """The name a job's model is registered under (users may rename it): base, strategy, suffix, job."""
    parts = [request.model_name.rstrip("/").split("/")[-1], request.strategy, request.model_suffix,
             job_id.removeprefix("train_")]
    return "-".join(part for part in parts if part)


def files_mover(storage: Storage, staging: str) -> Callable[[int], str]:
    """The registry's `place_files`: move staged model files into the new model's folder; returns it as shown.

    It runs inside the registry's transaction, on the manager's loop: a rename on a local
    or mounted storage; a copy of an adapter's few files on an object store.
    """
    return lambda model_id: storage.move_into_place(staging, storage.model_dir(model_id))


RunMerge = Callable[[MergeSpec], Awaitable[MergeOutcome]]


class ModelStore:
    def __init__(self, registry: Registry, storage: Storage, *, trust_remote_code: bool = False) -> None:
        self.registry = registry
        self.storage = storage
        self.trust_remote_code = trust_remote_code

    def all(self) -> list[ModelRecord]:
        return self.registry.list_models()

    def get(self, model_id: int) -> ModelRecord:
        model = self.registry.get_model(model_id)
        if model is None:
            raise NotFound(f"model {model_id} does not exist")
        return model

    def update(self, model_id: int, update: ModelUpdate) -> ModelRecord:
        """Set what the update sent; a name another model has is a 409 (names are unique)."""
        self.get(model_id)
        changes = update.model_dump(include=update.model_fields_set)
        holder = self.registry.model_named(update.name) if update.name else None
        if holder is not None and holder.id != model_id:
            raise Conflict(f"model {holder.id} is already named {update.name!r}; model names are unique")
        if changes.get("description") == "":
            changes["description"] = None
        self.registry.update_model(model_id, **changes)
        return self.get(model_id)

    async def register_checkpoint(self, job: JobRecord, step: int) -> ModelRecord:
        """Register the adapter of the job's checkpoint at `step` as a model (also while the job trains)."""
        request = TrainingRequest.model_construct(**job.request)  # as sent; defaults fill in the rest
        name = f"{model_name(request, job.job_id)}-step{step}"
        holder = self.registry.model_named(name)
        if holder is not None:
            raise Conflict(f"the checkpoint at step {step} of job {job.job_id!r} is registered already, as model "
                           f"{holder.id}")
        staging = await asyncio.to_thread(stage_checkpoint_model, self.storage, job.job_id, step)
        try:
            with self.storage.fs.open_input_stream(f"{staging}/{CARD_FILE}") as stream:
                card = ModelCard.model_validate_json(stream.read())
            return self.registry.add_model(
                place_files=files_mover(self.storage, staging),
                size_bytes=lambda shown: self.storage.size_bytes(self.storage.path_of(shown)),
                name=name, base_model=card.base_model, task=card.task, provider=request.provider,
                strategy=card.strategy, job_id=job.job_id,
                metrics={k: v for k, v in card.metrics.items() if v is not None},
                training_params=training_params(TrainingRequest.model_validate(card.request),
                                                card.options.get("optim", "")),
            )
        finally:
            await asyncio.to_thread(self.storage.remove_tree, staging)

    async def delete(self, model_id: int) -> None:
        model = self.get(model_id)
        # Row first: a crash between the two leaves stray files, never a model without files.
        self.registry.delete_model(model_id)
        await asyncio.to_thread(self.storage.remove_tree, self.storage.path_of(model.path))

    async def merge(self, model_id: int, run_merge: RunMerge) -> tuple[ModelRecord, str]:
        """Merge an adapter model into its base and register the result as a new model of kind merged.

        `run_merge` does the work elsewhere (a Ray task) into a hidden staging folder; the
        folder is moved into place inside the registry's transaction, as a trained model's is.
        Returns the new model and a sentence saying what was merged onto what.
        """
        source = self.get(model_id)
        if source.kind == "merged":
            raise Conflict(f"model {model_id} is already a merged model (a base with its adapter merged in); "
                           "merge an adapter model instead")
        staging = self.storage.merge_staging_dir()
        try:
            outcome = await run_merge(MergeSpec(
                adapter_location=self.storage.uri(self.storage.path_of(source.path)),
                output_location=self.storage.uri(staging), adapter_model_id=source.id,
                adapter_model_name=source.name, builtin_dir=str(self.storage.builtin_dir),
                trust_remote_code=self.trust_remote_code))
            self.get(model_id)  # deleted while it merged: its merge is not registered either
            model = self.registry.add_model(
                place_files=files_mover(self.storage, staging),
                size_bytes=lambda shown: self.storage.size_bytes(self.storage.path_of(shown)),
                name=self._free_name(f"{source.name}-merged"), kind="merged",
                description=f"Model {source.id} ({source.name}) merged into its base {source.base_model}.",
                **source.model_dump(include={"base_model", "task", "provider", "strategy", "training_params",
                                             "metrics", "job_id"}),
            )
        finally:
            await asyncio.to_thread(self.storage.remove_tree, staging)
        message = f"Merged model {source.id}'s adapter into {source.base_model}, saved in {outcome.dtype}"
        if outcome.quantization_dropped:
            message += (f"; the adapter trained on a {outcome.quantization_dropped} quantized base, so it was merged "
                        f"onto the base in its original precision ({outcome.dtype}), not the quantized weights")
        return model, message

    def _free_name(self, wanted: str) -> str:
        """`wanted`, or `wanted-2`, `-3`, ...: model names are unique."""
        name, suffix = wanted, 1
        while self.registry.model_named(name) is not None:
            suffix += 1
            name = f"{wanted}-{suffix}"
        return name
