"""Strategy qlora's base model: its quantization from the request, and the base prepared for k-bit training."""

from __future__ import annotations

from typing import Any, Optional

from forge.modeling.quantization import BaseQuantization
from forge.schemas import TrainingRequest
from forge.training.options import ResolvedOptions


def base_quantization(request: TrainingRequest, options: ResolvedOptions, *,
                      keep_full_precision: tuple[str, ...] = ()) -> Optional[BaseQuantization]:
    """How strategy qlora quantizes the base (load_model turns it into bitsandbytes settings), else None.

    `keep_full_precision`: modules that are trained in full (a task head), which
    therefore must not be quantized. The playground rebuilds the same settings from
    the model card (ModelCard.quantization).
    """
    if not (options.quantize_4bit or options.quantize_8bit):
        return None
    return BaseQuantization(
        bits=8 if options.quantize_8bit else 4, quant_type=request.bnb_4bit_quant_type,
        compute_dtype=options.bnb_4bit_compute_dtype, double_quant=request.use_nested_quant,
        full_precision=keep_full_precision,
    )


def prepare_for_training(model: Any) -> Any:
    """A quantized base ready for LoRA training (norms in float32, input gradients on)."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
