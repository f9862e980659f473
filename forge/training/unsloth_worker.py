"""The Ray Train entry point of provider-unsloth jobs, and Unsloth's model loading.

This module imports nothing heavy at the top: the worker process unpickles
`train_worker_unsloth` first, and Unsloth must be imported before transformers,
TRL and PEFT so that its patches apply (in Unsloth's own venv, TRL 1.15 cannot
even train on a CPU without them).
"""

from __future__ import annotations

from typing import Any


def train_worker_unsloth(config: dict[str, Any]) -> dict[str, Any]:
    import unsloth  # noqa: F401  (first, before anything imports transformers)

    from forge.training.worker import train_worker

    return train_worker(config)


def load_for_training(ctx: Any) -> tuple[Any, Any]:
    """A LoRA-wrapped causal LM and its tokenizer, loaded through FastLanguageModel."""
    import torch
    from unsloth import FastLanguageModel

    from forge.training.common import SEED, max_length
    from forge.training.providers import resolve_model_dir

    spec, req, options = ctx.spec, ctx.request, ctx.spec.options
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=resolve_model_dir(spec.model_source, ctx.builtin_dir),
        max_seq_length=max_length(ctx),
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
        random_state=SEED,
    )
    return model, tokenizer
