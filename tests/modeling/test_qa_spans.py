"""Extractive QA windows and spans, with the built-in tiny BERT's real (uncased WordPiece) tokenizer.

Training marks where the answer lies in each window of a long context; answering picks
the most probable valid span from start/end logits, here made by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from forge.modeling.loading import load_tokenizer
from forge.modeling.qa_spans import MAX_ANSWER_TOKENS, best_span, encode_windows, training_features

QUESTION = "Who built the bridge?"
FILLER = " ".join(f"Sentence number {i} talks about the weather in town." for i in range(12))
CONTEXT = FILLER + " The bridge was built by Maria Lopez in 1921. " + " ".join(f"Line {i} is filler." for i in range(3))
ROW = {"question": QUESTION, "context": CONTEXT, "answer": "Maria Lopez", "answer_start": CONTEXT.index("Maria Lopez")}
WINDOW, STRIDE = 64, 16


@pytest.fixture(scope="module")
def tokenizer(builtin_dir: Path):
    return load_tokenizer("forge/tiny-bert", builtin_dir)


def context_tokens(encoding, window: int, sequence: int = 1) -> list[int]:
    """Token positions of the context (sequence 1; the question is 0) in `window`."""
    return [i for i, seq in enumerate(encoding.sequence_ids(window)) if seq == sequence]


def test_a_long_context_makes_overlapping_windows_that_cover_it(tokenizer):
    encoding = encode_windows(tokenizer, [QUESTION], [CONTEXT], max_length=WINDOW, stride=STRIDE)
    windows = len(encoding["input_ids"])
    assert windows > 2 and all(len(ids) <= WINDOW for ids in encoding["input_ids"])
    spans = []  # (first char, end char) of each window's context part
    for window in range(windows):
        offsets = encoding["offset_mapping"][window]
        positions = context_tokens(encoding, window)
        spans.append((offsets[positions[0]][0], offsets[positions[-1]][1]))
        # Every window carries the whole question.
        question = [encoding["input_ids"][window][i] for i in context_tokens(encoding, window, sequence=0)]
        assert tokenizer.decode(question) == "who built the bridge?"
    assert spans[0][0] == 0 and spans[-1][1] == len(CONTEXT.rstrip())
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start < end  # the next window starts inside this one: they overlap


def test_training_features_mark_the_answer_only_in_windows_that_hold_it(tokenizer):
    features = training_features(tokenizer, [ROW], max_length=WINDOW, stride=STRIDE)
    starts, ends = features["start_positions"], features["end_positions"]
    assert len(starts) == len(ends) == len(features["input_ids"]) > 2
    holding = [w for w, start in enumerate(starts) if start != 0]
    assert holding, "some window must hold the answer"
    assert len(holding) < len(starts), "and some must not"
    for window in range(len(starts)):
        if window in holding:
            ids = features["input_ids"][window][starts[window]:ends[window] + 1]
            assert tokenizer.decode(ids) == "maria lopez"  # the tokenizer is uncased
        else:
            assert (starts[window], ends[window]) == (0, 0)  # points at [CLS]: "no answer here"


def _logits(length: int, peaks: dict[int, float]) -> list[float]:
    return [peaks.get(i, -10.0) for i in range(length)]


def _softmax_at(values: list[float], index: int) -> float:
    return math.exp(values[index]) / sum(math.exp(v) for v in values)


def test_best_span_is_the_most_probable_valid_one(tokenizer):
    encoding = encode_windows(tokenizer, [QUESTION], [CONTEXT], max_length=WINDOW, stride=STRIDE, pad=True)
    length = len(encoding["input_ids"][0])
    first = context_tokens(encoding, 0)[0]
    # The most likely start (first+10) lies after the most likely end (first+1): no span.
    # The question's tokens and [CLS] score higher still, but are not the context.
    start = _logits(length, {first + 10: 6.0, first + 2: 5.0, 0: 9.0, 1: 9.0})
    end = _logits(length, {first + 1: 6.0, first + 4: 5.0, 0: 9.0, 2: 9.0})
    span = best_span(encoding, [(start, end)], CONTEXT, [0])
    offsets = encoding["offset_mapping"][0]
    assert span.text == CONTEXT[offsets[first + 2][0]:offsets[first + 4][1]]
    assert span.score == pytest.approx(_softmax_at(start, first + 2) * _softmax_at(end, first + 4))


def test_best_span_looks_at_every_window_of_the_example(tokenizer):
    encoding = encode_windows(tokenizer, [QUESTION], [CONTEXT], max_length=WINDOW, stride=STRIDE, pad=True)
    windows = list(range(len(encoding["input_ids"])))
    length = len(encoding["input_ids"][0])
    features = training_features(tokenizer, [ROW], max_length=WINDOW, stride=STRIDE)
    answer_window = next(w for w, s in enumerate(features["start_positions"]) if s)
    logits = [(_logits(length, {}), _logits(length, {})) for _ in windows]
    a, b = features["start_positions"][answer_window], features["end_positions"][answer_window]
    logits[answer_window] = (_logits(length, {a: 8.0}), _logits(length, {b: 8.0}))
    first = context_tokens(encoding, 0)[0]
    # A guess in the first window, less sure (its start is split between two tokens): score 0.5.
    logits[0] = (_logits(length, {first: 3.0, first + 1: 3.0}), _logits(length, {first + 1: 3.0}))
    assert best_span(encoding, logits, CONTEXT, windows).text == "Maria Lopez"


def test_best_span_never_exceeds_max_answer_tokens(tokenizer):
    encoding = encode_windows(tokenizer, [QUESTION], [CONTEXT], max_length=128, stride=STRIDE, pad=True)
    length = len(encoding["input_ids"][0])
    first = context_tokens(encoding, 0)[0]
    too_far, longest = first + MAX_ANSWER_TOKENS, first + MAX_ANSWER_TOKENS - 1
    assert too_far in context_tokens(encoding, 0)
    # The most probable end would make a span one token too long; the next best end is allowed.
    start, end = _logits(length, {first: 8.0}), _logits(length, {too_far: 8.0, longest: 4.0})
    span = best_span(encoding, [(start, end)], CONTEXT, [0])
    offsets = encoding["offset_mapping"][0]
    assert span.text == CONTEXT[offsets[first][0]:offsets[longest][1]]
    assert len(tokenizer(span.text, add_special_tokens=False)["input_ids"]) == MAX_ANSWER_TOKENS
