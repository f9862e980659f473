"""Load a trained model (base + PEFT adapter) and generate with it.

Used by the Playground deployment; everything here runs in a playground replica,
never in the API process.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge.training.providers import load_causal_lm
from forge.training.tasks import prompt_for


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    task: str
    context_length: int


def load_trained_model(model_dir: Path, builtin_dir: Path, *, trust_remote_code: bool = False) -> LoadedModel:
    from peft import PeftModel

    meta = json.loads((model_dir / "forge.json").read_text())
    base, _ = load_causal_lm(meta["base_model_source"], builtin_dir, trust_remote_code=trust_remote_code)
    model = PeftModel.from_pretrained(base, str(model_dir)).eval()
    return _loaded(model, model_dir, meta["task"], trust_remote_code)


def load_base_model(model_source: str, builtin_dir: Path, task: str, *, trust_remote_code: bool = False) -> LoadedModel:
    """The untrained base, prompted like a trained model of `task` (to compare against)."""
    model, tokenizer = load_causal_lm(model_source, builtin_dir, trust_remote_code=trust_remote_code)
    return LoadedModel(model.eval(), tokenizer, task, _context_length(model))


def _loaded(model: Any, model_dir: Path, task: str, trust_remote_code: bool) -> LoadedModel:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model, tokenizer, task, _context_length(model))


def _context_length(model: Any) -> int:
    return int(getattr(model.config, "max_position_embeddings", None) or 2048)


def generate(
    loaded: LoadedModel, prompt: str, *, max_new_tokens: int, temperature: float, top_p: float
) -> dict[str, Any]:
    """Continue `prompt`; returns only the new text. temperature 0 is greedy."""
    import torch

    started = time.perf_counter()
    tokenizer = loaded.tokenizer
    ids = tokenizer(prompt_for(loaded.task, prompt), return_tensors="pt", add_special_tokens=True)["input_ids"]
    budget = max(1, loaded.context_length - max_new_tokens)
    truncated = ids.shape[1] > budget
    if truncated:
        ids = ids[:, -budget:]  # keep the end of the prompt, next to the answer
    max_new_tokens = min(max_new_tokens, loaded.context_length - ids.shape[1])
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
        "do_sample": False}
    with torch.inference_mode():
        output = loaded.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
    new_tokens = output[0, ids.shape[1]:]
    if len(new_tokens) and new_tokens[-1].item() == tokenizer.eos_token_id:
        new_tokens = new_tokens[:-1]
    return {
        "generated_text": tokenizer.decode(new_tokens, skip_special_tokens=True),
        "tokens_generated": int(len(new_tokens)),
        "generation_time_ms": round((time.perf_counter() - started) * 1000, 2),
        "prompt_truncated": truncated,
    }
