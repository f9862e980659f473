"""The function each Ray Train worker runs: pick the recipe, train, save.

`train_worker` is what `TorchTrainer` calls; `run_training` is the job itself and
runs without Ray too, given any `JobLink` (tests use that to train in-process).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from forge.errors import one_line
from forge.storage import is_uri, publish_folder
from forge.training.callbacks import JobLink
from forge.training.checkpoints import (
    CheckpointStore,
    NoCheckpoints,
    RayTrainCheckpoints,
    read_meta,
)
from forge.training.common import Recipe, RecipeContext, RecipeResult
from forge.training.spec import JobSpec


class ManagerLink:
    """Reports to the TrainingManager actor; never blocks training on it."""

    # How often rank 0 asks whether the job should stop. The answer is read at a later step, never
    # waited for: a round trip to the manager at every step cost a small model a fifth of its
    # throughput (docs/benchmarks.md). A stop lands this long plus a step or two after the request.
    STOP_POLL_S = 0.25
    # Progress goes out in batches, one message at most this often: each actor call costs the
    # training thread a millisecond or two, a tenth of a small model's step. Users see every
    # step, this much later.
    REPORT_EVERY_S = 0.2

    def __init__(self, spec: JobSpec) -> None:
        import ray

        self._ray = ray
        self._job_id = spec.job_id
        self._manager = ray.get_actor(spec.manager_name, namespace=spec.namespace)
        self._stop = False
        self._stop_reply: Any = None  # the manager's answer, still on its way
        self._asked_at = float("-inf")
        self._unsent: list[dict[str, Any]] = []
        self._sent_at = float("-inf")

    def progress(self, update: dict[str, Any]) -> None:
        self._unsent.append(update)
        if time.monotonic() - self._sent_at >= self.REPORT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if not self._unsent:
            return
        updates, self._unsent = self._unsent, []
        self._sent_at = time.monotonic()
        try:
            self._manager.report_progress.remote(self._job_id, updates)  # fire-and-forget
        except Exception:  # a restarting manager must not kill the run
            pass

    def stop_requested(self) -> bool:
        if self._stop:
            return True
        try:
            if self._stop_reply is not None and self._ray.wait([self._stop_reply], timeout=0)[0]:
                reply, self._stop_reply = self._stop_reply, None
                self._stop = bool(self._ray.get(reply))
            if self._stop_reply is None and time.monotonic() - self._asked_at >= self.STOP_POLL_S:
                self._stop_reply = self._manager.stop_requested.remote(self._job_id)
                self._asked_at = time.monotonic()
        except Exception:  # a restarting manager must not kill the run
            self._stop_reply = None
        return self._stop

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.flush()  # the steps before the event reach the manager before it
        try:
            self._manager.record_worker_event.remote(self._job_id, kind, data)  # fire-and-forget
        except Exception:
            pass


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


def train_worker(config: dict[str, Any]) -> dict[str, Any]:
    import ray.train

    spec = JobSpec.model_validate(config)
    context = ray.train.get_context()
    if context.get_world_size() == 1:
        leave_single_process_unwrapped()
    link = ManagerLink(spec)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{spec.job_id}-resume-") as download:
            # After a worker-group restart (FailureConfig) or an explicit resume, Ray Train
            # hands every rank the run's latest checkpoint.
            return run_training(spec, link, is_main=context.get_world_rank() == 0,
                                checkpoints=RayTrainCheckpoints(Path(download)))
    except Exception as error:
        # The manager fails the job at once; only lost processes make Ray Train restart the group.
        link.event("error", {"message": one_line(error)})
        raise


def pick_recipe(spec: JobSpec) -> Recipe:
    """The recipe for the job's task and strategy (qlora is sft on a quantized base)."""
    from forge.training.dpo import train_dpo
    from forge.training.extractive_qa import train_extractive_qa
    from forge.training.providers import is_encoder_decoder
    from forge.training.rlhf import train_rlhf
    from forge.training.seq2seq import train_seq2seq
    from forge.training.sft import train_causal_sft

    task, strategy = spec.request.task, spec.request.strategy
    if strategy == "dpo":
        return train_dpo
    if strategy == "rlhf":
        return train_rlhf
    if task == "extractive-question-answering":
        return train_extractive_qa
    if task == "summarization" and is_encoder_decoder(
        spec.model_source, Path(spec.builtin_dir), trust_remote_code=spec.trust_remote_code
    ):
        return train_seq2seq
    return train_causal_sft


def run_training(spec: JobSpec, link: JobLink, *, is_main: bool,
                 checkpoints: CheckpointStore | None = None) -> dict[str, Any]:
    recipe = pick_recipe(spec)
    checkpoints = checkpoints or NoCheckpoints()
    if is_main:
        latest = checkpoints.latest()
        link.event("workers_started", {"resumed_step": read_meta(latest)["job_step"] if latest else None})
    with tempfile.TemporaryDirectory(prefix=f"{spec.job_id}-") as scratch:
        started = time.monotonic()
        context = RecipeContext(spec=spec, link=link, is_main=is_main, scratch=Path(scratch), checkpoints=checkpoints)
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
                link.progress({"eval_loss": metrics["eval_loss"]})
                link.flush()
            save_model(result, spec, metrics, Path(scratch))
    return {"stopped": False, "metrics": metrics}


def save_model(result: RecipeResult, spec: JobSpec, metrics: dict[str, Any], scratch: Path) -> None:
    """Write adapter, tokenizer and forge.json to spec.output_dir (a path or a storage URI), atomically."""
    import sys

    import peft
    import transformers
    import trl

    remote = is_uri(spec.output_dir)
    # On object storage the folder is written locally first, then copied up whole.
    final = scratch / "model" if remote else Path(spec.output_dir)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result.model.save_pretrained(partial)
    result.tokenizer.save_pretrained(partial)
    for name, folder in result.extra_dirs.items():
        shutil.copytree(folder, partial / name)
    meta = {
        "job_id": spec.job_id,
        "task": spec.request.task,
        "strategy": spec.request.strategy,
        "model_kind": result.model_kind,
        "base_model": spec.request.model_name,
        "base_model_source": spec.model_source,
        "request": spec.request.model_dump(mode="json"),
        "options": spec.options.model_dump(mode="json"),
        "metrics": metrics,
        "versions": {"transformers": transformers.__version__, "trl": trl.__version__, "peft": peft.__version__,
                     "unsloth": getattr(sys.modules.get("unsloth"), "__version__", None)},
        # Which libraries this training process had loaded: provider huggingface never loads unsloth.
        "unsloth_imported": "unsloth" in sys.modules,
    }
    (partial / "forge.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    if remote:
        publish_folder(final, spec.output_dir)
