"""Stop sequences on streamed text: nothing at or after a stop is ever sent, nothing before it is lost."""

from __future__ import annotations

import pytest

from forge.modeling.stop_strings import StopMatcher


def run(stops: list[str], pieces: list[str]) -> tuple[list[str], bool]:
    matcher = StopMatcher(stops)
    sent = [matcher.feed(piece) for piece in pieces]
    sent.append(matcher.flush())
    return [s for s in sent if s], matcher.stopped


def test_text_without_a_stop_passes_whole():
    sent, stopped = run(["###"], ["Hello", " world", "!"])
    assert "".join(sent) == "Hello world!" and not stopped


@pytest.mark.parametrize("pieces", [["7 ###", " more"], ["7 #", "##", " more"], ["7 ", "#", "#", "#x"]])
def test_a_stop_split_over_pieces_is_cut_before_it(pieces: list[str]):
    sent, stopped = run(["###"], pieces)
    assert "".join(sent) == "7 " and stopped


def test_a_partial_stop_that_does_not_complete_is_sent_after_all():
    sent, stopped = run(["###"], ["a #", "# b"])
    assert "".join(sent) == "a ## b" and not stopped
    # Held back only while it could still become the stop:
    assert sent[0] == "a "


def test_the_earliest_of_several_stops_wins():
    sent, stopped = run(["\n\n", "END"], ["one END two\n\nthree"])
    assert "".join(sent) == "one " and stopped


def test_nothing_is_sent_after_a_stop():
    matcher = StopMatcher(["x"])
    assert matcher.feed("abxcd") == "ab"
    assert matcher.feed("more") == "" and matcher.flush() == ""
