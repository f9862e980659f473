"""Progress reporting and cooperative stop, as a transformers TrainerCallback."""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
import torch.distributed as dist
from transformers import TrainerCallback


class JobLink(Protocol):
    """The worker's line to whoever owns the job (the TrainingManager under Ray)."""

    def progress(self, update: dict[str, Any]) -> None: ...

    def stop_requested(self) -> bool: ...


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
            self.link.progress(self._steps(state))

    def on_step_end(self, args, state, control, **kwargs):
        if self.is_main:
            self.link.progress({**self._steps(state), "current_epoch": state.epoch or 0})
        if self._agree_on_stop():
            self.stopped = True
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.is_main or not logs:
            return
        update: dict[str, Any] = {**self._steps(state), "current_epoch": state.epoch or 0}
        for key in ("loss", "learning_rate", "eval_loss", "grad_norm"):
            value = logs.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                update[key] = float(value)
        self.link.progress(update)

    def _agree_on_stop(self) -> bool:
        # Under DDP every rank must leave the loop at the same step, or the next
        # all-reduce hangs: rank 0 decides and broadcasts its decision.
        wanted = self.link.stop_requested() if self.is_main else False
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([1 if wanted else 0])
            dist.broadcast(flag, src=0)
            wanted = bool(flag.item())
        return wanted
