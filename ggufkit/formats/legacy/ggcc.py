"""ggllm.cpp's GGCC container (Falcon, cmp-nct/ggllm.cpp 78ac350b, libfalcon.cpp:787-1050).

Magic 'ggcc', u32 version 10 (its numbering started at 10), the family's u32 hparams followed by
n_bpe_merges, the vocabulary (u32 length, bytes, f32 score), the merge count again and the merges
(two length-prefixed byte strings each, in Hugging Face's byte-level form, e.g. "Ġ" + "t"), then
GGJT-style tensor records with data aligned to 32 bytes from the start of the file. The reading
itself is ggml.py's; this module holds what only GGCC has.
"""

from __future__ import annotations

from ggufkit.formats.cursor import Cursor

MAGIC = 0x67676363
VERSIONS = (10,)
MAX_MERGES = 1 << 22
MAX_MERGE_BYTES = 1 << 12


def read_merge_count(cur: Cursor) -> int:
    """The n_bpe_merges hparam, right after the family's hparams."""
    return cur.count(cur.u32("hparam n_bpe_merges"), 8, "merge count", limit=MAX_MERGES)


def read_merges(cur: Cursor, n_merges: int) -> list[tuple[bytes, bytes]]:
    again = cur.u32("merge count")
    if again != n_merges:
        raise cur.fail(f"merge count {again} differs from the header's {n_merges}")
    merges = []
    for i in range(n_merges):
        pair = []
        for side in ("left", "right"):
            n = cur.u32(f"length of merge {i} {side}")
            if not 0 < n <= MAX_MERGE_BYTES:
                raise cur.fail(f"merge {i} claims {n} bytes")
            pair.append(cur.read(n, f"merge {i}"))
        merges.append((pair[0], pair[1]))
    return merges
