"""A small byte-level BPE vocabulary trained here, for sample models of the BPE families.

Real GPT-2-style vocabularies are too big for tests (and none can be downloaded here), so the sample
maker trains one on a built-in mixed text (English, code, Cyrillic, CJK, emoji): every single byte
is a token (any text tokenizes), then merges in rank order — token id order = merge rank, as in
GPT-2's own vocabulary, which is what converting without --metadata-dir relies on.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

CORPUS = """Hello world! Hello there, the world is wide. Hello again, world.
The quick brown fox jumps over the lazy dog. The model reads the file and writes the token.
def main(args):
    for i in range(10):
        print("hello", i)
    return 0
int main(void) { return printf("%d\\n", 42); }
Привет, мир! Как дела? Модель читает файл. Привет мир.
你好，世界。模型读取文件。世界你好。
こんにちは世界
🙂 🚀 👍 emoji 🙂🙂
""" * 3

# GPT-2's pre-tokenizer, approximated with the re module (no \\p classes): contractions, words,
# numbers, punctuation runs, spaces
SPLIT = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+")


@functools.lru_cache(maxsize=8)
def train(n_merges: int) -> tuple[tuple[bytes, bytes], ...]:
    """Merges (left, right) in rank order: the most frequent adjacent pair first, ties by bytes."""
    words = Counter(tuple(bytes([b]) for b in w.encode()) for w in SPLIT.findall(CORPUS))
    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < n_merges:
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        joined = best[0] + best[1]
        new: Counter[tuple[bytes, ...]] = Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += n
        words = new
    return tuple(merges)


def byte_order() -> list[int]:
    """GPT-2's first 256 ids: the bytes in bytes_to_unicode's order (printable ranges first)."""
    from ggufkit.converters.bpe import byte_encoder

    enc = byte_encoder()
    return sorted(range(256), key=lambda b: ord(enc[b]))


def build(n_vocab: int, head: list[bytes], tail: list[bytes] = ()) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """`head` specials, the 256 bytes, merges up to n_vocab, then `tail` specials; and the merges used."""
    n_merges = n_vocab - len(head) - 256 - len(tail)
    merges = list(train(n_merges))
    tokens = [*head, *(bytes([b]) for b in byte_order()), *(a + b for a, b in merges)]
    seen = set(tokens)
    assert len(seen) == len(tokens), "a merge result repeats a token"
    while len(tokens) < n_vocab - len(tail):  # the corpus ran out of pairs: pad as the converters did
        tokens.append(f"<pad{len(tokens)}>".encode())
    return [*tokens, *tail], merges
