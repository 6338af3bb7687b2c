"""`convert --dry-run`: what a conversion would do, checked as the real one checks, with nothing written.

For each input: its output name, what each tensor would become (copied, repacked into today's layout, or
requantized) and the bytes it would take; for the whole call: the clashing output names and the disk
space needed against what the target's file system has free.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ggufkit.converters.engine import NotConvertible, conversion_summary, file_type_of, prepare
from ggufkit.converters.metadata import ConvertOptions
from ggufkit.errors import GgufkitError
from ggufkit.formats.ggml_types import ftype_name
from ggufkit.formats.legacy import blocks

# GGUF header bytes a tensor's entry takes beyond its name (name length, dims, type, offset), and the
# padding before its data at most
TENSOR_INFO_BYTES = 8 + 4 + 4 * 8 + 4 + 8
ALIGNMENT = 32


@dataclass
class PlannedFile:
    input: str
    output: str
    status: str  # "convert" | "skip" | "fail"
    message: str = ""  # why it is skipped or would fail; a renamed output says so
    source: str | None = None  # "GGJT v1", ...
    family: str | None = None
    file_type: str | None = None
    bytes: int = 0  # the output's size: tensor data exactly, header estimated (vocabulary as the input's)
    actions: dict[str, int] = field(default_factory=dict)  # copy / repack / requantize: tensor counts
    loss: str | None = None  # "exact", or what the repacking or requantizing costs
    tensors: list[dict[str, Any]] = field(default_factory=list)  # name, gguf_name, type, to_type, action, bytes
    exit_code: int = 0  # a failure's code, as the real run would exit for a single file


@dataclass
class Plan:
    files: list[PlannedFile]
    # {"inputs": [a, b], "output": both would write it, "renamed_to": b's output with --distinct-names, else None}
    clashes: list[dict[str, Any]]
    bytes_needed: int  # the outputs that would be written
    free_bytes: int | None  # on the target's file system (None: not found)
    target: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for f in d["files"]:
            del f["exit_code"]
        return d


def plan_file(src: Path, out: Path, options: ConvertOptions, force: bool, batch: bool) -> PlannedFile:
    """One input's plan. In a batch an existing output is skipped (as the real batch does); alone it fails."""
    if batch and out.exists() and not force:
        return PlannedFile(str(src), str(out), "skip", "output exists (--force overwrites)")
    try:
        # a batch's --out-dir, and -o's folder, are made when the real run starts: check the output only
        # where its folder exists
        ready = prepare(src, out, options, force, check_out=out.parent.is_dir())
    except NotConvertible as e:
        if batch:
            return PlannedFile(str(src), str(out), "skip", f"inspect only: {e.why}")
        return PlannedFile(str(src), str(out), "fail", e.message, exit_code=e.exit_code)
    except GgufkitError as e:
        return PlannedFile(str(src), str(out), "fail", e.message, exit_code=e.exit_code)
    m, plans = ready.model, ready.plans
    summary = conversion_summary(m, plans)
    data = sum(p.out_nbytes + ALIGNMENT for p in plans)
    header = max(0, m.file_size - sum(t.nbytes for t in m.tensors)) + sum(
        TENSOR_INFO_BYTES + len(p.name) for p in plans) + 4096  # + key/values
    tensors = [{"name": p.src.name, "gguf_name": p.name, "type": blocks.era_type_name(p.src.ggml_type),
                "to_type": blocks.era_type_name(p.out_type), "action": p.action, "bytes": p.out_nbytes,
                **({"rows_permuted": True} if p.rows is not None else {})} for p in plans]
    return PlannedFile(str(src), str(out), "convert", source=m.label, family=m.family.name,
                       file_type=ftype_name(file_type_of(m, plans)), bytes=data + header,
                       actions={"copy": summary["copied"], "repack": summary["repacked"],
                                "requantize": summary["requantized"]},
                       loss=summary["loss"], tensors=tensors)


def dry_run(pairs: list[tuple[Path, Path]], options: ConvertOptions, force: bool, batch: bool,
            clashes: list[tuple[Path, Path, Path]] | None = None, distinct: bool = False) -> Plan:
    """The plan of `pairs` (as batch.plan_outputs made them with distinct names); `clashes`: (first input,
    later input, the output both would have), which the real run refuses unless `distinct`."""
    files = [plan_file(src, out, options, force, batch) for src, out in pairs]
    outputs = {str(src): out for src, out in pairs}
    if distinct:
        for f in files:
            first = next(((a, o) for a, b, o in clashes or [] if str(b) == f.input), None)
            if first is not None:
                note = f"renamed: {first[1].name} is {first[0].name}'s output"
                f.message = f"{f.message}; {note}" if f.message else note
    needed = sum(f.bytes for f in files if f.status == "convert")
    target = Path(pairs[0][1]).parent if pairs else Path(".")
    return Plan(files, [{"inputs": [str(a), str(b)], "output": str(o),
                         "renamed_to": str(outputs[str(b)]) if distinct else None} for a, b, o in clashes or []],
                needed, _free(target), str(target))


def _free(folder: Path) -> int | None:
    """Free bytes where `folder` is (or would be made: its nearest existing parent)."""
    for p in (folder, *folder.resolve().parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None
