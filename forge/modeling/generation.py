"""Text generation with a causal or seq2seq model: prompts to inputs, and `generate_texts`, what the
evaluation of trained models uses (the playground generates in batches: forge.modeling.batch_generation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Generated:
    text: str
    tokens: int
    prompt_truncated: bool


def context_length(model: Any) -> int:
    config = model.config
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 512)


@dataclass
class PromptInputs:
    ids: Any
    new_tokens_allowed: int
    truncated: bool


def prompt_inputs(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, seq2seq: bool) -> PromptInputs:
    """The prompt's ids on the model's device: a prompt longer than the context keeps its end."""
    limit = context_length(model)
    budget = limit if seq2seq else max(1, limit - max_new_tokens)
    # Inputs go where the model is (a GPU replica's or worker's device; a quantized base's first layer).
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
    truncated = ids.shape[1] > budget
    if truncated:
        ids = ids[:, -budget:]
    allowed = max_new_tokens if seq2seq else min(max_new_tokens, limit - ids.shape[1])
    return PromptInputs(ids, allowed, truncated)


def generate_kwargs(tokenizer: Any, inputs: PromptInputs, temperature: float, top_p: float) -> dict[str, Any]:
    import torch

    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    )
    return {"input_ids": inputs.ids, "attention_mask": torch.ones_like(inputs.ids),
            "max_new_tokens": inputs.new_tokens_allowed, "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id, **sampling}


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seq2seq: bool = False,
) -> list[Generated]:
    """Continue each prompt (one at a time: prompts differ in length and stay unpadded).

    Returns only the new text. temperature 0 is greedy. A prompt longer than the
    model's context keeps its end, the part next to the answer.
    """
    import torch

    special = set(tokenizer.all_special_ids)
    results = []
    for prompt in prompts:
        inputs = prompt_inputs(model, tokenizer, prompt, max_new_tokens, seq2seq)
        with torch.inference_mode():
            output = model.generate(**generate_kwargs(tokenizer, inputs, temperature, top_p))
        new = output[0] if seq2seq else output[0, inputs.ids.shape[1]:]
        kept = [t for t in new.tolist() if t not in special]
        results.append(Generated(tokenizer.decode(kept, skip_special_tokens=True), len(kept), inputs.truncated))
    return results
