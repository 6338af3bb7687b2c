"""A generated SentencePiece-style vocabulary that llama.cpp's SPM tokenizer can really use.

llama.cpp's SPM tokenizer starts from single characters and merges adjacent pieces while the merged
text is itself a piece; so every multi-character piece here has its prefix one character shorter in
the vocabulary too (prefix closure), which makes every piece reachable.
"""

from __future__ import annotations

import random
import string

from gguf.constants import TokenType

SPM_SPACE = "\u2581"
WORDS = (
    "hello world the of and to in is was he for it with as his on be at by that had from this not are but "
    "or have an they which one you were her all she there would their we him been has when who "
    "will more no if out so said what up its about into than them can only other new some time "
    "could these two may then do first any my now such like our over man me even most made after "
    "also did many before must through back years where much your way well down should because "
    "each just those people how too little state good very make world still own see men work long "
    "get here between both life being under never day same another know while last might us great "
    "old year off come since against go came right used take three llama model file token"
).split()
CONSONANTS = "bcdfghjklmnprstvwz"
VOWELS = "aeiou"
PAD_TOKEN = "<pad>"


def build_vocab(n_vocab: int, seed: int = 0) -> tuple[list[str], list[float], list[int]]:
    """tokens, scores, token types: <unk> <s> </s>, 256 byte pieces, normal pieces, one added <pad>."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    n_normal = n_vocab - len(tokens) - 1
    if n_normal < 200:
        raise ValueError(f"n_vocab {n_vocab} is too small for a usable vocabulary")
    pieces: dict[str, None] = {}

    def add_word(word: str) -> None:
        for prefix in (SPM_SPACE, ""):
            for k in range(1, len(word) + 1):
                if len(pieces) < n_normal:
                    pieces.setdefault(prefix + word[:k])

    pieces.setdefault(SPM_SPACE)
    for word in WORDS[:3]:
        add_word(word)
    for ch in string.ascii_letters + string.digits + string.punctuation:
        pieces.setdefault(ch)
        pieces.setdefault(SPM_SPACE + ch)
    for word in WORDS[3:]:
        add_word(word)
    rng = random.Random(seed)
    while len(pieces) < n_normal:
        syllables = rng.randint(1, 3)
        add_word("".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syllables)))
    normal = list(pieces)[:n_normal]
    tokens += normal + [PAD_TOKEN]
    types += [TokenType.NORMAL] * len(normal) + [TokenType.USER_DEFINED]
    scores = [0.0] * 259 + [-float(i) for i in range(len(normal))] + [-1000.0]
    return tokens, scores, [int(t) for t in types]
