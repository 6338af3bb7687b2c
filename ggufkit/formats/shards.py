"""Split models: llama.cpp's shard names, and the whole model read from its first shard.

`llama-gguf-split` (and `convert_hf_to_gguf.py --split-max-size`, `llama-quantize --keep-split`) write a
model as PREFIX-00001-of-0000N.gguf ... Every shard holds `split.no` (0-based), `split.count` and
`split.tensors.count`; only the first holds the model's metadata. llama.cpp, given the first shard,
finds the others by name and checks little more than `split.no`: a missing, truncated or foreign shard
(another model's, another split's) is found here and named, before llama.cpp sees any of them.
"""

from __future__ import annotations

import re
from pathlib import Path

from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.formats.consistency import check_consistency
from ggufkit.formats.gguf_file import GgufFile, read_gguf

SPLIT_KEYS = (Keys.Split.LLM_KV_SPLIT_NO, Keys.Split.LLM_KV_SPLIT_COUNT, Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT)
_NAME = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def shard_path(prefix: str | Path, index: int, count: int) -> Path:
    """llama_split_path: PREFIX-0000i-of-0000n.gguf for the 0-based `index`."""
    return Path(f"{prefix}-{index + 1:05d}-of-{count:05d}.gguf")


def shard_prefix(path: str | Path) -> str | None:
    """The PREFIX of a shard's name (PREFIX-0000i-of-0000n.gguf), None if it is not named like one."""
    m = _NAME.search(str(path))
    return str(path)[: m.start()] if m else None


def output_prefix(path: Path) -> Path:
    """Where a split of `path` goes by default: beside it, named after it (a shard's PREFIX, NAME.gguf's NAME)."""
    prefix = shard_prefix(path)
    return Path(prefix) if prefix is not None else path.with_name(path.name.removesuffix(".gguf"))


def _u(g: GgufFile, key: str) -> int | None:
    v = g.kv.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def join(first: GgufFile) -> GgufFile:
    """The whole model of a split one, from its first shard (already read); every error names one shard."""
    n = first.split_count
    no = _u(first, Keys.Split.LLM_KV_SPLIT_NO)
    if no != 0:
        prefix = shard_prefix(first.path)
        hint = f": give the first shard, {shard_path(prefix, 0, n).name}" if prefix is not None else ""
        raise BadInputError(f"is shard {'?' if no is None else no + 1} of a model split in {n}{hint}", first.path)
    prefix = shard_prefix(first.path)
    if prefix is None or not first.path.endswith(shard_path("", 0, n).name):
        raise BadInputError(f"first shard of a model split in {n}, but not named PREFIX-00001-of-{n:05d}.gguf "
                            "(llama.cpp finds the other shards by that name)", first.path)
    total = _u(first, Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT)
    if total is None:
        raise BadInputError(f"split model without {Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT}", first.path)
    shards = [first]
    owner = {t.name: 1 for t in first.tensors}
    for i in range(1, n):
        path = shard_path(prefix, i, n)
        if not path.exists():
            raise BadInputError(f"shard {i + 1} of {n} is missing (the model was split in {n})", path)
        g = read_gguf(path, whole=False)
        _check_shard(g, i, n, total)
        for t in g.tensors:
            if t.name in owner:
                raise BadInputError(f"tensor {t.name!r} is also in shard {owner[t.name]}: a shard of another split?",
                                    path)
            owner[t.name] = i + 1
        shards.append(g)
    if len(owner) != total:
        raise BadInputError(f"the {n} shards hold {len(owner)} tensors, {Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT} "
                            f"says {total}", first.path)
    whole = GgufFile(first.path, first.version, first.kv, first.kv_types, [t for s in shards for t in s.tensors],
                     first.alignment, first.data_offset, sum(s.file_size for s in shards), shards)
    try:
        check_consistency(whole)
    except BadInputError as e:  # say which shard holds the tensor that disagrees with the first's metadata
        other = next((i for i, s in enumerate(shards[1:], 2) for t in s.tensors if t.name in e.message), None)
        where = f" (shard {other} of {n} holds it: a shard of another model?)" if other else ""
        raise BadInputError(e.message + where, first.path) from None
    return whole


def _check_shard(g: GgufFile, i: int, n: int, total: int) -> None:
    """Shard i (0-based) of n must say so, and count the tensors as the first does: else it is another model's."""
    got_no, got_n = _u(g, Keys.Split.LLM_KV_SPLIT_NO), g.split_count
    got_total = _u(g, Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT)
    if got_n != n:
        raise BadInputError(f"says it is one of {got_n or 'no'} shards, the first says {n}: "
                            "a shard of another model or another split", g.path)
    if got_no != i:
        raise BadInputError(f"says it is shard {'?' if got_no is None else got_no + 1}, expected {i + 1} of {n}", g.path)
    if got_total != total:
        raise BadInputError(f"says the model has {got_total} tensors, the first shard says {total}: "
                            "a shard of another model or another split", g.path)
