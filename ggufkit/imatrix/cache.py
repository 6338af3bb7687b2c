"""Importance matrices computed once per model, text and settings, then reused (`matrix_for`).

`quantize --imatrix-text` and the `fit` helper ask for the matrix of a model on a text; computing it takes
minutes on a CPU, so it is kept in $GGUFKIT_CACHE/imatrix (else ~/.cache/ggufkit/imatrix), named by a key
over what it depends on: the model's content (converters/cache.py's sampled content key, which also holds
ggufkit's version), the text's whole content (None or "default": the built-in text), the chunk length and
count, and the llama.cpp version. Threads and GPU offload change the sums only by rounding: not in the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT = "default"


def cache_dir() -> Path:
    from ggufkit.converters.cache import cache_dir as converted

    return converted().parent / "imatrix"


def resolve_text(text: Path | str | None) -> tuple[str, str, Path | None]:
    """(text, dataset name, its file or None) for a path, or None / "default" (the built-in text)."""
    from ggufkit.evaluate.text import load_text

    path = None if text is None or str(text) == DEFAULT else Path(text)
    body, _name = load_text(path)
    return body, str(path) if path is not None else "pydoc_data.topics", path


def matrix_for(source: Path, text: Path | str | None = None, *, ctx: int = 512, chunks: int | None = None,
               threads: int | None = None, gpu_layers: int | str | None = None,
               on_progress: Callable[[Any], None] | None = None) -> Path:
    """The path of a GGUF importance matrix of `source` (GGUF or legacy) on `text`, computed only when the
    cache holds none. `on_progress` gets a compute.Progress after each chunk. Raises GgufkitError (bad
    input: exit 2) and KeyboardInterrupt (nothing is cached then)."""
    from ggufkit.evaluate.text import check_ctx
    from ggufkit.fsutil import atomic_output, make_dir

    check_ctx(ctx)
    body, dataset, _path = resolve_text(text)
    source = Path(source)
    out = cache_dir() / f"{source.name.split('.')[0]}-{cache_key(source, body, ctx, chunks)}.gguf"
    if out.is_file():
        return out
    from ggufkit.imatrix.compute import compute
    from ggufkit.imatrix.files import write_gguf

    done = compute(source, body, dataset, ctx=ctx, chunks=chunks, threads=threads, gpu_layers=gpu_layers,
                   on_progress=on_progress)
    if done.partial:
        raise KeyboardInterrupt  # a partial matrix is never cached
    make_dir(out.parent)
    with atomic_output(out) as tmp:
        write_gguf(tmp, done.matrix)
    return out


def cache_key(source: Path, text: str, ctx: int, chunks: int | None) -> str:
    from ggufkit.converters.cache import content_key
    from ggufkit.system import llama_cpp_python_version

    h = hashlib.blake2b(digest_size=16)
    h.update(content_key(source).encode())
    h.update(hashlib.blake2b(text.encode("utf-8", "surrogatepass")).digest())
    h.update(f"ctx={ctx} chunks={chunks} llama-cpp-python={llama_cpp_python_version()}".encode())
    return h.hexdigest()
