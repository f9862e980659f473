"""Figures every recipe reports from its trainer's log: first and final loss, eval loss, perplexity."""

from __future__ import annotations

import math
from typing import Any, Optional


def logged(trainer: Any, key: str) -> list[float]:
    return [entry[key] for entry in trainer.state.log_history if key in entry]


def loss_metrics(trainer: Any) -> dict[str, Any]:
    losses = logged(trainer, "loss")
    return {
        "final_loss": losses[-1] if losses else None,
        "first_loss": losses[0] if losses else None,
        "train_steps": trainer.state.global_step,
    }


def loss_and_eval_metrics(trainer: Any, *, has_eval: bool) -> dict[str, Any]:
    """Training-loss figures plus eval_loss on the held-out split (None without one)."""
    return {**loss_metrics(trainer), "eval_loss": trainer.evaluate()["eval_loss"] if has_eval else None}


def perplexity(eval_loss: Optional[float]) -> Optional[float]:
    if eval_loss is None:
        return None
    return math.exp(eval_loss) if eval_loss < 50 else math.inf
