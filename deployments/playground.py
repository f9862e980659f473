"""The Playground deployment: autoscaled replicas that generate with trained models.

Serve model multiplexing, keyed by model id, routes requests for a model to a
replica that already holds it. Within a replica, forge.playground.adapter_cache keeps one
base model per base source and loads each trained model onto it as a LoRA
adapter, so a second model of a loaded base costs an adapter load, not a base load,
and concurrent requests for the models of one base are generated together in one batch
(forge.playground.batching): a replica takes up to MAX_ONGOING_REQUESTS at once, two
full batches (the one running and the next, gathering).
torch and transformers are imported inside the replica, in the background from its start.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Optional

import ray
from ray import serve

from forge.openai_schemas import CompletionEnd, CompletionJob
from forge.playground.batching import MAX_ROWS
from forge.schemas import GenerateRequest
from forge.settings import Settings
from forge.storage import Storage

MAX_MODELS_PER_REPLICA = 4
MAX_BASES_PER_REPLICA = 2
MAX_ONGOING_REQUESTS = 2 * MAX_ROWS


def _prepare_inference() -> None:
    # The first request would otherwise pay for these imports (seconds).
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401


def _compute_on(threads: int) -> None:
    """Have torch compute on `threads` threads in the calling thread.

    Ray sets OMP_NUM_THREADS=1 in an actor that reserves no CPU (the default here), and
    `torch.set_num_threads` reaches only the thread that calls it (OpenMP's setting is per
    thread; measured in a Ray actor: another thread ran a matmul loop as slowly as with one
    thread, while reporting two). So every thread that generates calls it first: each
    base's batch thread and each request thread.
    """
    import torch

    torch.set_num_threads(threads)


def _generation_threads() -> int:
    import ray

    reserved = ray.get_runtime_context().get_assigned_resources().get("CPU") or 0
    return max(1, int(reserved)) if reserved >= 1 else (os.cpu_count() or 1)


# Options: deployments.app.PLAYGROUND_DEPLOYMENT_DEFAULTS, applied by the app builder.
@serve.deployment
class Playground:
    def __init__(self, settings: Settings) -> None:
        from forge.modeling.placement import Accelerator, place
        from forge.playground.adapter_cache import AdapterCache

        self.settings = settings
        self.storage = Storage(settings)
        # On a GPU when Ray gave this replica one (or a fraction of one: playground_num_gpus).
        given_gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
        placement = place(Accelerator.detect(), wants_gpu=bool(given_gpus))
        compute_setup = partial(_compute_on, _generation_threads())
        self.models = AdapterCache(self.storage.builtin_dir, trust_remote_code=settings.trust_remote_code,
                                   max_adapters=MAX_MODELS_PER_REPLICA, max_bases=MAX_BASES_PER_REPLICA,
                                   placement=placement, thread_setup=compute_setup)
        self._prepared = threading.Thread(target=_prepare_inference, daemon=True)
        self._prepared.start()
        # A request waits for its batch on a thread of its own: asyncio's default pool (CPUs + 4
        # threads) would cap a batch at a handful of requests.
        self._requests = ThreadPoolExecutor(max_workers=MAX_ONGOING_REQUESTS, thread_name_prefix="request",
                                            initializer=compute_setup)

    def _model_dir(self, model_id: str) -> Path:
        """The trained model's folder, local to this replica.

        Any replica, on any node, loads any model from shared storage: the folder
        itself on a mounted path, a fresh local copy from an object store.
        """
        return self.storage.local_copy(self.storage.model_dir(int(model_id)), f"model-{model_id}")

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_id: str) -> str:
        # Serve keeps this replica's list of model ids for routing; the adapter cache holds the models.
        # Loading waits for the background imports: transformers' lazy module is not safe to import
        # from two threads at once.
        await asyncio.to_thread(self._prepared.join)
        await asyncio.to_thread(self.models.load, model_id, lambda: self._model_dir(model_id))
        return model_id

    async def generate(self, request: GenerateRequest) -> dict[str, Any]:
        model_id = await self.get_model(serve.get_multiplexed_model_id())
        return await asyncio.get_running_loop().run_in_executor(
            self._requests, self.models.respond, model_id, request, lambda: self._model_dir(model_id))

    async def complete(self, job: CompletionJob) -> AsyncIterator[dict[str, Any]]:
        """A completion as it is generated: {"text": piece} items, then its CompletionEnd (as a dict).

        Called through a streaming handle (`handle.options(stream=True)`); when the caller stops
        reading (the client went away), the generation ends at the next token.
        """
        from forge.playground.completions import complete

        model_id = await self.get_model(serve.get_multiplexed_model_id())
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Optional[dict[str, Any]]] = asyncio.Queue()
        halt = threading.Event()

        def emit(text: str) -> None:  # called from the generating thread
            loop.call_soon_threadsafe(pieces.put_nowait, {"text": text})

        generating = loop.run_in_executor(self._requests, partial(
            self.models.answer, model_id, lambda: self._model_dir(model_id),
            lambda loaded: complete(loaded, job, emit, halt), use_base=job.use_base))
        # Scheduled after every emit of the thread, so it arrives after the last piece.
        generating.add_done_callback(lambda _: pieces.put_nowait(None))
        try:
            while (item := await pieces.get()) is not None:
                yield item
            end: CompletionEnd = await generating
            yield end.model_dump()
        finally:
            halt.set()

    async def loaded_models(self) -> dict[str, list[str]]:
        """Base source -> ids of the trained models this replica holds on it."""
        return self.models.loaded()

    async def batch_sizes(self) -> dict[str, Any]:
        """This replica's id and its batches: base -> batch size -> how many of that size it generated."""
        return {"replica": serve.get_replica_context().replica_id.unique_id, "batches": self.models.batch_sizes()}
