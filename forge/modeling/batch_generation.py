"""Continue several prompts in one `generate` call, each row with its own adapter, stops and stream of text.

A playground replica answers concurrent requests for the models of one base together
(forge.playground.batching); a request answered alone is a batch of one, so there is
one way to generate for a user, streamed or not:
- each row names its PEFT adapter, and PEFT's mixed-adapter inference (`adapter_names`)
  applies each row's LoRA weights to that row only ("__base__": the bare base);
- prompts are left-padded with an attention mask, so every row's new tokens line up at
  the end, and positions come from the mask: a greedy row gets the tokens it gets alone;
- transformers' streamers take one sequence, so one StoppingCriteria, called after every
  step with the whole batch, hands each row's newest token to that row's own incremental
  decoder, and ends the row on its end-of-sequence token, its token budget, a stop
  sequence or its halt (the client left). A finished row is padded while the others go on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from forge.modeling.generation import PromptInputs, context_length, generate_kwargs, prompt_inputs
from forge.modeling.stop_strings import StopMatcher

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch


def _ignore(_: str) -> None:
    pass


@dataclass
class Continuation:
    """One prompt to continue, and how: what a request asks of the model."""

    prompt: str
    max_new_tokens: int
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: Optional[int] = None  # seeds torch's generator before sampling: repeatable on one replica
    stop: Sequence[str] = ()  # the text ends before the first of these
    emit: Callable[[str], None] = _ignore  # gets each piece of text as it is generated
    halt: threading.Event = field(default_factory=threading.Event)  # set: end at the next token

    def decoding(self) -> tuple[Any, ...]:
        """Rows share a batch only when this is equal: sampling settings are the whole batch's.

        Greedy rows go together; sampling rows at the same temperature and top_p too. A seeded
        row goes alone: its seed sets the generator of the whole batch, and its text must not
        depend on who else was asking.
        """
        if self.temperature == 0:
            return ("greedy",)
        if self.seed is not None:
            return ("seeded", id(self))
        return ("sampled", self.temperature, self.top_p)


@dataclass
class Continued:
    """How a continuation ended (its text also went to `emit`, piece by piece)."""

    text: str  # the new text, cut before a stop sequence
    prompt_tokens: int
    completion_tokens: int  # every generated token, an end-of-sequence token included
    text_tokens: int  # the generated tokens less special ones (what `generate_texts` counts)
    finish_reason: Literal["stop", "length"]
    prompt_truncated: bool


@dataclass
class Row:
    """A continuation in a batch: with which tokenizer and which of the model's PEFT adapters."""

    continuation: Continuation
    tokenizer: Any
    adapter: Optional[str] = None  # None: the model as it is (no `adapter_names`)


class _RowState:
    """One row while the batch generates: its tokens, its text decoder and its stop checks."""

    def __init__(self, row: Row, inputs: PromptInputs, decoder: Any) -> None:
        self.row = row
        self.inputs = inputs
        self.decoder = decoder  # a transformers TextStreamer whose text comes back to `_text`
        self.matcher = StopMatcher(row.continuation.stop)
        eos = row.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.tokens: list[int] = []
        self.done = False

    def take(self, token: int) -> bool:
        """Add the row's newest token; True once the row has ended."""
        import torch

        self.tokens.append(token)
        self.decoder.put(torch.tensor([token]))
        if self.row.continuation.halt.is_set():  # the client left: what is held back goes nowhere
            self.done = True
        elif token in self.eos_ids or len(self.tokens) >= self.inputs.new_tokens_allowed or self.matcher.stopped:
            self.finish()
        return self.done

    def finish(self) -> None:
        """End the row's stream: the text its decoder and stop matcher held back goes out."""
        if self.done:
            return
        self.done = True
        self.decoder.end()
        if tail := self.matcher.flush():
            self.row.continuation.emit(tail)

    def text_piece(self, piece: str) -> None:
        if text := self.matcher.feed(piece):
            self.row.continuation.emit(text)

    def outcome(self) -> Continued:
        tokenizer = self.row.tokenizer
        special = set(tokenizer.all_special_ids)
        kept = [t for t in self.tokens if t not in special]
        text = tokenizer.decode(kept, skip_special_tokens=True)
        if self.matcher.stopped:
            text = text[:min((i for i in (text.find(s) for s in self.matcher.stops) if i >= 0), default=len(text))]
        ran_out = len(self.tokens) >= self.inputs.new_tokens_allowed and self.tokens[-1] not in self.eos_ids
        return Continued(text, int(self.inputs.ids.shape[1]), len(self.tokens), len(kept),
                         "length" if ran_out and not self.matcher.stopped else "stop", self.inputs.truncated)


def _fitting_groups(states: list[_RowState], limit: int) -> list[list[_RowState]]:
    """Rows in groups that fit the context together.

    A finished row is padded for as long as the batch runs, and its positions grow with
    it: with learned position embeddings they must stay inside the context.
    """
    groups: list[list[_RowState]] = []
    for state in states:
        current = groups[-1] if groups else []
        together = current + [state]
        fits = (max(s.inputs.ids.shape[1] for s in together)
                + max(s.inputs.new_tokens_allowed for s in together)) <= limit
        if current and fits:
            current.append(state)
        else:
            groups.append([state])
    return groups


def generate_together(model: Any, rows: Sequence[Row], *, seq2seq: bool = False) -> list[Continued]:
    """Continue every row's prompt in one batch (or a few, when the rows do not fit the context together).

    The rows must share their decoding (`Continuation.decoding`) and the base's vocabulary;
    the first row's sampling settings, seed and special tokens are the batch's.
    """
    from transformers import TextStreamer

    # Defined here: its base comes from transformers, which this module imports only when it generates.
    class RowDecoder(TextStreamer):
        """transformers' incremental decoding of one row, its text handed to the row."""

        def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
            super().__init__(tokenizer, skip_prompt=False, skip_special_tokens=True)
            self.on_text = on_text

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                self.on_text(text)

    states = []
    for row in rows:
        inputs = prompt_inputs(model, row.tokenizer, row.continuation.prompt, row.continuation.max_new_tokens, seq2seq)
        state = _RowState(row, inputs, None)
        state.decoder = RowDecoder(row.tokenizer, state.text_piece)
        states.append(state)
    groups = [states] if seq2seq else _fitting_groups(states, context_length(model))
    for group in groups:
        _generate_group(model, group)
    return [state.outcome() for state in states]


def _generate_group(model: Any, states: list[_RowState]) -> None:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class RowsEnd(StoppingCriteria):
        """Each row's newest token to the row; which rows have ended (per row, as generate expects)."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            newest = input_ids[:, -1].tolist()
            ended = [state.done or state.take(token) for state, token in zip(states, newest)]
            return torch.tensor(ended, dtype=torch.bool, device=input_ids.device)

    first = states[0]
    continuation, tokenizer = first.row.continuation, first.row.tokenizer
    width = max(s.inputs.ids.shape[1] for s in states)
    device = first.inputs.ids.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(states), width), pad, dtype=first.inputs.ids.dtype, device=device)
    mask = torch.zeros((len(states), width), dtype=torch.long, device=device)
    for i, state in enumerate(states):  # left padding: every row's next token goes in the last column
        length = state.inputs.ids.shape[1]
        ids[i, width - length:] = state.inputs.ids[0]
        mask[i, width - length:] = 1
    batch = PromptInputs(ids, max(s.inputs.new_tokens_allowed for s in states), False)
    kwargs = {**generate_kwargs(tokenizer, batch, continuation.temperature, continuation.top_p), "attention_mask": mask}
    adapters = [s.row.adapter for s in states]
    if any(name is not None for name in adapters):
        kwargs["adapter_names"] = adapters
    try:
        if continuation.seed is not None:
            torch.manual_seed(continuation.seed)
        with torch.inference_mode():
            model.generate(**kwargs, stopping_criteria=StoppingCriteriaList([RowsEnd()]))
    finally:
        for state in states:  # a failed batch still ends every row's stream
            state.finish()
