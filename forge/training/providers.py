"""Load a base model and its tokenizer for training or inference (provider huggingface)."""

from __future__ import annotations

from pathlib import Path

from forge.builtin import ensure_builtin, is_builtin


def resolve_model_dir(model_source: str, builtin_dir: Path) -> str:
    """A built-in name becomes its built directory; a local dir or Hub id passes through."""
    if is_builtin(model_source):
        return str(ensure_builtin(model_source, builtin_dir))
    return model_source


def load_causal_lm(model_source: str, builtin_dir: Path, *, trust_remote_code: bool = False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = resolve_model_dir(model_source, builtin_dir)
    tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        # Batching needs a pad token; the EOS token is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        location, trust_remote_code=trust_remote_code, use_safetensors=True
    )
    return model, tokenizer
