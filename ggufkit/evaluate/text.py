"""The evaluation text: a file the user names, or one every Python install already holds; and its chunks,
cut as llama-perplexity and llama-imatrix cut them (eval and imatrix share them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ggufkit.errors import BadInputError
from ggufkit.fsutil import read_text

if TYPE_CHECKING:
    from ggufkit.runtime.model import Model, Vocabulary

T = TypeVar("T")

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


def cut_text(model: Model | Vocabulary, text: str, ctx: int, max_chunks: int | None) -> TextChunks:
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


def cut_while_loading(path: Path, text: str, ctx: int, max_chunks: int | None,
                      load: Callable[[], T], close: Callable[[T], None]) -> tuple[T, TextChunks]:
    """`load()` (the weights: a second or more for a 7B on a GPU) run in a thread while this one tokenizes
    the text with the file's vocabulary alone (llama-perplexity and llama-imatrix do one after the other; a
    long text takes ~0.3 s). The same tokenizer on the same vocabulary: the same tokens. ctypes lets go of
    the GIL in both C calls. Whatever fails, nothing is left open: `close` gets what `load` returned."""
    from concurrent.futures import ThreadPoolExecutor

    from ggufkit.runtime.model import open_vocabulary

    with open_vocabulary(path) as vocab, ThreadPoolExecutor(1, thread_name_prefix="load") as pool:
        # the vocabulary first, alone: two loads at once would mix their lines in llama.cpp's log
        loading = pool.submit(load)
        try:
            chunks = cut_text(vocab, text, ctx, max_chunks)
            return loading.result(), chunks
        except BaseException:  # the text refused, the load failed, or Ctrl-C while either ran
            try:
                close(loading.result())
            except Exception:  # noqa: BLE001 - the load failed: that is the error raised here
                pass
            raise
