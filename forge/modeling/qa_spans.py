"""Extractive QA on token windows: features with answer positions for training, and
the best answer span from start/end logits for evaluation and the playground.

Long contexts are split into overlapping windows (`stride`) by the fast tokenizer;
offsets map tokens back to characters of the context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_ANSWER_TOKENS = 30
# Windows over a long context, in tokens, and their overlap: training and answering use the same.
WINDOW_TOKENS = 256
STRIDE = 64


@dataclass
class Span:
    text: str
    score: float  # probability of the span under the window's start/end distributions


def encode_windows(
    tokenizer: Any, questions: list[str], contexts: list[str], *, max_length: int, stride: int, pad: bool = False
):
    # Unpadded for training (the collator pads each batch); padded to the longest
    # window when one example's windows go through the model together.
    return tokenizer(
        questions, contexts, truncation="only_second", max_length=max_length, stride=stride,
        return_overflowing_tokens=True, return_offsets_mapping=True, padding="longest" if pad else False,
    )


def _context_range(encoding: Any, window: int) -> tuple[int, int]:
    ids = encoding.sequence_ids(window)
    first = ids.index(1)
    last = len(ids) - 1 - ids[::-1].index(1)
    return first, last


def training_features(tokenizer: Any, rows: list[dict[str, Any]], *, max_length: int, stride: int) -> dict:
    """Token windows with start/end positions; a window without the answer points at [CLS] (0)."""
    encoding = encode_windows(tokenizer, [r["question"] for r in rows], [r["context"] for r in rows],
                              max_length=max_length, stride=stride)
    starts, ends = [], []
    for window, offsets in enumerate(encoding["offset_mapping"]):
        row = rows[encoding["overflow_to_sample_mapping"][window]]
        answer_start = row["answer_start"]
        answer_end = answer_start + len(row["answer"])
        first, last = _context_range(encoding, window)
        if offsets[first][0] > answer_start or offsets[last][1] < answer_end:
            starts.append(0)
            ends.append(0)
            continue
        start = first
        while start <= last and offsets[start][1] <= answer_start:
            start += 1
        end = last
        while end >= first and offsets[end][0] >= answer_end:
            end -= 1
        starts.append(start)
        ends.append(end)
    features = {k: encoding[k] for k in encoding if k not in ("offset_mapping", "overflow_to_sample_mapping")}
    return {**features, "start_positions": starts, "end_positions": ends}


def _softmax(values: list[float]) -> list[float]:
    peak = max(values)
    exps = [math.exp(v - peak) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def best_span(encoding: Any, window_logits: list[tuple[list[float], list[float]]], context: str,
              windows: list[int]) -> Span:
    """The most probable context span over `windows` (the windows of one example)."""
    best = Span(text="", score=-1.0)
    for window, (start_logits, end_logits) in zip(windows, window_logits):
        offsets = encoding["offset_mapping"][window]
        first, last = _context_range(encoding, window)
        start_probs, end_probs = _softmax(start_logits), _softmax(end_logits)
        # The top candidates of each side are enough: the best pair is among them.
        top_starts = sorted(range(first, last + 1), key=lambda i: start_probs[i], reverse=True)[:20]
        top_ends = sorted(range(first, last + 1), key=lambda i: end_probs[i], reverse=True)[:20]
        for start in top_starts:
            for end in top_ends:
                if end < start or end - start + 1 > MAX_ANSWER_TOKENS:
                    continue
                score = start_probs[start] * end_probs[end]
                if score > best.score:
                    best = Span(context[offsets[start][0]:offsets[end][1]], score)
    return best


def answer_questions(model: Any, tokenizer: Any, rows: list[dict[str, Any]], *, max_length: int) -> list[Span]:
    """The best span for each row's question in its context (evaluation and playground)."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    spans = []
    for row in rows:  # one example at a time: a long context alone may make many windows
        encoding = encode_windows(tokenizer, [row["question"]], [row["context"]], max_length=max_length,
                                  stride=STRIDE, pad=True)
        inputs = {k: torch.tensor(encoding[k], device=device) for k in ("input_ids", "attention_mask", "token_type_ids")
                  if k in encoding}
        with torch.inference_mode():
            output = model(**inputs)
        windows = list(range(len(encoding["input_ids"])))
        logits = [(output.start_logits[w].tolist(), output.end_logits[w].tolist()) for w in windows]
        spans.append(best_span(encoding, logits, row["context"], windows))
    return spans
