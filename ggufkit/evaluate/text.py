"""The evaluation text: a file the user names, or one every Python install already holds; and its chunks,
cut as llama-perplexity and llama-imatrix cut them (eval and imatrix share them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ggufkit.errors import BadInputError
from ggufkit.fsutil import read_text

if TYPE_CHECKING:
    from ggufkit.runtime.model import Model

MAX_TEXT_BYTES = 64 << 20  # wikitext-2's test split is 1.3 MB; a novel is a few MB
DEFAULT_TEXT_NAME = "pydoc_data.topics (the Python language reference's help topics, part of every CPython)"


def load_text(path: Path | None) -> tuple[str, str]:
    """(text, where it came from). Without a file: the help topics `pydoc` shows, about 465k characters,
    read from the running Python at run time (never copied into the repository)."""
    if path is not None:
        body = read_text(path, "text", MAX_TEXT_BYTES)
        if not body.strip():
            raise BadInputError("the text file is empty", path)
        return body, str(path)
    from pydoc_data import topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics)), DEFAULT_TEXT_NAME


def check_ctx(ctx: int) -> None:
    """Before any work: the chunk length both tools accept here (half of it is scored)."""
    if ctx < 16 or ctx % 2:
        raise BadInputError(f"--ctx must be an even number of at least 16 tokens, not {ctx}")


@dataclass
class TextChunks:
    """The text tokenized once (with BOS when the model adds one) and cut into chunks of `ctx` tokens; each
    chunk is decoded from an empty cache with its first token replaced by BOS (when the model adds one),
    and its second half is scored: position i predicts token i+1."""

    tokens: list[int]
    ctx: int
    count: int  # chunks to run
    total: int  # whole chunks the text holds
    add_bos: bool
    bos: int

    @property
    def first(self) -> int:
        return self.ctx // 2

    def chunk(self, i: int) -> list[int]:
        chunk = self.tokens[i * self.ctx:(i + 1) * self.ctx]
        return [self.bos, *chunk[1:]] if self.add_bos else chunk

    def targets(self, i: int) -> np.ndarray:
        """What positions first .. ctx-2 of chunk i predict (the text's own tokens)."""
        return np.array(self.tokens[i * self.ctx + self.first + 1:(i + 1) * self.ctx], dtype=np.int64)


def cut_text(model: Model, text: str, ctx: int, max_chunks: int | None) -> TextChunks:
    """Raises BadInputError when the text has fewer than two chunks' tokens (both tools' minimum)."""
    import llama_cpp as L

    tokens = model.tokenize(text, add_special=True)
    if len(tokens) < 2 * ctx:
        raise BadInputError(f"the text has {len(tokens)} tokens; a context of {ctx} needs at least {2 * ctx} "
                            "(llama-perplexity's and llama-imatrix's minimum): give a longer text or a smaller --ctx")
    total = len(tokens) // ctx
    count = total if max_chunks is None else max(1, min(total, max_chunks))
    return TextChunks(tokens, ctx, count, total, bool(L.llama_vocab_get_add_bos(model.vocab)),
                      L.llama_vocab_bos(model.vocab))
