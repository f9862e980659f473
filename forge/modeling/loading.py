"""Load a base model and its tokenizer with transformers: built-in, local folder or Hub id.

Shared by training workers and playground replicas (and only those: it imports
transformers when called). A qlora base's quantization settings are shared too
(`quantization.py`: the playground serves the base as it was trained); what a job
does to a model after loading it (k-bit preparation, LoRA) belongs to the training wing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from forge.builtin import BUILTIN_KINDS, ensure_builtin, is_builtin
from forge.modeling.placement import CPU, Placement
from forge.modeling.quantization import BaseQuantization

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


def load_tokenizer(model_source: str, builtin_dir: Path, *, trust_remote_code: bool = False,
                   notes: Optional[list[str]] = None):
    """The model's tokenizer, with a pad token; `notes` receives a sentence for what was set on it."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_dir(model_source, builtin_dir), trust_remote_code=trust_remote_code
    )
    if tokenizer.pad_token is None:
        # Batching needs a pad token; the EOS token is the usual stand-in (many Hub
        # checkpoints, Llama's among them, ship without one).
        tokenizer.pad_token = tokenizer.eos_token
        if notes is not None:
            notes.append(f"the tokenizer has no pad token; padding with its end-of-sequence token "
                         f"{tokenizer.eos_token!r}")
    return tokenizer


def load_model(
    kind: ModelKind,
    model_source: str,
    builtin_dir: Path,
    *,
    trust_remote_code: bool = False,
    quantization: Optional[BaseQuantization] = None,
    placement: Placement = CPU,
    **model_kwargs: Any,
):
    """The base model of `kind` on `placement`'s device and in its dtype.

    `quantization`: how a qlora base is quantized, or None. A quantized base is placed
    while it loads (bitsandbytes quantizes on the device); any other is moved after.
    """
    placed = {"device_map": {"": placement.device}} if quantization is not None and placement.on_cuda else {}
    model = _auto_class(kind).from_pretrained(
        resolve_model_dir(model_source, builtin_dir),
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        quantization_config=quantization.transformers_config() if quantization is not None else None,
        dtype=placement.torch_dtype(),
        **placed,
        **model_kwargs,
    )
    if not placed and placement.on_cuda:
        model = model.to(placement.device)
    return model

