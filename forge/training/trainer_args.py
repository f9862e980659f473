"""Arguments of the library's trainers, from a job's request and resolved options.

One function maps our request onto any `TrainingArguments` subclass (TRL's
configs included), one builds the LoRA config; recipes add what is their own.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

from forge.training.recipe import RecipeContext

# A request without max_seq_length trains with this percentile of its examples' token lengths:
# the longest 1% are truncated rather than padding every batch to the single longest one.
LENGTH_PERCENTILE = 0.99


def trainer_arguments(
    ctx: RecipeContext, *, has_eval: bool, groups_by_length: bool = False, **overrides: Any
) -> dict[str, Any]:
    """Keyword arguments for any TrainingArguments subclass (TRL's configs included).

    `groups_by_length`: the trainer's examples carry `input_ids`, so the request's
    group_by_length can be honoured (preference and QA windows cannot).
    """
    req, opts = ctx.request, ctx.spec.options
    fp16, bf16 = ctx.mixed_precision()
    arguments = dict(
        output_dir=str(ctx.scratch),
        num_train_epochs=req.num_train_epochs,
        max_steps=req.max_steps,
        per_device_train_batch_size=req.per_device_train_batch_size,
        per_device_eval_batch_size=req.per_device_eval_batch_size,
        gradient_accumulation_steps=req.gradient_accumulation_steps,
        gradient_checkpointing=opts.gradient_checkpointing,
        # The non-reentrant form: it works with inputs that need no gradient (a frozen base under
        # a LoRA) and is the one PyTorch recommends.
        gradient_checkpointing_kwargs={"use_reentrant": False} if opts.gradient_checkpointing else None,
        max_grad_norm=req.max_grad_norm,
        learning_rate=req.learning_rate,
        weight_decay=req.weight_decay,
        optim=opts.optim,
        lr_scheduler_type=req.lr_scheduler_type,
        # transformers 5 folds warmup_ratio into warmup_steps (a float in [0, 1) is a ratio).
        warmup_steps=min(req.warmup_ratio, 0.999),
        train_sampling_strategy="group_by_length" if req.group_by_length and groups_by_length else "random",
        fp16=fp16,
        bf16=bf16,
        use_cpu=not opts.use_gpu,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=req.eval_steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
        seed=req.seed,
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


def model_positions(ctx: RecipeContext) -> Optional[int]:
    """The most tokens the base model takes (None when its config sets no limit, as T5's relative positions)."""
    from transformers import AutoConfig

    from forge.modeling.loading import resolve_model_dir

    config = AutoConfig.from_pretrained(resolve_model_dir(ctx.spec.model_source, ctx.builtin_dir),
                                        trust_remote_code=ctx.spec.trust_remote_code)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(limit) if limit else None


def max_length(ctx: RecipeContext, tokenizer: Any, texts: Iterable[str]) -> int:
    """The request's max_seq_length; when it is null, one chosen from `texts` (the examples as trained).

    The choice, the LENGTH_PERCENTILE of the examples' token lengths rounded up to a
    multiple of 8 and capped by the model's positions, is the same on every rank and
    every restart (it depends on the data only), and is said once in the job's events.
    """
    if ctx.request.max_seq_length:
        return ctx.request.max_seq_length
    if ctx.chosen_max_length is None:
        lengths = sorted(len(ids) for ids in tokenizer(list(texts))["input_ids"])
        if not lengths:
            raise ValueError("no training examples to choose max_seq_length from")
        percentile = lengths[max(0, math.ceil(LENGTH_PERCENTILE * len(lengths)) - 1)]
        chosen = 8 * math.ceil(percentile / 8)
        positions = model_positions(ctx)
        capped = positions is not None and chosen > positions
        ctx.chosen_max_length = positions if capped else chosen
        reason = f", capped by the model's {positions} positions" if capped else ""
        ctx.say(f"max_seq_length not set: using {ctx.chosen_max_length} tokens, the {LENGTH_PERCENTILE:.0%} "
                f"percentile of the {len(lengths)} training examples' lengths (longest {lengths[-1]}){reason}")
    return ctx.chosen_max_length
