"""Checks across a GGUF file's keys and tensors that llama.cpp would otherwise trust (or assert on).

Structure (counts, lengths, offsets, types) is checked while reading; this module checks that the
pieces agree: unique tokens, vocabulary arrays of one length, special token ids inside the vocabulary, the
embedding matrix as wide as the vocabulary, head counts that divide, layers that exist.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import StringArray

if TYPE_CHECKING:
    from ggufkit.formats.gguf_file import GgufFile

_BLOCK = re.compile(r"^blk\.(\d+)\.")
_SPECIAL_IDS = (Keys.Tokenizer.BOS_ID, Keys.Tokenizer.EOS_ID, Keys.Tokenizer.UNK_ID, Keys.Tokenizer.SEP_ID,
                Keys.Tokenizer.PAD_ID, Keys.Tokenizer.MASK_ID)


def check_consistency(g: GgufFile) -> None:
    def bad(message: str) -> BadInputError:
        return BadInputError(message, g.path)

    tokens = g.kv.get(Keys.Tokenizer.LIST)
    n_vocab = len(tokens) if isinstance(tokens, (list, StringArray)) else None
    if n_vocab is not None:
        # llama.cpp reads token texts as C strings (cut at a NUL byte) and asserts they are unique
        dup = (StringArray.of(tokens) if isinstance(tokens, list) else tokens).first_c_repeat()
        if dup is not None:
            raise bad(f"token {dup} {tokens[dup]!r} appears twice in the vocabulary"
                      + (" (llama.cpp cuts it at its NUL byte)" if "\0" in tokens[dup] else ""))
        for key in (Keys.Tokenizer.SCORES, Keys.Tokenizer.TOKEN_TYPE):
            arr = g.kv.get(key)
            if arr is not None and len(arr) != n_vocab:
                raise bad(f"{key} has {len(arr)} entries for {n_vocab} tokens")
        for key in _SPECIAL_IDS:
            tid = g.kv.get(key)
            if isinstance(tid, int) and not isinstance(tid, bool) and not 0 <= tid < n_vocab:
                # -1 (0xFFFFFFFF as u32) conventionally means "none" in some converters
                if tid not in (-1, 0xFFFFFFFF):
                    raise bad(f"{key} is {tid}, outside the vocabulary of {n_vocab} tokens")
        embd = next((t for t in g.tensors if t.name == "token_embd.weight"), None)
        if embd is not None and len(embd.shape) >= 2 and embd.shape[1] != n_vocab:
            raise bad(f"token_embd.weight has {embd.shape[1]} rows for a vocabulary of {n_vocab} tokens")
    if g.architecture is None:
        return
    n_layer = g.arch_kv(Keys.LLM.BLOCK_COUNT)
    if isinstance(n_layer, int) and not isinstance(n_layer, bool):
        blocks = {int(m[1]) for t in g.tensors if (m := _BLOCK.match(t.name))}
        if blocks and max(blocks) >= n_layer:
            raise bad(f"tensor of layer {max(blocks)} in a model of {n_layer} layers")
        if g.architecture == "llama" and blocks and len(blocks) != n_layer:
            raise bad(f"{g.architecture}.block_count is {n_layer}, the file has tensors for {len(blocks)} layers")
    if g.architecture == "llama":
        n_embd = g.arch_kv(Keys.LLM.EMBEDDING_LENGTH)
        n_head = g.arch_kv(Keys.Attention.HEAD_COUNT)
        n_head_kv = g.arch_kv(Keys.Attention.HEAD_COUNT_KV, n_head)
        if isinstance(n_embd, int) and isinstance(n_head, int):
            if n_head <= 0 or n_embd % n_head:
                raise bad(f"head_count {n_head} does not divide embedding_length {n_embd}")
            if not isinstance(n_head_kv, int) or n_head_kv <= 0 or n_head % n_head_kv:
                raise bad(f"head_count_kv {n_head_kv} does not divide head_count {n_head}")
