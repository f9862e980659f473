"""Strategy qlora's base model: bitsandbytes settings, and the base prepared for k-bit training."""

from __future__ import annotations

from typing import Any

from forge.schemas import TrainingRequest
from forge.training.options import ResolvedOptions


def quantization_config(request: TrainingRequest, options: ResolvedOptions, *,
                        keep_full_precision: tuple[str, ...] = ()) -> Any:
    """bitsandbytes settings for strategy qlora, else None.

    `keep_full_precision`: modules that are trained in full (a task head), which
    therefore must not be quantized.
    """
    if not (options.quantize_4bit or options.quantize_8bit):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    skip = {"llm_int8_skip_modules": list(keep_full_precision)} if keep_full_precision else {}
    if options.quantize_8bit:
        return BitsAndBytesConfig(load_in_8bit=True, **skip)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        **skip,
        bnb_4bit_quant_type=request.bnb_4bit_quant_type,
        bnb_4bit_compute_dtype=getattr(torch, options.bnb_4bit_compute_dtype),
        bnb_4bit_use_double_quant=request.use_nested_quant,
    )


def prepare_for_training(model: Any) -> Any:
    """A quantized base ready for LoRA training (norms in float32, input gradients on)."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
