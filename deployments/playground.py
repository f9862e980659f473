"""The Playground deployment: autoscaled replicas that generate with trained models.

Each replica keeps a small LRU of loaded models through Serve model multiplexing,
keyed by model id, so requests for a model go to a replica that already holds it.
torch and transformers are imported on first load, inside the replica.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from forge.settings import Settings
from forge.storage import Storage

MAX_MODELS_PER_REPLICA = 4


@serve.deployment(
    ray_actor_options={"num_cpus": 0},
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2},
)
class Playground:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = Storage(settings)

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_id: str):
        from forge.inference import load_trained_model

        def load():
            # Any replica, on any node, loads any model: from shared storage, through a
            # local copy when the storage is an object store.
            folder = self.storage.local_copy(self.storage.model_dir(int(model_id)), f"model-{model_id}")
            return load_trained_model(folder, self.storage.builtin_dir,
                                      trust_remote_code=self.settings.trust_remote_code)

        return await asyncio.to_thread(load)

    async def generate(self, request: dict[str, Any]) -> dict[str, Any]:
        from forge.inference import respond

        loaded = await self.get_model(serve.get_multiplexed_model_id())
        return await asyncio.to_thread(respond, loaded, request)
