"""What every training recipe shares: the context it runs in, trainer arguments, LoRA, metrics.

A recipe (one module per kind of training) gets a `RecipeContext`, builds its
trainer(s) from the library's own config classes, trains through
`RecipeContext.train`, and returns a `RecipeResult`; the worker saves it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from forge.datasets import read_examples
from forge.storage import local_file
from forge.training.callbacks import CheckpointCallback, JobLink, ProgressCallback
from forge.training.checkpoints import TRAINER_FOLDER, CheckpointStore, NoCheckpoints, read_meta
from forge.training.spec import JobSpec

# Example splits and sampling are seeded so a job is reproducible.
SEED = 42


@dataclass
class RecipeContext:
    spec: JobSpec
    link: JobLink
    is_main: bool
    scratch: Path
    checkpoints: CheckpointStore = field(default_factory=NoCheckpoints)
    # Seconds spent inside trainer.train() (all stages), without loading and evaluation.
    train_seconds: float = 0.0

    @property
    def request(self):
        return self.spec.request

    @property
    def world_size(self) -> int:
        import torch.distributed as dist

        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    @property
    def builtin_dir(self) -> Path:
        return Path(self.spec.builtin_dir)

    def tokenizer(self):
        from forge.training.providers import load_tokenizer

        return load_tokenizer(self.spec.model_source, self.builtin_dir, trust_remote_code=self.spec.trust_remote_code)

    def base_model(self, kind: str, *, keep_full_precision: tuple[str, ...] = (), **model_kwargs: Any):
        """The job's base model of `kind`, quantized when the strategy is qlora."""
        from forge.training.providers import load_model, quantization_config

        return load_model(
            kind, self.spec.model_source, self.builtin_dir, trust_remote_code=self.spec.trust_remote_code,
            quantization=quantization_config(self.request, self.spec.options, keep_full_precision=keep_full_precision),
            **model_kwargs,
        )

    def trainable_causal_lm(self) -> tuple[Any, Any, Any]:
        """(model, tokenizer, peft_config) for a causal-LM trainer, by provider.

        huggingface: the (quantized) base plus a LoRA config for the trainer to apply;
        unsloth: FastLanguageModel's model, already LoRA-wrapped, so no config.
        """
        if self.request.provider == "unsloth":
            from forge.training.unsloth_worker import load_for_training

            return (*load_for_training(self), None)
        return self.base_model("causal-lm"), self.tokenizer(), lora_config(self, "CAUSAL_LM")

    def examples(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Canonical rows of the dataset, split into (train, eval) by `eval_split`."""
        # On shared object storage the dataset is copied next to the worker first.
        path = local_file(self.spec.dataset_path, self.scratch / "dataset")
        rows = list(read_examples(path, self.spec.dataset_format))
        random.Random(SEED).shuffle(rows)
        eval_size = int(len(rows) * self.request.eval_split)
        return rows[eval_size:], rows[:eval_size]

    def resumed_stage(self) -> Optional[str]:
        """The stage the job's latest checkpoint belongs to (None on a fresh start)."""
        latest = self.checkpoints.latest()
        return read_meta(latest)["stage"] if latest is not None else None

    def resumed_folder(self, name: str) -> Path:
        """A folder a recipe put into its checkpoints (`extras`), from the latest checkpoint."""
        latest = self.checkpoints.latest()
        assert latest is not None, "no checkpoint to resume from"
        return latest / name

    def train(self, trainer: Any, *, stage: str = "train", step_offset: int = 0, total_steps: Optional[int] = None,
              extras: Optional[dict[str, Path]] = None) -> bool:
        """Run `trainer` with progress, checkpoints and cooperative stop; True when stopped early.

        The trainer resumes from the job's latest checkpoint when that checkpoint
        belongs to this `stage`; `extras` are folders every checkpoint carries.
        """
        from transformers.trainer_callback import PrinterCallback

        progress = ProgressCallback(self.link, is_main=self.is_main, step_offset=step_offset,
                                    total_steps=total_steps)
        trainer.add_callback(progress)
        trainer.add_callback(CheckpointCallback(
            self.checkpoints, stage=stage, is_main=self.is_main, save_steps=self.request.save_steps,
            step_offset=step_offset, extras=extras,
            on_saved=lambda job_step: self.link.event("checkpoint", {"step": job_step, "stage": stage}),
        ))
        # Progress goes to the manager; the console printer only adds log noise.
        trainer.remove_callback(PrinterCallback)
        resume_from = None
        if self.resumed_stage() == stage:
            resume_from = str(self.checkpoints.latest() / TRAINER_FOLDER)
        output = trainer.train(resume_from_checkpoint=resume_from)
        self.train_seconds += float(output.metrics.get("train_runtime", 0.0))
        return progress.stopped


@dataclass
class RecipeResult:
    """What a recipe hands back: the model to save (PEFT-wrapped), its tokenizer and metrics."""

    model: Any = None
    tokenizer: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)
    model_kind: str = "causal-lm"
    stopped: bool = False
    # Folders copied next to the adapter, e.g. the reward model of an rlhf job.
    extra_dirs: dict[str, Path] = field(default_factory=dict)


Recipe = Callable[[RecipeContext], RecipeResult]


def trainer_arguments(
    ctx: RecipeContext, *, has_eval: bool, groups_by_length: bool = False, **overrides: Any
) -> dict[str, Any]:
    """Keyword arguments for any TrainingArguments subclass (TRL's configs included).

    `groups_by_length`: the trainer's examples carry `input_ids`, so the request's
    group_by_length can be honoured (preference and QA windows cannot).
    """
    req, opts = ctx.request, ctx.spec.options
    arguments = dict(
        output_dir=str(ctx.scratch),
        num_train_epochs=req.num_train_epochs,
        max_steps=req.max_steps,
        per_device_train_batch_size=req.per_device_train_batch_size,
        per_device_eval_batch_size=req.per_device_eval_batch_size,
        gradient_accumulation_steps=req.gradient_accumulation_steps,
        gradient_checkpointing=opts.gradient_checkpointing,
        max_grad_norm=req.max_grad_norm,
        learning_rate=req.learning_rate,
        weight_decay=req.weight_decay,
        optim=opts.optim,
        lr_scheduler_type=req.lr_scheduler_type,
        # transformers 5 folds warmup_ratio into warmup_steps (a float in [0, 1) is a ratio).
        warmup_steps=min(req.warmup_ratio, 0.999),
        train_sampling_strategy="group_by_length" if req.group_by_length and groups_by_length else "random",
        fp16=opts.fp16,
        bf16=opts.bf16,
        use_cpu=not opts.use_gpu,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=req.eval_steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
        seed=SEED,
    )
    arguments.update(overrides)
    return arguments


def lora_config(ctx: RecipeContext, task_type: str, **extra: Any):
    from peft import LoraConfig

    req = ctx.request
    return LoraConfig(
        r=req.lora_r, lora_alpha=req.lora_alpha, lora_dropout=req.lora_dropout,
        target_modules="all-linear", task_type=task_type, **extra,
    )


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


def max_length(ctx: RecipeContext, default: int = 512) -> int:
    return ctx.request.max_seq_length or default
