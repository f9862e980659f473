"""The job specification a training run is a pure function of."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from forge.modeling.model_card import ModelCard
from forge.schemas import TrainingRequest
from forge.training.options import ResolvedOptions


class JobSpec(BaseModel):
    job_id: str
    request: TrainingRequest
    options: ResolvedOptions
    model_source: str  # a built-in name, a local directory or a Hub id, already checked by the manager
    dataset_path: str
    dataset_format: str  # forge.datasets.FORMATS (pairs, chat, preference, qa, text): how the worker reads the rows
    eval_dataset_path: Optional[str] = None  # rows that evaluate instead of a hold-out (same format)
    output_dir: str  # rank 0 writes the final adapter here; the manager then registers it
    builtin_dir: str
    runs_dir: str
    # Where each worker's output goes (forge.training.worker_log); None: not kept (in-process runs).
    logs_dir: Optional[str] = None
    manager_name: str
    namespace: str
    trust_remote_code: bool = False
    # Worker-group restarts Ray Train may make (each resumes from the latest checkpoint).
    max_failures: int = 0
    # Ray resources per worker beyond its CPU/GPU (FORGE_WORKER_RESOURCES).
    worker_resources: dict[str, float] = {}

    def training_params(self) -> dict[str, Any]:
        """The hyperparameters a model's registry entry shows (`num_epochs`, `batch_size`, ... as used)."""
        return training_params(self.request, self.options.optim)

    def model_card(self, model_kind: str, metrics: dict[str, Any]) -> ModelCard:
        """The card of a model this job trained (its final adapter, or a checkpoint's), for this process."""
        import sys

        import peft
        import transformers
        import trl

        return ModelCard(
            job_id=self.job_id,
            task=self.request.task,
            strategy=self.request.strategy,
            model_kind=model_kind,
            base_model=self.request.model_name,
            base_model_source=self.model_source,
            request=self.request.model_dump(mode="json"),
            options=self.options.model_dump(mode="json"),
            metrics=metrics,
            versions={"transformers": transformers.__version__, "trl": trl.__version__, "peft": peft.__version__,
                      "unsloth": getattr(sys.modules.get("unsloth"), "__version__", None)},
            # Which libraries this training process had loaded: provider huggingface never loads unsloth.
            unsloth_imported="unsloth" in sys.modules,
        )


def training_params(request: TrainingRequest, optim: str) -> dict[str, Any]:
    """What a model's registry entry shows of how it was trained; `optim` as the workers used it."""
    return {
        "num_epochs": request.num_train_epochs,
        "batch_size": request.per_device_train_batch_size,
        "learning_rate": request.learning_rate,
        "gradient_accumulation_steps": request.gradient_accumulation_steps,
        "max_steps": request.max_steps,
        "lora_r": request.lora_r,
        "lora_alpha": request.lora_alpha,
        "lora_dropout": request.lora_dropout,
        "optim": optim,
        "lr_scheduler_type": request.lr_scheduler_type,
        "warmup_ratio": request.warmup_ratio,
        "max_seq_length": request.max_seq_length,
        "eval_split": request.eval_split,
        "num_workers": request.num_workers,
        "dataset": request.dataset,
    }
