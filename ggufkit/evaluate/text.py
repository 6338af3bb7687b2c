"""The evaluation text: a file the user names, or one every Python install already holds."""

from __future__ import annotations

from pathlib import Path

from ggufkit.fsutil import read_text

MAX_TEXT_BYTES = 64 << 20  # wikitext-2's test split is 1.3 MB; a novel is a few MB
DEFAULT_TEXT_NAME = "pydoc_data.topics (the Python language reference's help topics, part of every CPython)"


def load_text(path: Path | None) -> tuple[str, str]:
    """(text, where it came from). Without a file: the help topics `pydoc` shows, about 465k characters,
    read from the running Python at run time (never copied into the repository)."""
    if path is not None:
        return read_text(path, "text", MAX_TEXT_BYTES), str(path)
    from pydoc_data import topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics)), DEFAULT_TEXT_NAME
