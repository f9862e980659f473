"""The entry points Ray Train calls on each worker: pick the recipe, train, save.

`train_worker_huggingface` and `train_worker_unsloth` are what `TorchTrainer` runs
(one per provider environment); `run_training` is the job itself and runs without
Ray too, given any `JobLink` (tests use that to train in-process).

Nothing heavy is imported at the top: the runner pickles these functions by
reference, so importing this module must stay cheap there, and in the unsloth venv
unsloth must be imported before transformers, TRL and PEFT for its patches to apply.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge import catalog
from forge.errors import one_line
from forge.storage import folder_written_to
from forge.training.checkpoints import (
    CheckpointStore,
    NoCheckpoints,
    RayTrainCheckpoints,
    logged_history,
    read_meta,
)
from forge.training.manager_link import JobLink, ManagerLink, ProgressUpdate, WorkerEvent
from forge.training.spec import JobSpec
from forge.training.worker_log import captured_output

if TYPE_CHECKING:
    from forge.training.recipe import Recipe, RecipeResult


# What Ray Train sets in each worker for torchrun-style launchers.
_DISTRIBUTED_ENV = ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "RANK", "WORLD_SIZE")


def leave_single_process_unwrapped() -> None:
    """Let a one-worker job train its model as it is, not inside DistributedDataParallel.

    accelerate wraps the model in DDP whenever LOCAL_RANK is set, even for a world of
    one, where there is nothing to synchronise: its per-step hooks cost about 12% of a
    small model's throughput (docs/benchmarks.md). Ray Train's process group stays up.
    """
    for name in _DISTRIBUTED_ENV:
        os.environ.pop(name, None)


def train_worker_huggingface(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train's entry on each worker of a huggingface job."""
    return train_worker(config)


def train_worker_unsloth(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train's entry on each worker of an unsloth job (in the unsloth venv)."""
    import unsloth  # noqa: F401  (first, before anything imports transformers)

    return train_worker(config)


def train_worker(config: dict[str, Any]) -> dict[str, Any]:
    """One worker's run of the job; `config["spec"]` is the `JobSpec`, as the runner holds it."""
    import ray.train

    spec: JobSpec = config["spec"]
    context = ray.train.get_context()
    if context.get_world_size() == 1:
        leave_single_process_unwrapped()
    link = ManagerLink(spec)
    rank = context.get_world_rank()
    try:
        with tempfile.TemporaryDirectory(prefix=f"{spec.job_id}-resume-") as download, \
                kept_output(spec, rank, Path(download)):
            # After a worker-group restart (FailureConfig) or an explicit resume, Ray Train
            # hands every rank the run's latest checkpoint.
            return run_training(spec, link, is_main=rank == 0,
                                checkpoints=RayTrainCheckpoints(Path(download)), local_rank=context.get_local_rank())
    except Exception as error:
        # The manager fails the job at once; only lost processes make Ray Train restart the group.
        link.event(WorkerEvent(kind="error", data={"message": one_line(error)}))
        raise


def kept_output(spec: JobSpec, rank: int, scratch: Path) -> AbstractContextManager[None]:
    """The worker's output copied into the job's log folder, when the job keeps one."""
    return captured_output(spec.logs_dir, rank, scratch) if spec.logs_dir else nullcontext()


def pick_recipe(spec: JobSpec) -> Recipe:
    """The recipe the catalog names for the job (its encoder-decoder recipe when the base is one)."""
    from forge.modeling.loading import is_encoder_decoder
    from forge.training.recipes import RECIPES

    request = spec.request
    row = catalog.find(request.task, request.strategy, request.provider)
    if row is None:
        raise ValueError(f"nothing trains task {request.task!r} with strategy {request.strategy!r} "
                         f"and provider {request.provider!r}")
    if row.encoder_decoder_recipe and is_encoder_decoder(
        spec.model_source, Path(spec.builtin_dir), trust_remote_code=spec.trust_remote_code
    ):
        return RECIPES[row.encoder_decoder_recipe]
    return RECIPES[row.recipe]


def run_training(spec: JobSpec, link: JobLink, *, is_main: bool,
                 checkpoints: CheckpointStore | None = None, local_rank: int = 0) -> dict[str, Any]:
    from forge.training.recipe import RecipeContext

    recipe = pick_recipe(spec)
    checkpoints = checkpoints or NoCheckpoints()
    if is_main:
        latest = checkpoints.latest()
        beginning: dict[str, Any] = {"resumed_step": None}
        if latest:
            beginning = {"resumed_step": read_meta(latest)["job_step"], "history": logged_history(latest)}
        link.event(WorkerEvent(kind="workers_started", data=beginning))
    with tempfile.TemporaryDirectory(prefix=f"{spec.job_id}-") as scratch:
        started = time.monotonic()
        context = RecipeContext(spec=spec, link=link, is_main=is_main, scratch=Path(scratch), checkpoints=checkpoints,
                                local_rank=local_rank)
        try:
            result = recipe(context)
        finally:
            link.flush()
        if result.stopped:
            return {"stopped": True}
        metrics = {**result.metrics, "train_runtime_s": round(time.monotonic() - started, 3),
                   "train_loop_s": round(context.train_seconds, 3)}
        if is_main:
            if metrics.get("eval_loss") is not None:
                link.progress(ProgressUpdate(eval_loss=metrics["eval_loss"]))
                link.flush()
            save_model(result, spec, metrics, Path(scratch))
    return {"stopped": False, "metrics": metrics}


def save_model(result: RecipeResult, spec: JobSpec, metrics: dict[str, Any], scratch: Path) -> None:
    """Write adapter, tokenizer and model card to spec.output_dir (a path or a storage URI), atomically."""
    # Written whole or not at all (the manager registers the folder once it exists).
    with folder_written_to(spec.output_dir, scratch) as partial:
        result.model.save_pretrained(partial)
        result.tokenizer.save_pretrained(partial)
        for name, folder in result.extra_dirs.items():
            shutil.copytree(folder, partial / name)
        spec.model_card(result.model_kind, metrics).write(partial)
