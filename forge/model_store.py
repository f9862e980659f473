"""The registered models: read, renamed and described, deleted (row first, then files).

A plain class over the registry and the storage, used by the TrainingManager (its
only writer); no Ray. Registering a finished job's model is the tracker's, at the end
of the job; registering one of a job's checkpoints is this store's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from forge.errors import Conflict, NotFound
from forge.jobs.job_checkpoints import stage_checkpoint_model
from forge.modeling.model_card import CARD_FILE, ModelCard
from forge.registry import JobRecord, ModelRecord, Registry
from forge.schemas import ModelUpdate, TrainingRequest
from forge.storage import Storage
from forge.training.spec import training_params


def model_name(base_model: str, strategy: str, job_id: str) -> str:
    """The name a job's model is registered under (users may rename it)."""
    return f"{base_model.rstrip('/').split('/')[-1]}-{strategy}-{job_id.removeprefix('train_')}"


def files_mover(storage: Storage, staging: str) -> Callable[[int], str]:
    """The registry's `place_files`: move staged model files into the new model's folder; returns it as shown.

    It runs inside the registry's transaction, on the manager's loop: a rename on a local
    or mounted storage; a copy of an adapter's few files on an object store.
    """
    def place_files(model_id: int) -> str:
        target = storage.model_dir(model_id)
        storage.remove_tree(target)
        storage.move(staging, target)
        return storage.display(target)
    return place_files


class ModelStore:
    def __init__(self, registry: Registry, storage: Storage) -> None:
        self.registry = registry
        self.storage = storage

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
        name = f"{model_name(request.model_name, request.strategy, job.job_id)}-step{step}"
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
