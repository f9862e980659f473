"""The provider seam: how each provider loads a causal LM that a recipe can train.

A recipe asks for `(model, tokenizer, peft_config)` and never names a provider.
huggingface: the (quantized) base plus a LoRA config for the trainer to apply;
unsloth: FastLanguageModel's model, already LoRA-wrapped, so no config.
"""

from __future__ import annotations

from typing import Any, Callable

from forge.training.recipe import RecipeContext
from forge.training.trainer_args import lora_config

CausalLmLoader = Callable[[RecipeContext], tuple[Any, Any, Any]]


def _huggingface(ctx: RecipeContext) -> tuple[Any, Any, Any]:
    return ctx.base_model("causal-lm"), ctx.tokenizer(), lora_config(ctx, "CAUSAL_LM")


def _unsloth(ctx: RecipeContext) -> tuple[Any, Any, Any]:
    from forge.training.unsloth import load_for_training  # only ever imported in the unsloth venv

    return (*load_for_training(ctx), None)


CAUSAL_LM_LOADERS: dict[str, CausalLmLoader] = {"huggingface": _huggingface, "unsloth": _unsloth}


def trainable_causal_lm(ctx: RecipeContext) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config) for a causal-LM trainer, loaded by the job's provider."""
    return CAUSAL_LM_LOADERS[ctx.request.provider](ctx)
