"""A trained model's task scores (SQuAD EM/F1, ROUGE) against values worked out by hand."""

from __future__ import annotations

import pytest

from forge.training.task_scores import (
    exact_match,
    normalize_answer,
    rouge_scores,
    squad_scores,
    token_f1,
)


def approx(value: float):
    return pytest.approx(value, abs=1e-4)


# --- SQuAD -------------------------------------------------------------------


def test_normalize_answer():
    assert normalize_answer("The Cat!") == "cat"
    assert normalize_answer("  An   apple,\tplease. ") == "apple please"
    # Articles go only as whole words: "theater", "banana" and "another" keep theirs.
    assert normalize_answer("The theater") == "theater"
    assert normalize_answer("a banana and another") == "banana and another"


def test_exact_match_normalises():
    assert exact_match("The Cat!", "cat") == 1.0
    assert exact_match("an apple", "apple") == 1.0
    assert exact_match("theater", "ater") == 0.0  # "the" inside a word is kept
    assert exact_match("cats", "cat") == 0.0


def test_exact_match_takes_the_best_reference():
    assert exact_match("Paris", ["London", "paris."]) == 1.0
    assert exact_match("Rome", ["London", "paris."]) == 0.0


def test_token_f1_partial_overlap():
    # pred [quick, brown, fox], ref [quick, red, fox, jumps]: overlap 2,
    # P=2/3, R=2/4 -> F1 = 2*P*R/(P+R) = (2/3)/(7/6) = 4/7 = 0.5714
    assert token_f1("the quick brown fox", "a quick red fox jumps") == approx(0.5714)


def test_token_f1_clips_repeated_tokens():
    # pred [cat, cat, cat], ref [cat, dog]: overlap min(3,1)=1,
    # P=1/3, R=1/2 -> F1 = 2*(1/6)/(5/6) = 0.4
    assert token_f1("cat cat cat", "cat dog") == approx(0.4)


def test_token_f1_takes_the_best_reference():
    # vs "slow dog": overlap 0 -> 0; vs "brown fox": overlap 2, P=2/3, R=2/2
    # -> F1 = 2*(2/3)*1/(5/3) = 0.8; max = 0.8
    assert token_f1("quick brown fox", ["slow dog", "brown fox"]) == approx(0.8)


def test_token_f1_empty_answers():
    assert token_f1("", "") == 1.0
    assert token_f1("The.", "a") == 1.0  # both normalise to no tokens
    assert token_f1("", "cat") == 0.0
    assert token_f1("cat", "") == 0.0


def test_squad_scores_are_percentages():
    scores = squad_scores(
        ["The Cat!", "quick brown fox", "blue"],
        ["cat", ["slow dog", "brown fox"], "red"],
    )
    # EM: 1, 0, 0 -> 1/3*100 = 33.3333
    assert scores["exact_match"] == approx(33.3333)
    # F1: 1, 0.8 (see above), 0 -> 1.8/3*100 = 60.0
    assert scores["f1"] == approx(60.0)
    assert set(scores) == {"exact_match", "f1"}


def test_squad_scores_rejects_bad_input():
    with pytest.raises(ValueError):
        squad_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError):
        squad_scores([], [])


# --- ROUGE (rouge_score's, checked against hand-worked values) -------------------------------


def rouge(prediction: str, reference: str) -> dict[str, float]:
    return rouge_scores([prediction], [reference])


# Repeated words: pred [the, cat, the, cat, sat] (5),
# ref [the, cat, sat, on, the, mat] (6).
CLIP_PRED, CLIP_REF = "The cat, the cat sat.", "the cat sat on the mat"
# Same words, different order: pred [the, gunman, killed, police], ref [police, killed, the, gunman].
ORDER_PRED, ORDER_REF = "the gunman killed police", "Police killed the gunman"


def test_rouge_with_repeated_words_clips_counts():
    scores = rouge(CLIP_PRED, CLIP_REF)
    # unigrams: the min(2,2)=2, cat min(2,1)=1, sat 1 -> overlap 4,
    # P=4/5, R=4/6 -> F1 = (16/15)/(22/15) = 8/11 = 0.7273
    assert scores["rouge1"] == approx(0.7273)
    # bigrams pred {the cat:2, cat the:1, cat sat:1} (4), ref {the cat, cat sat, sat on,
    # on the, the mat} (5): overlap min(2,1)+1 = 2, P=2/4, R=2/5 -> F1 = (2/5)/(9/10) = 4/9 = 0.4444
    assert scores["rouge2"] == approx(0.4444)
    # LCS "the cat sat" = 3, P=3/5, R=3/6 -> F1 = (3/5)/(11/10) = 6/11 = 0.5455
    assert scores["rougeL"] == approx(0.5455)


def test_rouge_l_differs_from_rouge1_on_word_order():
    scores = rouge(ORDER_PRED, ORDER_REF)
    # every unigram matches: P=R=4/4 -> 1.0
    assert scores["rouge1"] == approx(1.0)
    # bigrams: only "the gunman" shared, P=R=1/3 -> F1 = 0.3333
    assert scores["rouge2"] == approx(0.3333)
    # LCS "the gunman" = 2, P=R=2/4 -> F1 = 0.5
    assert scores["rougeL"] == approx(0.5)
    # "dog bites man" vs "man bites dog": LCS 1, P=R=1/3 -> 0.3333; no shared bigram -> 0
    assert rouge("dog bites man", "man bites dog")["rougeL"] == approx(0.3333)
    assert rouge("dog bites man", "man bites dog")["rouge2"] == 0.0


def test_rouge_l_is_symmetric_in_length():
    # LCS [a, c, e] = 3 either way round; P=3/3, R=3/6 -> F1 = 1/(3/2) = 0.6667
    assert rouge("a c e", "a b c d e f")["rougeL"] == approx(0.6667)
    assert rouge("a b c d e f", "a c e")["rougeL"] == approx(0.6667)


def test_rouge_tokenises_on_alphanumerics():
    assert rouge("Hello, WORLD! 42-times", "hello world 42 times") == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_rouge_identical_and_disjoint():
    text = "the quick brown fox jumps over the lazy dog"
    assert rouge(text, text) == {"rouge1": approx(1.0), "rouge2": approx(1.0), "rougeL": approx(1.0)}
    assert rouge("red green blue", "cat dog") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_empty_scores_zero():
    # No tokens on either side (both included) scores 0.0: there is nothing to match.
    for pred, ref in [("", "cat"), ("cat", ""), ("", ""), ("!!", "...")]:
        scores = rouge(pred, ref)
        assert scores == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
        assert all(type(value) is float for value in scores.values())
    assert rouge("cat", "cat")["rouge2"] == 0.0  # a single token has no bigram


def test_rouge_scores_means_over_pairs():
    scores = rouge_scores([CLIP_PRED, ORDER_PRED], [CLIP_REF, ORDER_REF])
    # rouge1: (8/11 + 1)/2 = 19/22 = 0.8636
    assert scores["rouge1"] == approx(0.8636)
    # rouge2: (4/9 + 1/3)/2 = 7/18 = 0.3889
    assert scores["rouge2"] == approx(0.3889)
    # rougeL: (6/11 + 1/2)/2 = 23/44 = 0.5227
    assert scores["rougeL"] == approx(0.5227)
    assert set(scores) == {"rouge1", "rouge2", "rougeL"}


def test_rouge_scores_rejects_bad_input():
    with pytest.raises(ValueError):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError):
        rouge_scores([], [])
