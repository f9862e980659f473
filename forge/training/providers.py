"""Load a base model and its tokenizer (provider huggingface), quantized for qlora.

Runs in training workers and playground replicas only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from forge.builtin import BUILTIN_KINDS, ensure_builtin, is_builtin
from forge.training.options import ResolvedOptions

ModelKind = Literal["causal-lm", "seq2seq-lm", "question-answering", "sequence-classification"]


def resolve_model_dir(model_source: str, builtin_dir: Path) -> str:
    """A built-in name becomes its built directory; a local dir or Hub id passes through."""
    if is_builtin(model_source):
        return str(ensure_builtin(model_source, builtin_dir))
    return model_source


def is_encoder_decoder(model_source: str, builtin_dir: Path, *, trust_remote_code: bool = False) -> bool:
    if is_builtin(model_source):
        return BUILTIN_KINDS[model_source] == "seq2seq-lm"
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_source, trust_remote_code=trust_remote_code)
    return bool(getattr(config, "is_encoder_decoder", False))


def _auto_class(kind: ModelKind):
    import transformers

    return {
        "causal-lm": transformers.AutoModelForCausalLM,
        "seq2seq-lm": transformers.AutoModelForSeq2SeqLM,
        "question-answering": transformers.AutoModelForQuestionAnswering,
        "sequence-classification": transformers.AutoModelForSequenceClassification,
    }[kind]


def quantization_config(request: Any, options: ResolvedOptions, *, keep_full_precision: tuple[str, ...] = ()):
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


def load_tokenizer(model_source: str, builtin_dir: Path, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_dir(model_source, builtin_dir), trust_remote_code=trust_remote_code
    )
    if tokenizer.pad_token is None:
        # Batching needs a pad token; the EOS token is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    kind: ModelKind,
    model_source: str,
    builtin_dir: Path,
    *,
    trust_remote_code: bool = False,
    quantization: Any = None,
    **model_kwargs: Any,
):
    """The base model of `kind`; quantized (and prepared for k-bit training) when asked."""
    model = _auto_class(kind).from_pretrained(
        resolve_model_dir(model_source, builtin_dir),
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        quantization_config=quantization,
        **model_kwargs,
    )
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model

