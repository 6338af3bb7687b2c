"""`split` and `merge`: a model into shards and back, byte for byte as llama.cpp's `llama-gguf-split`.

What llama-gguf-split does (tools/gguf-split/gguf-split.cpp, llama.cpp as vendored by llama-cpp-python):
- split: tensors stay in file order; a new shard starts at every --split-max-tensors-th tensor, or when the
  tensor data so far (each tensor padded to 32 bytes; the header not counted) would pass --split-max-size.
  Only the first shard holds the model's metadata; every shard then gets split.no (u16, 0-based),
  split.tensors.count (i32, the whole model's) and split.count (u16), in that order (gguf.cpp's setters
  remove a key and append it again, so any split keys of the input go and come back last).
- merge: the first shard's metadata with split.count set to 0 (split.no and split.tensors.count stay),
  then every shard's tensors in order.
- every file: gguf.cpp's v3 header, then each tensor's data padded with zeros to the alignment.

Here the data moves by the kernel (copy_file_range), never through Python, and the shards appear all or
none (fsutil.atomic_outputs).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gguf.constants import GGUF_DEFAULT_ALIGNMENT, GGUFValueType, Keys

from ggufkit.converters.copy import copy_range, write_all
from ggufkit.errors import BadInputError
from ggufkit.formats.ggml_types import TensorInfo
from ggufkit.formats.gguf_file import GgufFile, read_gguf
from ggufkit.formats.shards import SPLIT_KEYS, output_prefix, shard_path
from ggufkit.fsutil import atomic_outputs, check_output, scratch_file
from ggufkit.surgery.header import TensorEntry, encode_header, pad
from ggufkit.units import human_bytes

ProgressFn = Callable[[int], None]  # bytes of tensor data just copied
T = TypeVar("T")
MAX_SHARDS = 0xFFFF  # split.count is a u16


@dataclass
class OutputFile:
    """One file to write: its header, then its tensors' data, each padded to `alignment`."""

    path: Path
    header: bytes
    tensors: list[TensorInfo]
    alignment: int

    @property
    def size(self) -> int:
        return len(self.header) + sum(t.nbytes + pad(t.nbytes, self.alignment) for t in self.tensors)


@dataclass
class SplitReport:
    """What `split` and `merge` wrote (or would write, on a dry run)."""

    input: str
    inputs: list[str]  # every file read: the input, or all its shards
    outputs: list[dict[str, Any]] = field(default_factory=list)  # path, tensors, bytes
    tensors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _entry(t: TensorInfo) -> TensorEntry:
    return TensorEntry(t.name, t.shape, t.ggml_type, t.nbytes)


def plan_split(g: GgufFile, prefix: Path, max_bytes: int | None = None, max_tensors: int | None = None
               ) -> list[OutputFile]:
    """The shards of `g` as llama-gguf-split cuts them, named PREFIX-0000i-of-0000n.gguf."""
    if (max_bytes is None) == (max_tensors is None):
        raise BadInputError("give one of --max-size or --max-tensors")
    if (max_bytes is not None and max_bytes < 1) or (max_tensors is not None and max_tensors < 1):
        raise BadInputError("--max-size and --max-tensors must be positive")
    groups: list[list[TensorInfo]] = [[]]
    size = 0  # tensor data in the current shard, each tensor padded as llama-gguf-split counts it
    for i, t in enumerate(g.tensors):
        n = t.nbytes + pad(t.nbytes, GGUF_DEFAULT_ALIGNMENT)
        cut = size + n > max_bytes if max_bytes is not None else i > 0 and i % max_tensors == 0  # type: ignore[operator]
        if cut:
            if not groups[-1]:  # only the first tensor can meet an empty shard (llama-gguf-split refuses too)
                raise BadInputError(f"tensor {t.name!r} alone is {human_bytes(n)}, more than --max-size "
                                    f"{human_bytes(max_bytes or 0)}", g.path)
            groups.append([])
            size = n
        else:
            size += n
        groups[-1].append(t)
    count = len(groups)
    if count > MAX_SHARDS:
        raise BadInputError(f"would make {count} shards, more than split.count can say ({MAX_SHARDS})", g.path)
    meta = {k: v for k, v in g.kv.items() if k not in SPLIT_KEYS}
    outputs = []
    for i, group in enumerate(groups):
        kv = dict(meta) if i == 0 else {}
        types = {k: g.kv_types[k] for k in kv}
        for key, value, vtype in ((Keys.Split.LLM_KV_SPLIT_NO, i, GGUFValueType.UINT16),
                                  (Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, len(g.tensors), GGUFValueType.INT32),
                                  (Keys.Split.LLM_KV_SPLIT_COUNT, count, GGUFValueType.UINT16)):
            kv[key], types[key] = value, (vtype, None)
        # the first shard keeps the input's general.alignment (if any); the others hold no such key
        alignment = g.alignment if i == 0 else GGUF_DEFAULT_ALIGNMENT
        header = encode_header(kv, types, map(_entry, group), alignment)
        outputs.append(OutputFile(shard_path(prefix, i, count), header, group, alignment))
    return outputs


def plan_merge(g: GgufFile, out: Path, drop_split_keys: bool = False) -> OutputFile:
    """One file from the whole model `g` (read from its first shard), as llama-gguf-split --merge writes it;
    `drop_split_keys`: without the split keys, i.e. the file as it was before it was split."""
    if Keys.Split.LLM_KV_SPLIT_COUNT not in g.kv or g.split_count < 1:
        raise BadInputError("not a split model (no split.count): nothing to merge", g.path)
    kv, types = dict(g.kv), dict(g.kv_types)
    del kv[Keys.Split.LLM_KV_SPLIT_COUNT]  # set to 0, and last, so the merged file is never taken for a shard
    kv[Keys.Split.LLM_KV_SPLIT_COUNT], types[Keys.Split.LLM_KV_SPLIT_COUNT] = 0, (GGUFValueType.UINT16, None)
    if drop_split_keys:
        kv = {k: v for k, v in kv.items() if k not in SPLIT_KEYS}
    return OutputFile(out, encode_header(kv, types, map(_entry, g.tensors), g.alignment), g.tensors, g.alignment)


def write_outputs(g: GgufFile, outputs: list[OutputFile], force: bool = False,
                  on_progress: ProgressFn | None = None) -> None:
    """Write every output from `g`'s files, all or none; the inputs are only read."""
    inputs = [Path(f.path) for f in g.files()]
    for o in outputs:
        check_output(o.path, inputs, force)
    source = {t.name: path for path, t in g.placed()}
    with contextlib.ExitStack() as stack:
        fds = {f.path: _open_read(stack, f.path) for f in g.files()}
        with atomic_outputs([o.path for o in outputs]) as tmps:
            for o, tmp in zip(outputs, tmps):
                _write_file(tmp, o, lambda t: fds[source[t.name]], on_progress)


def _open_read(stack: contextlib.ExitStack, path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    stack.callback(os.close, fd)
    return fd


def _write_file(tmp: Path, o: OutputFile, fd_of: Callable[[TensorInfo], int], on_progress: ProgressFn | None) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        write_all(fd, o.header)
        for t in o.tensors:
            copy_range(fd_of(t), fd, t.offset, t.nbytes, on_progress)
            if n := pad(t.nbytes, o.alignment):
                write_all(fd, bytes(n))
    finally:
        os.close(fd)


def _report(g: GgufFile, outputs: list[OutputFile], started: float, dry_run: bool) -> SplitReport:
    rows = [{"path": str(o.path), "tensors": len(o.tensors), "bytes": o.size} for o in outputs]
    return SplitReport(g.path, [f.path for f in g.files()], rows, len(g.tensors), sum(o.size for o in outputs),
                       time.perf_counter() - started, dry_run)


def split(src: Path, prefix: Path | None = None, max_bytes: int | None = None, max_tensors: int | None = None,
          dry_run: bool = False, force: bool = False, on_progress: ProgressFn | None = None) -> SplitReport:
    """Split a model (a split one is read whole from its first shard and split anew)."""
    started = time.perf_counter()
    g = read_gguf(src)
    if prefix is None or prefix.is_dir():  # beside the input, or in the folder given, named after the input
        prefix = output_prefix(src) if prefix is None else prefix / output_prefix(src).name
    outputs = plan_split(g, _strip_gguf(prefix), max_bytes, max_tensors)
    if not dry_run:
        write_outputs(g, outputs, force, on_progress)
    return _report(g, outputs, started, dry_run)


def merge(first: Path, out: Path | None = None, dry_run: bool = False, force: bool = False,
          on_progress: ProgressFn | None = None, drop_split_keys: bool = False) -> SplitReport:
    started = time.perf_counter()
    g = read_gguf(first)
    merged = plan_merge(g, out if out is not None else Path(f"{output_prefix(first)}.gguf"), drop_split_keys)
    if not dry_run:
        write_outputs(g, [merged], force, on_progress)
    return _report(g, [merged], started, dry_run)


def split_written(write: Callable[[Path], T], out: Path, max_bytes: int, force: bool = False) -> tuple[T, list[Path]]:
    """`--split-max-size` of convert and quantize: `write(path)` writes the model to a scratch file beside
    `out` (never named, gone afterwards), which is then split into OUT-0000i-of-0000n.gguf shards."""
    with scratch_file(out.parent) as tmp:
        result = write(tmp)
        g = read_gguf(tmp)
        outputs = plan_split(g, _strip_gguf(out), max_bytes=max_bytes)
        write_outputs(g, outputs, force)
    return result, [o.path for o in outputs]


def _strip_gguf(prefix: Path) -> Path:
    """-o model.gguf and -o model both give model-00001-of-0000n.gguf ... (as quantize --keep-split names them)."""
    return prefix.with_name(prefix.name.removesuffix(".gguf"))
