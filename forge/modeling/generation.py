"""Text generation with a causal or seq2seq model: the one implementation the playground
and the evaluation of trained models share."""

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

    limit = context_length(model)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    )
    budget = limit if seq2seq else max(1, limit - max_new_tokens)
    special = set(tokenizer.all_special_ids)
    # Inputs go where the model is (a GPU replica's or worker's device; a quantized base's first layer).
    device = next(model.parameters()).device
    results = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
        truncated = ids.shape[1] > budget
        if truncated:
            ids = ids[:, -budget:]
        new_tokens_allowed = max_new_tokens if seq2seq else min(max_new_tokens, limit - ids.shape[1])
        with torch.inference_mode():
            output = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens_allowed,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
        new = output[0] if seq2seq else output[0, ids.shape[1]:]
        kept = [t for t in new.tolist() if t not in special]
        results.append(Generated(tokenizer.decode(kept, skip_special_tokens=True), len(kept), truncated))
    return results
