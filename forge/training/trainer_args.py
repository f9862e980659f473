"""Arguments of the library's trainers, from a job's request and resolved options.

One function maps our request onto any `TrainingArguments` subclass (TRL's
configs included), one builds the LoRA config; recipes add what is their own.
"""

from __future__ import annotations

from typing import Any

from forge.training.recipe import SEED, RecipeContext

# What a request without max_seq_length trains with.
DEFAULT_MAX_LENGTH = 512


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


def max_length(ctx: RecipeContext, default: int = DEFAULT_MAX_LENGTH) -> int:
    return ctx.request.max_seq_length or default
