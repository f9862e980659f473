"""How a base model is quantized (strategy qlora), for the job that trains on it and the replica that serves it.

A QLoRA adapter was trained against the quantized base; served on the full-precision
base it answers differently (and a large base takes four times the memory). So the
setting is one object, built by training from the request and by the playground from
the model card (`ModelCard.quantization`), and turned into transformers' bitsandbytes config in one place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# A task head that trains in full (the extractive-QA span head) must not be quantized.
FULL_PRECISION_HEADS = {"question-answering": ("qa_outputs",)}


class BaseQuantization(BaseModel):
    bits: Literal[4, 8]
    quant_type: str = Field("nf4", description="4-bit data type: nf4 or fp4.")
    compute_dtype: str = Field("float32", description="The dtype 4-bit layers compute in.")
    double_quant: bool = Field(False, description="Quantize the quantization constants too (4-bit).")
    full_precision: tuple[str, ...] = Field((), description="Modules kept unquantized (a trained task head).")

    def transformers_config(self) -> Any:
        import torch
        from transformers import BitsAndBytesConfig

        skip = {"llm_int8_skip_modules": list(self.full_precision)} if self.full_precision else {}
        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True, **skip)
        return BitsAndBytesConfig(load_in_4bit=True, **skip, bnb_4bit_quant_type=self.quant_type,
                                  bnb_4bit_compute_dtype=getattr(torch, self.compute_dtype),
                                  bnb_4bit_use_double_quant=self.double_quant)
