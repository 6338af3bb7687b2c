"""Byte-level BPE vocabularies (GPT-2 style) as llama.cpp's "gpt2" tokenizer model wants them.

The ggml examples stored each token's raw bytes and no merges; llama.cpp wants the tokens in GPT-2's
byte-to-unicode form plus the merges. Merges come from, in this order: a Hugging Face tokenizer.json
(--metadata-dir; it also gives the exact tokens, which lossy files lack), the file itself (GGCC), or
are reconstructed from the vocabulary's order: in a byte-level BPE vocabulary token ids follow merge
ranks, so each multi-byte token is the merge of the two pieces that BPE, restricted to the merges of
lower rank, leaves of it (what converters from tiktoken-style vocabularies do).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from gguf.constants import TokenType

from ggufkit.errors import BadInputError
from ggufkit.families.base import Bpe
from ggufkit.fsutil import read_text

MAX_TOKENIZER_JSON = 64 << 20
SPECIAL = re.compile(rb"^(<\|[^|]*\|>|>>[A-Z0-9_]+<<)$")  # <|endoftext|>, Falcon's >>ABSTRACT<<


@functools.lru_cache(maxsize=1)
def byte_encoder() -> dict[int, str]:
    """GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def to_unicode(raw: bytes) -> str:
    enc = byte_encoder()
    return "".join(enc[b] for b in raw)


def from_unicode(text: str) -> bytes:
    dec = {v: k for k, v in byte_encoder().items()}
    return bytes(dec[c] for c in text)


def bpe_parts(piece: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Byte-level BPE of `piece` with the merges of rank below `max_rank` (lowest rank first)."""
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best, at = max_rank, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best:
                best, at = r, i
        if at < 0:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return parts


def reconstruct_merges(tokens: list[bytes], skip: set[int]) -> list[tuple[bytes, bytes]]:
    """Merges in rank (= token id) order, from the raw bytes of each token."""
    ranks: dict[bytes, int] = {}
    for i, t in enumerate(tokens):
        if i not in skip and t:
            ranks.setdefault(t, i)
    merges = []
    for t, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(t) < 2:
            continue
        parts = bpe_parts(t, ranks, rank)
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return merges


REPLACEMENT = "\ufffd".encode()


def recover_bytes(raw: list[bytes]) -> tuple[list[bytes], int]:
    """Give back the single-byte tokens a lossy converter stored as U+FFFD (bytes 0x80-0xFF have no text).

    A byte-level BPE vocabulary holds its 256 byte tokens in one run of ids, in the order of their
    byte-to-unicode characters. If the single-byte tokens still readable plus the U+FFFD tokens form
    such a run, and the readable ones sit where that order puts them, the U+FFFD ones are the rest.
    Returns the tokens and how many were recovered (0 when the vocabulary is not laid out so)."""
    order = sorted(range(256), key=lambda b: ord(byte_encoder()[b]))
    known = [i for i, t in enumerate(raw) if len(t) == 1]
    if not known:
        return raw, 0
    start = known[0] - order.index(raw[known[0]][0])
    if start < 0 or start + 256 > len(raw):
        return raw, 0
    run = raw[start:start + 256]
    if any(t != bytes([b]) and t != REPLACEMENT for t, b in zip(run, order)):
        return raw, 0
    out = list(raw)
    out[start:start + 256] = [bytes([b]) for b in order]
    return out, sum(t == REPLACEMENT for t in run)


@dataclass
class BpeVocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    bos: int
    eos: int
    sources: dict[str, str] = field(default_factory=dict)  # piece -> where it came from


def from_file(vocab: list[tuple[bytes, float]], merges: list[tuple[bytes, bytes]], spec: Bpe) -> BpeVocab:
    """Tokens from the file's texts; merges from the file if it has them, else reconstructed."""
    raw = [spec.decode(text) for text, _ in vocab]
    recovered = 0
    if spec.lossy:
        raw, recovered = recover_bytes(raw)
    bos, eos = spec.bos(raw), spec.eos(raw)
    special = {i for i, t in enumerate(raw) if i in (bos, eos) or SPECIAL.match(t)}
    tokens, types, seen, unused = [], [], set(), 0
    for i, t in enumerate(raw):
        text = t.decode("utf-8", "replace") if i in special else to_unicode(t)
        if not t or text in seen:
            # an id the tokenizer did not have (padded with "" or a repeat of the last token), or text a
            # lossy converter wrote for several tokens: llama.cpp needs every token text once
            tokens.append(f"[PAD{i}]" if not t else f"[UNUSED{i}]")
            types.append(int(TokenType.USER_DEFINED if not t else TokenType.UNUSED))
            unused += bool(t)
            continue
        seen.add(text)
        tokens.append(text)
        types.append(int(TokenType.CONTROL if i in special else TokenType.NORMAL))
    note = ""
    if spec.lossy:
        note = (f" (lossy: {spec.lossy}; {recovered} byte tokens recovered from their order, "
                f"{unused} repeated texts left unused)")
    elif unused:
        note = f" ({unused} repeated texts left unused)"
    sources = {"tokens": "file" + note, "special_tokens": "family default"}
    if merges:
        merge_text = [f"{a.decode('utf-8', 'replace')} {b.decode('utf-8', 'replace')}" for a, b in merges]
        sources["merges"] = f"file ({len(merge_text)})"
    else:
        merge_text = [f"{to_unicode(a)} {to_unicode(b)}" for a, b in reconstruct_merges(raw, special)]
        sources["merges"] = f"reconstructed from token order ({len(merge_text)})"
    return BpeVocab(tokens, types, merge_text, bos, eos, sources)


def from_tokenizer_json(folder: Path, n_vocab: int, fallback: BpeVocab) -> BpeVocab:
    """tokenizer.json's vocabulary and merges (ids beyond n_vocab dropped, missing ids kept from the file)."""
    path = folder / "tokenizer.json"
    try:
        data = json.loads(read_text(path, "tokenizer.json", MAX_TOKENIZER_JSON))
        model = data["model"]
        if model.get("type") != "BPE":
            raise BadInputError(f"not a BPE tokenizer ({model.get('type')}); this model needs byte-level BPE", path)
        vocab: dict[str, int] = model["vocab"]
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        added = data.get("added_tokens") or []
    except (ValueError, KeyError, TypeError) as e:
        raise BadInputError(f"not a Hugging Face tokenizer.json: {e}", path) from None
    tokens, types = list(fallback.tokens), list(fallback.types)
    for text, i in vocab.items():
        if isinstance(i, int) and 0 <= i < n_vocab:
            tokens[i], types[i] = text, int(TokenType.NORMAL)
    for a in added:
        i = a.get("id")
        if isinstance(i, int) and 0 <= i < n_vocab:
            tokens[i] = a.get("content", tokens[i])
            types[i] = int(TokenType.CONTROL if a.get("special") else TokenType.USER_DEFINED)
    sources = {**fallback.sources, "tokens": "tokenizer.json", "merges": f"tokenizer.json ({len(merges)})"}
    return BpeVocab(tokens, types, merges, fallback.bos, fallback.eos, sources)
