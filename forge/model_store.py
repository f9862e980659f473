"""The registered models: read, renamed and described, deleted (row first, then files).

A plain class over the registry and the storage, used by the TrainingManager (its
only writer); no Ray. Registering a model is the tracker's, at the end of a job.
"""

from __future__ import annotations

import asyncio

from forge.errors import Conflict, NotFound
from forge.registry import ModelRecord, Registry
from forge.schemas import ModelUpdate
from forge.storage import Storage


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

    async def delete(self, model_id: int) -> None:
        model = self.get(model_id)
        # Row first: a crash between the two leaves stray files, never a model without files.
        self.registry.delete_model(model_id)
        await asyncio.to_thread(self.storage.remove_tree, self.storage.path_of(model.path))
