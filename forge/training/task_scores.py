"""A trained model's scores on its task's eval split: SQuAD exact match / token F1, ROUGE-1/2/L.

SQuAD metrics are ours, in pure Python, and follow the official v1.1 evaluation
script (normalisation, max over references, corpus scores as percentages). ROUGE
comes from the `rouge_score` library, without stemming, as F1 in [0, 1].
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


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


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over prediction/reference pairs, each in [0, 1].

    Computed by Google's `rouge_score` (the reference implementation), without stemming.
    """
    # Imported here: it brings nltk and numpy, which importing this module must not.
    from rouge_score.rouge_scorer import RougeScorer

    _check_pairs(predictions, references)
    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = RougeScorer(list(kinds), use_stemmer=False)
    pairs = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references)]
    # float(): rouge_score gives an int 0 for an empty text's ROUGE-L.
    return {kind: float(sum(pair[kind].fmeasure for pair in pairs) / len(pairs)) for kind in kinds}
