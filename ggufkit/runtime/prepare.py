"""Before llama.cpp sees a model: convert legacy files (cached), and read the GGUF with our own reader.

A truncated or malformed file stops here with a one-line BadInputError; llama.cpp only ever opens a file
whose header and tensor table our bounded reader accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import StringArray
from ggufkit.formats.gguf_file import GgufFile


@dataclass
class PreparedModel:
    source: Path  # what the user named
    path: Path  # the GGUF llama.cpp opens (a cached conversion for GGJT v3)
    gguf: GgufFile

    @property
    def chat_template(self) -> str | None:
        t = self.gguf.kv.get(Keys.Tokenizer.CHAT_TEMPLATE)
        return t if isinstance(t, str) and t.strip() else None

    def token_text(self, key: str) -> str:
        """The text of the special token whose id is stored under `key` (e.g. Keys.Tokenizer.BOS_ID)."""
        tokens = self.gguf.kv.get(Keys.Tokenizer.LIST)
        tid = self.gguf.kv.get(key)
        if isinstance(tokens, (list, StringArray)) and isinstance(tid, int) and 0 <= tid < len(tokens):
            return str(tokens[tid])
        return ""


def prepare_model(path: Path, on_notice: Callable[[str], None] | None = None) -> PreparedModel:
    from ggufkit.converters.cache import open_as_gguf

    gguf_path, g = open_as_gguf(path, on_notice)
    if g.architecture is None:
        raise BadInputError("GGUF file has no general.architecture: not a model llama.cpp can run", path)
    if not g.tensors:
        raise BadInputError("GGUF file holds no tensors (a vocabulary-only file?)", path)
    if not isinstance(g.kv.get(Keys.Tokenizer.LIST), (list, StringArray)):
        raise BadInputError("GGUF file has no tokenizer vocabulary", path)
    return PreparedModel(path, gguf_path, g)
