"""Evaluation metrics computed on eval splits: SQuAD exact match / token F1 and ROUGE-1/2/L.

Pure Python (stdlib only) so the API process can score generations without
importing numpy or torch. SQuAD metrics follow the official v1.1 evaluation
script (normalisation, max over references, corpus scores as percentages);
ROUGE follows `rouge_score` without stemming and reports F1 in [0, 1].
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD v1.1)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _as_list(references: str | Sequence[str]) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("at least one reference is required")
    return refs


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_ref
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, references: str | list[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0."""
    pred = normalize_answer(prediction)
    return max(float(pred == normalize_answer(ref)) for ref in _as_list(references))


def _single_token_f1(pred_tokens: list[str], ref_tokens: list[str]) -> float:
    # As in SQuAD v2.0: an empty answer only matches an empty answer.
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    return _f1(overlap, len(pred_tokens), len(ref_tokens))


def token_f1(prediction: str, references: str | list[str]) -> float:
    """SQuAD token-level F1 over normalised tokens, the max over references."""
    pred_tokens = normalize_answer(prediction).split()
    return max(
        _single_token_f1(pred_tokens, normalize_answer(ref).split())
        for ref in _as_list(references)
    )


def _check_pairs(predictions: Sequence[object], references: Sequence[object]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references"
        )
    if not predictions:
        raise ValueError("no predictions to score")


def squad_scores(
    predictions: list[str], references: list[str | list[str]]
) -> dict[str, float]:
    """Mean exact match and token F1 over examples, as percentages (0-100) like the SQuAD script."""
    _check_pairs(predictions, references)
    n = len(predictions)
    em = sum(exact_match(p, r) for p, r in zip(predictions, references))
    f1 = sum(token_f1(p, r) for p, r in zip(predictions, references))
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}


def _rouge_tokens(text: str) -> list[str]:
    return _NON_ALNUM.sub(" ", text.lower()).split()


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(prediction: str, reference: str, n: int) -> float:
    """ROUGE-N F1 on n-gram multiset overlap, each count clipped to the other side's."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    pred, ref = _ngrams(_rouge_tokens(prediction), n), _ngrams(_rouge_tokens(reference), n)
    # No n-grams on either side (empty text, or shorter than n) scores 0.0, even when
    # both are empty: there is nothing to match, and this is what rouge_score reports.
    if not pred or not ref:
        return 0.0
    overlap = sum((pred & ref).values())
    return _f1(overlap, sum(pred.values()), sum(ref.values()))


def _lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a  # keep the DP row as long as the shorter sequence
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j-1] of the previous row
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 from the longest common subsequence of tokens."""
    pred, ref = _rouge_tokens(prediction), _rouge_tokens(reference)
    # Empty on either side (both included) scores 0.0, as in rouge_n.
    if not pred or not ref:
        return 0.0
    return _f1(_lcs_length(pred, ref), len(pred), len(ref))


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over prediction/reference pairs, each in [0, 1]."""
    _check_pairs(predictions, references)
    n = len(predictions)
    pairs = list(zip(predictions, references))
    return {
        "rouge1": sum(rouge_n(p, r, 1) for p, r in pairs) / n,
        "rouge2": sum(rouge_n(p, r, 2) for p, r in pairs) / n,
        "rougeL": sum(rouge_l(p, r) for p, r in pairs) / n,
    }
