"""Stop strings over streamed text: hold back only what might still turn into a stop string.

Incremental: each token's text is searched together with what was held back before it (at most the
longest stop string less one character), never the whole text so far. Most tokens end with a character
no stop string's beginning ends with, so nothing is held back after one set lookup.
"""

from __future__ import annotations


class StopFilter:
    def __init__(self, stops: tuple[str, ...] | list[str]):
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        # every proper beginning of a stop string, and the characters such a beginning ends with
        self._starts = {s[:n] for s in self.stops for n in range(1, len(s))}
        self._ends = {p[-1] for p in self._starts}
        self._longest = max(map(len, self._starts), default=0)

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show now, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        buf = self._held + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            return buf[:cut], True
        keep = 0
        if buf and buf[-1] in self._ends:  # the longest tail of buf that begins some stop string
            for n in range(min(self._longest, len(buf)), 0, -1):
                if buf[-n:] in self._starts:
                    keep = n
                    break
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """What was held back, once generation ended for another reason."""
        held, self._held = self._held, ""
        return held
