"""Provider unsloth's model loading: a LoRA-wrapped causal LM through FastLanguageModel.

Imported only in the unsloth venv, by a worker whose entry point
(`entry.train_worker_unsloth`) has already imported unsloth first.
"""

from __future__ import annotations

from typing import Any

from forge.modeling.loading import resolve_model_dir
from forge.training.recipe import RecipeContext
from forge.training.trainer_args import model_positions


def load_for_training(ctx: RecipeContext) -> tuple[Any, Any]:
    """A LoRA-wrapped causal LM and its tokenizer, loaded through FastLanguageModel."""
    import torch
    from unsloth import FastLanguageModel

    spec, req, options = ctx.spec, ctx.request, ctx.spec.options
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=resolve_model_dir(spec.model_source, ctx.builtin_dir),
        # The longest sequence Unsloth prepares the model for; the recipe's trainer sets the
        # training limit (the request's, or one chosen from the data).
        max_seq_length=ctx.request.max_seq_length or model_positions(ctx) or 2048,
        # On a CPU, float32 as for every other job (Unsloth would pick bfloat16 where the CPU has it);
        # on a GPU, Unsloth chooses.
        dtype=None if options.use_gpu else torch.float32,
        load_in_4bit=options.quantize_4bit,
        load_in_8bit=options.quantize_8bit,
        trust_remote_code=spec.trust_remote_code,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = FastLanguageModel.get_peft_model(
        model, r=req.lora_r, lora_alpha=req.lora_alpha, lora_dropout=req.lora_dropout,
        target_modules=None,  # Unsloth's choice: the attention and MLP projections the model has
        use_gradient_checkpointing="unsloth" if options.gradient_checkpointing else False,
        random_state=req.seed,
    )
    return model, tokenizer
