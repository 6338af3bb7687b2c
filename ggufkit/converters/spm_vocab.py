"""Vocabulary text as pre-GGUF convert.py wrote it, and as GGUF (SentencePiece "llama" model) wants it.

Legacy files hold SentencePiece pieces with U+2581 turned into ASCII spaces, byte pieces as the raw
byte, the unknown piece as " \u2047 ", control pieces as empty text, and tokens added beyond the
SentencePiece model as plain UTF-8 with score -1000. GGUF keeps the pieces themselves plus a type.
"""

from __future__ import annotations

from gguf.constants import TokenType

SPACE = b" "
SPM_SPACE = "\u2581".encode()
LEGACY_UNK_TEXT = " \u2047 ".encode()
ADDED_TOKEN_SCORE = -1000.0
FIRST_BYTE_ID, LAST_BYTE_ID = 3, 258  # LLaMA's SentencePiece model puts <0x00>..<0xFF> here
SPECIAL_TEXT = {0: b"<unk>", 1: b"<s>", 2: b"</s>"}
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


def legacy_to_gguf(vocab: list[tuple[bytes, float]], has_scores: bool = True
                   ) -> tuple[list[bytes], list[float], list[int]]:
    """(text, score) pairs from a legacy file -> GGUF tokens, scores and token types.

    Unversioned GGML files hold no scores, and llama.cpp's SentencePiece tokenizer merges by score: all
    zeros would tokenize differently from the model's own tokenizer. LLaMA's pieces are numbered in the
    order of its BPE merges, and its scores are minus that rank, so -(id - 259) for normal pieces
    gives back the merge order that llama.cpp needs.
    """
    if not has_scores:
        vocab = [(text, -float(i - LAST_BYTE_ID - 1) if i > LAST_BYTE_ID else 0.0) for i, (text, _) in enumerate(vocab)]
    added_from = len(vocab)
    while added_from > LAST_BYTE_ID + 1 and vocab[added_from - 1][1] == ADDED_TOKEN_SCORE:
        added_from -= 1
    tokens, scores, types = [], [], []
    for i, (text, score) in enumerate(vocab):
        if i in SPECIAL_TEXT:
            text, tt = SPECIAL_TEXT[i], TokenType.UNKNOWN if i == UNK_ID else TokenType.CONTROL
        elif i >= added_from:
            tt = TokenType.USER_DEFINED
        elif not text:
            tt = TokenType.CONTROL
        elif FIRST_BYTE_ID <= i <= LAST_BYTE_ID and len(text) == 1:
            text, tt = f"<0x{text[0]:02X}>".encode(), TokenType.BYTE
        else:
            text, tt = text.replace(SPACE, SPM_SPACE), TokenType.NORMAL
        tokens.append(text)
        scores.append(score)
        types.append(int(tt))
    return tokens, scores, types


def gguf_to_legacy(tokens: list[bytes], scores: list[float], types: list[int]) -> list[tuple[bytes, float]]:
    """The inverse, as the pre-GGUF convert.py wrote a SentencePiece vocabulary."""
    out = []
    for text, score, tt in zip(tokens, scores, types):
        if tt == TokenType.UNKNOWN:
            text = LEGACY_UNK_TEXT
        elif tt == TokenType.CONTROL:
            text = b""
        elif tt == TokenType.BYTE:
            text = bytes([int(text[3:-1], 16)])
        elif tt == TokenType.USER_DEFINED:
            score = ADDED_TOKEN_SCORE
        else:
            text = text.replace(SPM_SPACE, SPACE)
        out.append((text, float(score)))
    return out
