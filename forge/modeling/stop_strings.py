"""Stop sequences on streamed text: emit what is certainly before a stop, hold back what may start one.

Pure Python, shared by every streamed generation (a stop may span several tokens,
so it is matched on text, not on token ids).
"""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Feed text pieces as they are generated; get back the part that is safe to send."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.stopped = False
        self._held = ""

    def feed(self, piece: str) -> str:
        """The text to send now; once a stop sequence appears, `stopped` is True and nothing more comes."""
        if self.stopped:
            return ""
        text = self._held + piece
        hits = [i for i in (text.find(stop) for stop in self.stops) if i >= 0]
        if hits:
            self.stopped, self._held = True, ""
            return text[:min(hits)]
        keep = self._partial_stop_length(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def flush(self) -> str:
        """What was held back when the text ends without a stop."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _partial_stop_length(self, text: str) -> int:
        """The longest end of `text` that is the beginning of some stop sequence."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
