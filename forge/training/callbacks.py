"""Progress reporting and cooperative stop, as a transformers TrainerCallback."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from forge.modeling.model_card import ModelCard
from forge.schemas import utc_iso
from forge.training.checkpoints import (
    CHECKPOINT_META,
    EVAL_LOG_KEYS,
    TRAIN_LOG_KEYS,
    TRAINER_FOLDER,
    CheckpointStore,
    checkpoint_name,
    finite_logs,
    save_every,
)
from forge.training.manager_link import JobLink, ProgressUpdate


def agree_on_stop(wanted: bool) -> bool:
    """Rank 0's stop decision, on every rank.

    Under DDP every rank must leave the loop at the same step, or the next all-reduce
    hangs: rank 0 decides and broadcasts. The flag lives on the process group's device
    (NCCL takes CUDA tensors only). A one-worker job broadcasts too: the call costs
    nothing there, and it is the same call a multi-GPU job makes, so it is tested.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return wanted
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([1 if wanted else 0], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


class ProgressCallback(TrainerCallback):
    """Rank 0 reports each step and log; every rank stops at the same step on request."""

    def __init__(self, link: JobLink, *, is_main: bool, step_offset: int = 0, total_steps: int | None = None) -> None:
        # A multi-stage job (rlhf) numbers its steps across stages: stage two starts
        # at `step_offset`, and `total_steps` covers every stage.
        self.link = link
        self.is_main = is_main
        self.step_offset = step_offset
        self.total_steps = total_steps
        self.stopped = False

    def _steps(self, state) -> dict[str, Any]:
        total = self.total_steps or self.step_offset + state.max_steps
        return {"current_step": self.step_offset + state.global_step, "total_steps": total}

    def on_train_begin(self, args, state, control, **kwargs):
        if self.is_main:
            self.link.progress(ProgressUpdate(**self._steps(state)))

    def on_step_end(self, args, state, control, **kwargs):
        # A step about to be logged is reported once, by on_log, with its loss: one message
        # per step rather than two (each costs the training thread and the manager a little).
        if self.is_main and not control.should_log:
            self.link.progress(ProgressUpdate(**self._steps(state), current_epoch=state.epoch or 0))
        if self._agree_on_stop():
            self.stopped = True
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.is_main or not logs:
            return
        update: dict[str, Any] = {**self._steps(state), "current_epoch": state.epoch or 0}
        update.update(finite_logs(logs, TRAIN_LOG_KEYS + EVAL_LOG_KEYS))
        # When this step's log was written (the worker's clock): with num_tokens (TRL's running
        # count of train tokens, all ranks together) the history gives the job's tokens/s.
        update["logged_at"] = utc_iso()
        self.link.progress(ProgressUpdate(**update))

    def _agree_on_stop(self) -> bool:
        return agree_on_stop(self.link.stop_requested() if self.is_main else False)


def losses_at(log_history: list[dict[str, Any]], step: int) -> dict[str, float]:
    """The training loss logged at `step` (or the last before it), and the evaluation loss at `step` if any."""
    losses: dict[str, float] = {}
    for entry in log_history:
        if entry.get("step", 0) > step:
            break
        if "loss" in entry:
            losses["train_loss"] = float(entry["loss"])
        if "eval_loss" in entry and entry.get("step") == step:
            losses["eval_loss"] = float(entry["eval_loss"])
    return losses


class CheckpointCallback(TrainerCallback):
    """Asks the trainer for a checkpoint every few steps and hands each one to the store.

    `stage` names the trainer within a multi-stage recipe; `step_offset` turns the
    trainer's step into the job's; `extras` (folder name → path) travel in every
    checkpoint, so a recipe can pick up at its later stage.
    """

    def __init__(self, store: CheckpointStore, *, stage: str, is_main: bool, save_steps: Optional[int],
                 step_offset: int = 0, extras: Optional[dict[str, Path]] = None,
                 on_saved: Optional[Callable[[int], None]] = None,
                 card: Optional[Callable[[dict[str, Any]], ModelCard]] = None) -> None:
        """`card(metrics)`: the model card of the stage's model, when it is the job's model (registrable)."""
        self.store = store
        self.card = card
        self.stage = stage
        self.is_main = is_main
        self.save_steps = save_steps
        self.step_offset = step_offset
        self.extras = extras or {}
        self.on_saved = on_saved
        self._every = 1

    def on_train_begin(self, args, state, control, **kwargs):
        self._every = save_every(state.max_steps, int(args.num_train_epochs), self.save_steps)

    def on_step_end(self, args, state, control, **kwargs):
        # No checkpoint at the very last step: the final adapter follows at once.
        if state.global_step % self._every == 0 and state.global_step < state.max_steps:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        trainer_checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        job_step = self.step_offset + state.global_step
        name = checkpoint_name(self.stage, job_step)
        meta = {"stage": self.stage, "step": state.global_step, "job_step": job_step}
        losses = losses_at(state.log_history, state.global_step)
        with tempfile.TemporaryDirectory(prefix="forge-ckpt-") as bundle_dir:
            bundle = None
            if self.is_main:
                bundle = Path(bundle_dir)
                shutil.copytree(trainer_checkpoint, bundle / TRAINER_FOLDER)
                for folder_name, folder in self.extras.items():
                    shutil.copytree(folder, bundle / folder_name)
                (bundle / CHECKPOINT_META).write_text(json.dumps(meta))
                if self.card is not None:  # what registering this checkpoint as a model needs
                    self.card({"step": job_step, **losses}).write(bundle)
            # What the job's checkpoint list shows (Ray Train keeps it with the checkpoint).
            self.store.save(bundle, name, {"job_step": job_step, "stage": self.stage, "saved_at": utc_iso(),
                                           "registrable": self.card is not None, **losses})
        # The store has its copy; the scratch folder only needs the next one.
        shutil.rmtree(trainer_checkpoint, ignore_errors=True)
        if self.is_main and self.on_saved is not None:
            self.on_saved(job_step)
