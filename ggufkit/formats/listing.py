"""The model files directly inside a folder (what `convert DIR` and `inspect DIR` mean by a directory), and
`inspect DIR`'s one line per model file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.formats.detect import sniff


def folder_files(folder: Path) -> list[Path]:
    """Files directly inside `folder`, by name: not in subfolders, not hidden, and not the extra parts of a
    multi-part model (`NAME.bin.1`, `.2` … beside `NAME.bin` are read with it)."""
    return sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".") and not is_extra_part(f))


def is_extra_part(path: Path) -> bool:
    stem, _, index = path.name.rpartition(".")
    return index.isdigit() and (path.parent / stem).is_file()


def kind(path: Path) -> str | None:
    """"gguf", "legacy", or None for a file that is not a model file (or cannot be opened)."""
    try:
        return sniff(path)
    except GgufkitError:
        return None


@dataclass
class Listed:
    """One model file of a folder, as `inspect DIR` lists it."""

    path: str
    format: str | None  # "GGUF v3", "GGJT v1", "GGML", ...
    family: str | None  # legacy files: the family their header is; GGUF: general.architecture
    file_type: str | None
    file_size: int
    parameters: int | None
    converts: bool | None  # legacy files: whether `convert` makes a GGUF of it; GGUF files: None
    convert: str  # what `convert` does with it, in words
    error: str | None = None  # the file could not be read (its one-line reason)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_models(paths: list[Path]) -> list[Listed]:
    """The model files among `paths` (a folder: those directly inside it), each read (headers only) and
    summarised in one line; a model file that cannot be read is listed with its reason."""
    from ggufkit.formats.summary import summarize

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = [f for f in folder_files(p) if kind(f)]
            if not found:
                raise BadInputError("a directory stands for the model files (GGUF, GGML, GGMF, GGJT, …) directly "
                                    "inside it, and this one holds none", p)
            files.extend(found)
        else:
            files.append(p)
    listed = []
    for f in files:
        try:
            s = summarize(f)
        except GgufkitError as e:
            size = f.stat().st_size if f.is_file() else 0
            container = {"gguf": "GGUF", "legacy": "legacy"}.get(kind(f) or "")
            listed.append(Listed(str(f), container, None, None, size, None, None, "-", e.message))
            continue
        label = f"rwkv.cpp v{s.version}" if s.format == "RWKV" else s.format + (
            f" v{s.version}" if s.version is not None else "")
        if s.format == "GGUF":
            converts, convert = None, "GGUF already"
        elif not s.recognised:
            converts, convert = False, f"no: not recognised as {s.family}'s tensors"
        else:
            converts = bool(s.convert and s.convert.startswith("to GGUF"))
            convert = f"yes: {s.convert}" if converts else f"no: inspect only: {s.convert.removeprefix('refused: ')}"
        listed.append(Listed(str(f), label, s.family, s.file_type, s.file_size, s.parameters,
                             converts, convert))
    return listed
