"""The recipe interface: the context a recipe runs in, and what it hands back.

A recipe (one module per kind of training, in `recipes/`) gets a `RecipeContext`,
builds its trainer(s) from the library's own config classes
(`trainer_args.trainer_arguments`), trains through `RecipeContext.train`, and
returns a `RecipeResult`; the entry point saves it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Optional

from forge.datasets import read_examples
from forge.modeling.loading import ModelKind
from forge.modeling.placement import Accelerator, Placement, place
from forge.storage import local_file
from forge.training.checkpoints import TRAINER_FOLDER, CheckpointStore, NoCheckpoints, read_meta
from forge.training.manager_link import JobLink, WorkerEvent
from forge.training.spec import JobSpec

# Evaluations that sample (rlhf's reward estimates) draw with this seed every time, so that
# their figures compare; the job's own randomness follows its request's `seed`.
SEED = 42


@dataclass
class RecipeContext:
    spec: JobSpec
    link: JobLink
    is_main: bool
    scratch: Path
    checkpoints: CheckpointStore = field(default_factory=NoCheckpoints)
    # The worker's rank on its node: which of the node's GPUs is its own.
    local_rank: int = 0
    # Seconds spent inside trainer.train() (all stages), without loading and evaluation.
    train_seconds: float = 0.0
    # max_seq_length as chosen from the data when the request left it open (trainer_args.max_length).
    chosen_max_length: Optional[int] = None
    _said: set[str] = field(default_factory=set)

    @cached_property
    def placement(self) -> Placement:
        """Where this worker's models live and in which precision (forge.modeling.placement)."""
        return place(Accelerator.detect(), wants_gpu=self.spec.options.use_gpu, local_rank=self.local_rank)

    def say(self, message: str) -> None:
        """Record a choice made for the user as a job event (once per job, from rank 0)."""
        if self.is_main and message not in self._said:
            self._said.add(message)
            self.link.event(WorkerEvent(kind="setting", data={"message": message}))

    def mixed_precision(self) -> tuple[bool, bool]:
        """(fp16, bf16) for the trainers: the request's, or on a GPU the placement's when the request set neither."""
        options, request = self.spec.options, self.request
        if not self.placement.on_cuda or {"fp16", "bf16"} & request.model_fields_set:
            return options.fp16, options.bf16
        chosen = self.placement.mixed_precision
        self.say(f"fp16/bf16 not set: training with {chosen} mixed precision on {self.placement.device}")
        return chosen == "fp16", chosen == "bf16"

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
        from forge.modeling.loading import load_tokenizer

        notes: list[str] = []
        tokenizer = load_tokenizer(self.spec.model_source, self.builtin_dir,
                                   trust_remote_code=self.spec.trust_remote_code, notes=notes)
        for note in notes:
            self.say(note)
        return tokenizer

    def base_model(self, kind: str, *, keep_full_precision: tuple[str, ...] = (), **model_kwargs: Any):
        """The job's base model of `kind`, quantized (and prepared for k-bit training) when the strategy is qlora."""
        from forge.modeling.loading import load_model
        from forge.training.quantization import base_quantization, prepare_for_training

        quantization = base_quantization(self.request, self.spec.options, keep_full_precision=keep_full_precision)
        model = load_model(kind, self.spec.model_source, self.builtin_dir, trust_remote_code=self.spec.trust_remote_code,
                           quantization=quantization, placement=self.placement, **model_kwargs)
        return prepare_for_training(model) if quantization is not None else model

    def examples(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Canonical rows of the dataset as (train, eval): the eval dataset's rows, or a hold-out of `eval_split`."""
        # On shared object storage the dataset is copied next to the worker first.
        path = local_file(self.spec.dataset_path, self.scratch / "dataset")
        rows = list(read_examples(path, self.spec.dataset_format))
        random.Random(self.request.seed).shuffle(rows)
        if self.spec.eval_dataset_path is not None:
            eval_path = local_file(self.spec.eval_dataset_path, self.scratch / "eval-dataset")
            return rows, list(read_examples(eval_path, self.spec.dataset_format))
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

    def train(self, trainer: Any, *, model_kind: Optional[ModelKind], stage: str = "train", step_offset: int = 0,
              total_steps: Optional[int] = None, extras: Optional[dict[str, Path]] = None) -> bool:
        """Run `trainer` with progress, checkpoints and cooperative stop; True when stopped early.

        `model_kind`: the kind of the job's model when this stage trains it (its checkpoints
        can then be registered as models), None for a stage that trains a helper (a reward
        model). The trainer resumes from the job's latest checkpoint when that checkpoint
        belongs to this `stage`; `extras` are folders every checkpoint carries.
        """
        from transformers.trainer_callback import PrinterCallback

        from forge.training.callbacks import CheckpointCallback, ProgressCallback

        progress = ProgressCallback(self.link, is_main=self.is_main, step_offset=step_offset,
                                    total_steps=total_steps)
        trainer.add_callback(progress)
        trainer.add_callback(CheckpointCallback(
            self.checkpoints, stage=stage, is_main=self.is_main, save_steps=self.request.save_steps,
            step_offset=step_offset, extras=extras,
            on_saved=lambda job_step: self.link.event(
                WorkerEvent(kind="checkpoint", data={"step": job_step, "stage": stage})),
            card=(lambda metrics: self.spec.model_card(model_kind, metrics)) if model_kind else None,
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
