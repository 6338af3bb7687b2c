"""The one exception family the core raises; the CLI turns it into one line and an exit code."""

from __future__ import annotations

import os
from collections.abc import Iterable

# Documented exit codes (README "Exit codes").
EXIT_FAILURE = 1  # the work failed (llama.cpp refused or crashed, a batch had failures, I/O error)
EXIT_BAD_INPUT = 2  # usage error or an input file that is not what it claims to be
EXIT_REGRESSION = 3  # `bench --baseline`: a figure got slower than the allowed regression
EXIT_INTERRUPTED = 130  # Ctrl-C


class GgufkitError(Exception):
    """An error meant for the user: a human message, optionally about one file."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class BadInputError(GgufkitError):
    """The input file (or an argument) is malformed, unsupported or inconsistent."""

    exit_code = EXIT_BAD_INPUT


class LlamaFailure(GgufkitError):
    """llama.cpp refused the work or died doing it."""

    exit_code = EXIT_FAILURE


class Interrupted(GgufkitError):
    """Ctrl-C ended the work (what was completed has been reported)."""

    exit_code = EXIT_INTERRUPTED


def did_you_mean(word: str, names: Iterable[str], n: int = 3) -> str:
    """` (did you mean a, b?)` for the names closest to a misspelled `word`, or '' if none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(names), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""
