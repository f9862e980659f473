"""Text generation with a causal or seq2seq model: the one implementation the playground
and the evaluation of trained models share, whole (`generate_texts`) or streamed (`stream_text`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional

from forge.modeling.stop_strings import StopMatcher


@dataclass
class Generated:
    text: str
    tokens: int
    prompt_truncated: bool


@dataclass
class Streamed:
    """How a streamed generation ended (its text went to `emit`)."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]
    prompt_truncated: bool
    # The completion's tokens less special ones (an end of sequence): what `generate_texts` counts.
    text_tokens: int = 0


def context_length(model: Any) -> int:
    config = model.config
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 512)


@dataclass
class _Inputs:
    ids: Any
    new_tokens_allowed: int
    truncated: bool


def _inputs(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, seq2seq: bool) -> _Inputs:
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
    return _Inputs(ids, allowed, truncated)


def _generate_kwargs(tokenizer: Any, inputs: _Inputs, temperature: float, top_p: float) -> dict[str, Any]:
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
        inputs = _inputs(model, tokenizer, prompt, max_new_tokens, seq2seq)
        with torch.inference_mode():
            output = model.generate(**_generate_kwargs(tokenizer, inputs, temperature, top_p))
        new = output[0] if seq2seq else output[0, inputs.ids.shape[1]:]
        kept = [t for t in new.tolist() if t not in special]
        results.append(Generated(tokenizer.decode(kept, skip_special_tokens=True), len(kept), inputs.truncated))
    return results


def stream_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    emit: Callable[[str], None],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: Optional[int] = None,
    stop: Sequence[str] = (),
    seq2seq: bool = False,
    halt: Optional[threading.Event] = None,
) -> Streamed:
    """Continue `prompt`, handing each new piece of text to `emit` as the model produces it.

    The same tokens as `generate_texts` (greedy at temperature 0), so the pieces joined are
    its text, cut before the first `stop` sequence. `seed` seeds torch's generator first
    (sampling is then repeatable on one replica). Setting `halt` (e.g. the client left)
    ends the generation at the next token.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    halt = halt or threading.Event()
    inputs = _inputs(model, tokenizer, prompt, max_new_tokens, seq2seq)

    # Defined here: their bases come from transformers, which this module imports only when it generates.
    special = set(tokenizer.all_special_ids)

    class Counting(TextIteratorStreamer):
        generated = 0
        special_generated = 0
        last: Optional[int] = None

        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                self.generated += value.numel()
                self.special_generated += sum(1 for t in value.reshape(-1).tolist() if t in special)
                self.last = int(value.reshape(-1)[-1])
            super().put(value)

    class Halted(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool, device=input_ids.device)

    streamer = Counting(tokenizer, skip_prompt=True, skip_special_tokens=True)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if seed is not None:
                torch.manual_seed(seed)
            with torch.inference_mode():
                model.generate(**_generate_kwargs(tokenizer, inputs, temperature, top_p), streamer=streamer,
                               stopping_criteria=StoppingCriteriaList([Halted()]))
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    matcher = StopMatcher(stop)
    for piece in streamer:
        text = matcher.feed(piece)
        if text:
            emit(text)
        if matcher.stopped or halt.is_set():
            halt.set()
            break
    if tail := matcher.flush():
        emit(tail)
    worker.join()
    if failure:
        raise failure[0]
    eos = tokenizer.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    ran_out = streamer.generated >= inputs.new_tokens_allowed and streamer.last not in eos_ids
    return Streamed(inputs.ids.shape[1], streamer.generated, "length" if ran_out and not matcher.stopped else "stop",
                    inputs.truncated, text_tokens=streamer.generated - streamer.special_generated)
