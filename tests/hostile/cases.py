"""Hand-crafted hostile model files, each named for what it breaks.

Every builder takes the tiny F16 sample (GGUF and GGJT v3 bytes) and returns the bytes of one
malicious or malformed file. Together they cover what the bounded readers must check before any
count, length or offset is trusted.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gguf.constants import GGUFValueType as V

from tests.hostile.gguf_raw import RawGguf, RawTensor


@dataclass(frozen=True)
class Case:
    name: str
    breaks: str
    # (parsed GGUF sample, GGJT v3 sample bytes) -> the file's bytes, or a split model's shards (None: missing)
    build: Callable[[RawGguf, bytes], bytes | list[bytes | None]]
    describable: bool = False  # inspect shows it (a legacy file that is not LLaMA-shaped), every other command refuses
    given: int = 1  # a split model: the shard the commands are given (1: the first, as llama.cpp wants)
    # the commands (tests/test_hostile.py COMMANDS) it is run through; empty: all. A split model skips convert
    # (it refuses any GGUF before reading on) and bench (it reads through the same prepare_model as run).
    commands: tuple[str, ...] = ()

    def files(self, folder: Path, built: bytes | list[bytes | None]) -> list[Path]:
        """Where its file(s) go: NAME.bin, or a split model's NAME-0000i-of-0000n.gguf (missing ones too)."""
        if isinstance(built, bytes):
            return [folder / f"{self.name}.bin"]
        return [folder / f"{self.name}-{i:05d}-of-{len(built):05d}.gguf" for i in range(1, len(built) + 1)]


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _g(mutate: Callable[[RawGguf], None]) -> Callable[[RawGguf, bytes], bytes]:
    def build(raw: RawGguf, _legacy: bytes) -> bytes:
        r = RawGguf(list(raw.kv), [type(t)(t.name, list(t.dims), t.type, t.offset) for t in raw.tensors],
                    raw.data, raw.version, raw.alignment)
        mutate(r)
        return r.to_bytes()
    return build


def _tensor(r: RawGguf, name: str):
    return next(t for t in r.tensors if t.name == name)


def _legacy_field(offset: int, fmt: str, value: int) -> Callable[[RawGguf, bytes], bytes]:
    return lambda _raw, legacy: _patch(legacy, offset, fmt, value)


def _legacy_first_tensor(legacy: bytes) -> int:
    """Offset of the first tensor record of the GGJT sample (after magic, version, hparams, vocab)."""
    n_vocab = struct.unpack_from("<I", legacy, 8)[0]
    pos = 36
    for _ in range(n_vocab):
        pos += 4 + struct.unpack_from("<I", legacy, pos)[0] + 4
    return pos


def _legacy_tensor_field(index: int, fmt: str, value: int) -> Callable[[RawGguf, bytes], bytes]:
    return lambda _raw, legacy: _patch(legacy, _legacy_first_tensor(legacy) + index, fmt, value)


def _family(sample: str, type_name: str, offset: int | Callable[[bytes], int], fmt: str, value: int | float
            ) -> Callable[[RawGguf, bytes], bytes]:
    """A GGML-era family sample (ggufkit.samples.families) with one field overwritten."""
    def build(_raw: RawGguf, _legacy: bytes) -> bytes:
        import tempfile
        from pathlib import Path

        from ggufkit.samples.families import write_family_sample

        with tempfile.TemporaryDirectory() as d:
            data = write_family_sample(Path(d) / "s.bin", sample, type_name).read_bytes()
        return _patch_any(data, offset(data) if callable(offset) else offset, fmt, value)
    return build


def _patch_any(data: bytes, offset: int, fmt: str, value: int | float) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _ggcc_second_merge_count(data: bytes) -> int:
    """Offset of GGCC's repeated merge count: after magic, version, 7 hparams, n_merges and the vocabulary."""
    pos = 40
    for _ in range(struct.unpack_from("<I", data, 8)[0]):
        pos += 4 + struct.unpack_from("<I", data, pos)[0] + 4
    return pos


def _set_kv(key: str, vtype: int, value, sub=None) -> Callable[[RawGguf], None]:
    return lambda r: r.set(key, vtype, value, sub)


def _dims(name: str, dims: list[int]) -> Callable[[RawGguf], None]:
    def f(r: RawGguf) -> None:
        _tensor(r, name).dims = dims
    return f


def _ttype(name: str, t: int) -> Callable[[RawGguf], None]:
    def f(r: RawGguf) -> None:
        _tensor(r, name).type = t
    return f


def _offset(name: str, off: int | Callable[[RawGguf], int]) -> Callable[[RawGguf], None]:
    def f(r: RawGguf) -> None:
        _tensor(r, name).offset = off(r) if callable(off) else off
    return f


def _dup_tensor(r: RawGguf) -> None:
    r.tensors[1].name = r.tensors[0].name


def _dup_key(r: RawGguf) -> None:
    r.kv.append(r.kv[1])


def _nested(depth: int) -> Callable[[RawGguf], None]:
    def f(r: RawGguf) -> None:
        value = struct.pack("<IQB", V.UINT8, 1, 7)  # innermost: an array of one u8
        for _ in range(depth - 1):
            value = struct.pack("<IQ", V.ARRAY, 1) + value
        r.set("evil.nested", V.ARRAY, value)  # pre-encoded: an array of arrays of ... of u8
    return f


def _truncate(n: int) -> Callable[[RawGguf, bytes], bytes]:
    return lambda raw, _legacy: raw.to_bytes()[:n]


def _cut_tail(n: int) -> Callable[[RawGguf, bytes], bytes]:
    return lambda raw, _legacy: raw.to_bytes()[:-n]


def _tokens_minus_one(r: RawGguf) -> None:
    for key, sub in (("tokenizer.ggml.tokens", V.STRING), ("tokenizer.ggml.scores", V.FLOAT32),
                     ("tokenizer.ggml.token_type", V.INT32)):
        r.set(key, V.ARRAY, r.get(key)[:-1], sub)


def _drop_layer(r: RawGguf) -> None:
    r.set("llama.block_count", V.UINT32, 1)


def _shard_case(name: str, breaks: str, build: Callable[[RawGguf, bytes], bytes | list[bytes | None]],
                given: int = 1) -> Case:
    return Case(name, breaks, build, given=given, commands=("inspect", "quantize", "run"))


def split_raw(raw: RawGguf, cut: int, tensors: list[RawTensor] | None = None) -> list[RawGguf]:
    """The sample as a model split in two after `cut` tensors, as llama-gguf-split lays it out."""
    from ggufkit.formats.ggml_types import tensor_nbytes

    tensors = raw.tensors if tensors is None else tensors
    meta = [e for e in raw.kv if not e[0].startswith("split.")]
    shards = []
    for i, group in enumerate((tensors[:cut], tensors[cut:])):
        data, table = bytearray(), []
        for t in group:
            n = tensor_nbytes(t.type, tuple(t.dims), "", t.name)
            table.append(RawTensor(t.name, list(t.dims), t.type, len(data)))
            data += raw.data[t.offset:t.offset + n] + b"\0" * (-n % 32)
        kv = (list(meta) if i == 0 else []) + [("split.no", V.UINT16, None, i),
                                                ("split.tensors.count", V.INT32, None, len(tensors)),
                                                ("split.count", V.UINT16, None, 2)]
        shards.append(RawGguf(kv, table, bytes(data), raw.version, 32))
    return shards


def _shards(change: Callable[[list[RawGguf]], list[bytes | None] | None] | None = None, embd_last: bool = False
            ) -> Callable[[RawGguf, bytes], list[bytes | None]]:
    """A split model of the sample (token_embd.weight moved to the second shard if `embd_last`), changed."""
    def build(raw: RawGguf, _legacy: bytes) -> list[bytes | None]:
        tensors = raw.tensors[1:] + raw.tensors[:1] if embd_last else raw.tensors
        shards = split_raw(raw, 10, tensors)
        files = change(shards) if change is not None else None
        return files if files is not None else [s.to_bytes() for s in shards]
    return build


def _second(f: Callable[[RawGguf], None]) -> Callable[[list[RawGguf]], None]:
    return lambda shards: f(shards[1])


def _both(f: Callable[[RawGguf], None]) -> Callable[[list[RawGguf]], None]:
    return lambda shards: [f(s) for s in shards] and None


def _rename_second(shards: list[RawGguf]) -> None:
    shards[1].tensors[0].name = shards[0].tensors[0].name


def _other_vocabulary(shards: list[RawGguf]) -> None:
    _tensor(shards[1], "token_embd.weight").dims = [256, 500]


CASES: tuple[Case, ...] = (
    Case("gguf-bad-magic", "magic", lambda raw, _l: b"GGUX" + raw.to_bytes()[4:]),
    Case("gguf-version-99", "version", lambda raw, _l: _patch(raw.to_bytes(), 4, "<I", 99)),
    Case("gguf-big-endian", "byte order", lambda raw, _l: _patch(raw.to_bytes(), 4, ">I", 3)),
    Case("gguf-2^40-tensors", "tensor count vs file size", lambda raw, _l: _patch(raw.to_bytes(), 8, "<Q", 1 << 40)),
    Case("gguf-2^40-keys", "key/value count vs file size", lambda raw, _l: _patch(raw.to_bytes(), 16, "<Q", 1 << 40)),
    Case("gguf-2^60-key-length", "string length", lambda raw, _l: _patch(raw.to_bytes(), 24, "<Q", 1 << 60)),
    Case("gguf-2^60-string-value", "string value length", lambda raw, _l: _patch(
        raw.to_bytes(), _find_value_offset(raw, "general.name"), "<Q", 1 << 60)),
    Case("gguf-2^40-array-items", "array length", lambda raw, _l: _patch(
        raw.to_bytes(), _find_value_offset(raw, "tokenizer.ggml.tokens") + 4, "<Q", 1 << 40)),
    Case("gguf-nested-arrays", "array nesting depth", _g(_nested(12))),
    Case("gguf-value-type-99", "value type", lambda raw, _l: _patch(
        raw.to_bytes(), _find_value_offset(raw, "general.name") - 4, "<I", 99)),
    Case("gguf-9-dims", "tensor dimension count", _g(_dims("output_norm.weight", [256, 1, 1, 1, 1, 1, 1, 1, 1]))),
    Case("gguf-zero-dim", "tensor dimension 0", _g(_dims("output_norm.weight", [0]))),
    Case("gguf-dims-overflow", "element count overflow", _g(_dims("output.weight", [1 << 32, 1 << 32, 1 << 32, 16]))),
    Case("gguf-tensor-type-99", "tensor type", _g(_ttype("output.weight", 99))),
    Case("gguf-misaligned-offset", "data offset alignment", _g(_offset("output.weight", lambda r: _tensor(r, "output.weight").offset + 3))),
    Case("gguf-offset-past-end", "data offset inside the file", _g(_offset("output.weight", 1 << 50))),
    Case("gguf-overlapping-tensors", "tensors sharing bytes", _g(_offset("output.weight", lambda r: _tensor(r, "token_embd.weight").offset))),
    Case("gguf-duplicate-tensor", "tensor names unique", _g(_dup_tensor)),
    Case("gguf-duplicate-key", "keys unique", _g(_dup_key)),
    Case("gguf-alignment-3", "general.alignment a power of two", _g(_set_kv("general.alignment", V.UINT32, 3))),
    Case("gguf-vocab-vs-embedding", "vocabulary size = embedding rows", _g(_tokens_minus_one)),
    Case("gguf-bos-out-of-range", "special token ids inside the vocabulary", _g(_set_kv("tokenizer.ggml.bos_token_id", V.UINT32, 70000))),
    Case("gguf-heads-dont-divide", "head_count divides embedding_length", _g(_set_kv("llama.attention.head_count", V.UINT32, 3))),
    Case("gguf-layers-missing", "block_count matches the layers present", _g(_drop_layer)),
    Case("gguf-truncated-data", "tensor data inside the file", _cut_tail(1000)),
    Case("gguf-truncated-header", "header complete", _truncate(300)),
    Case("ggjt-2^31-vocab", "vocabulary size", _legacy_field(8, "<I", 1 << 31)),
    Case("ggjt-2^32-layers", "n_layer vs the tensors present", _legacy_field(24, "<I", 0xFFFFFFFF), describable=True),
    Case("ggjt-2^31-token-length", "token length", _legacy_field(36, "<I", 1 << 31)),
    Case("ggjt-0-dims", "tensor dimension count", _legacy_tensor_field(0, "<I", 0)),
    Case("ggjt-huge-name", "tensor name length", _legacy_tensor_field(4, "<I", 1 << 30)),
    Case("ggjt-q4_2-type", "removed tensor type", _legacy_tensor_field(8, "<I", 4)),
    Case("ggjt-dims-overflow", "tensor size vs file", _legacy_tensor_field(12, "<I", 0xFFFFFFFF)),
    Case("ggjt-truncated", "tensor data inside the file", lambda _raw, legacy: legacy[:-1000]),
    Case("ggjt1-k-quant-type", "tensor types of the file's era (no k-quants before GGJT v3)",
         lambda _raw, legacy: _patch(_patch(legacy, 4, "<I", 1), _legacy_first_tensor(legacy) + 8, "<I", 12)),
    Case("ggjt2-q4_3-type", "tensor types of the file's era (Q4_3 only before PR #1405)",
         lambda _raw, legacy: _patch(_patch(legacy, 4, "<I", 2), _legacy_first_tensor(legacy) + 8, "<I", 5)),
    Case("ggmf-unaligned", "GGMF records packed without GGJT's padding",
         lambda _raw, legacy: _patch(_patch(legacy, 0, "<I", 0x67676D66), 4, "<I", 1)),
    Case("ggml-without-version", "GGML header has no version field",
         lambda _raw, legacy: _patch(legacy, 0, "<I", 0x67676D6C)),
    Case("ggjt-half-width-embeddings", "multi-part claims (the first part of a model whose other parts are absent)",
         _legacy_tensor_field(12, "<I", 128)),
    Case("ggcc-2^31-merges", "GGCC merge count", _family("falcon7", "q4_0", 36, "<I", 1 << 31)),
    Case("ggcc-merge-count-differs", "GGCC repeated merge count", _family("falcon7", "f16", _ggcc_second_merge_count, "<I", 7)),
    Case("ggcc-version-11", "GGCC version", _family("falcon40", "f16", 4, "<I", 11)),
    Case("ggml-gpt2-vocab-count", "ggml examples' vocabulary count", _family("gpt2", "f16", 28, "<i", 511),
         describable=True),
    Case("ggml-neox-2^31-layers", "n_layer vs the tensors present", _family("gptneox", "q4_0", 20, "<i", 1 << 30),
         describable=True),
    Case("ggml-mpt-nan-alibi", "f32 hparams", _family("mpt", "f16", 24, "<f", float("nan")), describable=True),
    Case("ggml-starcoder-qnt-version-9", "quantization version", _family("starcoder", "q8_0", 24, "<i", 9007)),
    Case("rwkv-data-type-5", "rwkv.cpp's own type numbers", _family("rwkv", "f16", 32 + 4 + 4, "<I", 5)),
    Case("rwkv-2^31-dims", "rwkv tensor dimension count", _family("rwkv", "f16", 24, "<I", 1 << 31)),
    Case("empty-file", "anything at all", lambda _raw, _legacy: b""),
    # split models: the first shard is given, the others are found by name
    _shard_case("shard-missing", "every shard present", _shards(lambda s: [s[0].to_bytes(), None])),
    _shard_case("shard-truncated", "every shard complete",
                _shards(lambda s: [s[0].to_bytes(), s[1].to_bytes()[:-1000]])),
    _shard_case("shard-of-3", "split.count the same in every shard",
                _shards(_second(_set_kv("split.count", V.UINT16, 3)))),
    _shard_case("shard-numbered-0", "split.no of each shard", _shards(_second(_set_kv("split.no", V.UINT16, 0)))),
    _shard_case("shard-tensor-count", "split.tensors.count = the tensors the shards hold",
                _shards(_both(_set_kv("split.tensors.count", V.INT32, 22)))),
    _shard_case("shard-overlapping-tensors", "each tensor in one shard only", _shards(_rename_second)),
    _shard_case("shard-of-another-model", "the other shards' tensors fit the first's metadata",
                _shards(_other_vocabulary, embd_last=True)),
    _shard_case("shard-second-given", "the first shard given (llama.cpp loads from it)", _shards(), given=2),
    _shard_case("shard-unnamed", "a first shard named PREFIX-00001-of-0000N.gguf (llama.cpp finds the others by it)",
                lambda raw, _l: split_raw(raw, 10)[0].to_bytes()),
)


def _find_value_offset(raw: RawGguf, key: str) -> int:
    """Offset just after `key`'s type field, i.e. where its value starts."""
    data = raw.to_bytes()
    needle = struct.pack("<Q", len(key)) + key.encode()
    i = data.index(needle)
    return i + len(needle) + 4


# Importance-matrix files (ggufkit.imatrix.files): each builder takes a valid matrix of the tiny sample
# in both layouts (its GGUF parsed, its .dat bytes) and returns the bytes of one broken file.
@dataclass(frozen=True)
class ImatrixCase:
    name: str
    breaks: str
    suffix: str  # ".gguf" or ".dat"
    build: Callable[[RawGguf, bytes], bytes]


def _first(r: RawGguf, suffix: str):
    return next(t for t in r.tensors if t.name.endswith(suffix))


def _im_data(suffix: str, fmt: str, value: float) -> Callable[[RawGguf, bytes], bytes]:
    """The first value of the first `suffix` tensor overwritten."""
    def build(raw: RawGguf, _dat: bytes) -> bytes:
        data = raw.to_bytes()
        return _patch_any(data, len(data) - len(raw.data) + _first(raw, suffix).offset, fmt, value)
    return build


def _im_unpair(r: RawGguf) -> None:
    """The first counts tensor renamed away (offsets kept): its sums have no counts."""
    t = _first(r, ".counts")
    t.name = t.name.replace(".counts", ".tallies")


def _im_rename(r: RawGguf) -> None:
    for t in r.tensors:
        t.name = t.name.replace(".in_sum2", ".sums").replace(".counts", ".n")


def _im_set_dims(suffix: str, dims: list[int]) -> Callable[[RawGguf], None]:
    def f(r: RawGguf) -> None:
        _first(r, suffix).dims = dims
    return f


def _im_drop_key(key: str) -> Callable[[RawGguf], None]:
    def f(r: RawGguf) -> None:
        r.kv = [e for e in r.kv if e[0] != key]
    return f


def _dat_first_entry(dat: bytes) -> int:
    """Offset of the first entry's ncall (after entry count, name length and name)."""
    return 8 + struct.unpack_from("<i", dat, 4)[0]


def _dat_duplicate(_raw: RawGguf, dat: bytes) -> bytes:
    n = struct.unpack_from("<i", dat, 0)[0]
    first_end = _dat_first_entry(dat) + 8 + 4 * struct.unpack_from("<i", dat, _dat_first_entry(dat) + 4)[0]
    return struct.pack("<i", n + 1) + dat[4:first_end] + dat[4:]


IMATRIX_CASES: tuple[ImatrixCase, ...] = (
    ImatrixCase("imatrix-gguf-no-pairs", "<tensor>.in_sum2 / .counts names", ".gguf", _g(_im_rename)),
    ImatrixCase("imatrix-gguf-sums-without-counts", "every sum has its counts", ".gguf", _g(_im_unpair)),
    ImatrixCase("imatrix-gguf-f16-counts", "sums and counts are F32", ".gguf",
                _g(lambda r: setattr(_first(r, ".counts"), "type", 1))),
    ImatrixCase("imatrix-gguf-counts-dont-divide", "sums split evenly into counts", ".gguf",
                _g(_im_set_dims(".counts", [1, 3]))),
    ImatrixCase("imatrix-gguf-nan-sums", "finite sums", ".gguf", _im_data(".in_sum2", "<f", float("nan"))),
    ImatrixCase("imatrix-gguf-negative-count", "counts that are counts", ".gguf", _im_data(".counts", "<f", -5.0)),
    ImatrixCase("imatrix-gguf-no-chunk-count", "imatrix metadata", ".gguf", _g(_im_drop_key("imatrix.chunk_count"))),
    ImatrixCase("imatrix-gguf-truncated", "tensor data inside the file", ".gguf", _cut_tail(100)),
    ImatrixCase("imatrix-dat-2^31-entries", "entry count vs file size", ".dat",
                lambda _r, dat: _patch(dat, 0, "<i", (1 << 31) - 1)),
    ImatrixCase("imatrix-dat-0-entries", "at least one entry", ".dat", lambda _r, dat: _patch(dat, 0, "<i", 0)),
    ImatrixCase("imatrix-dat-2^30-name", "name length", ".dat", lambda _r, dat: _patch(dat, 4, "<i", 1 << 30)),
    ImatrixCase("imatrix-dat-2^31-values", "value count vs file size", ".dat",
                lambda _r, dat: _patch(dat, _dat_first_entry(dat) + 4, "<i", (1 << 31) - 1)),
    ImatrixCase("imatrix-dat-nan-values", "finite values", ".dat",
                lambda _r, dat: _patch_any(dat, _dat_first_entry(dat) + 8, "<f", float("inf"))),
    ImatrixCase("imatrix-dat-duplicate-entry", "entry names unique", ".dat", _dat_duplicate),
    ImatrixCase("imatrix-dat-truncated", "values inside the file", ".dat", lambda _r, dat: dat[:len(dat) // 2]),
)
