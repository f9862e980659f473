"""The job specification a training run is a pure function of."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from forge.schemas import TrainingRequest
from forge.training.options import ResolvedOptions


class JobSpec(BaseModel):
    job_id: str
    request: TrainingRequest
    options: ResolvedOptions
    model_source: str  # a built-in name, a local directory or a Hub id, already checked by the manager
    dataset_path: str
    dataset_format: str  # forge.datasets.FORMATS (pairs, chat, preference, qa, text): how the worker reads the rows
    output_dir: str  # rank 0 writes the final adapter here; the manager then registers it
    builtin_dir: str
    runs_dir: str
    manager_name: str
    namespace: str
    trust_remote_code: bool = False
    # Worker-group restarts Ray Train may make (each resumes from the latest checkpoint).
    max_failures: int = 0
    # Ray resources per worker beyond its CPU/GPU (FORGE_WORKER_RESOURCES).
    worker_resources: dict[str, float] = {}

    def training_params(self) -> dict[str, Any]:
        """The hyperparameters a model's registry entry shows (`num_epochs`, `batch_size`, ... as used)."""
        req = self.request
        return {
            "num_epochs": req.num_train_epochs,
            "batch_size": req.per_device_train_batch_size,
            "learning_rate": req.learning_rate,
            "gradient_accumulation_steps": req.gradient_accumulation_steps,
            "max_steps": req.max_steps,
            "lora_r": req.lora_r,
            "lora_alpha": req.lora_alpha,
            "lora_dropout": req.lora_dropout,
            "optim": self.options.optim,
            "lr_scheduler_type": req.lr_scheduler_type,
            "warmup_ratio": req.warmup_ratio,
            "max_seq_length": req.max_seq_length,
            "eval_split": req.eval_split,
            "num_workers": req.num_workers,
            "dataset": req.dataset,
        }
