"""Measurements kept between `fit` calls: small JSON files named by a hash of what they depend on.

A key is built from the source's content (converters/cache.content_key), the candidate's type and
matrix, the settings the figure depends on, and this machine and build (`machine_id`), so a second
`fit` with other budgets reads every figure back instead of measuring again, and a changed file,
setting or machine measures anew. Entries are a few hundred bytes each and are never evicted;
`ggufkit cache clear` leaves them (they hold no model data).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from ggufkit.fsutil import atomic_output, make_dir


def store_dir() -> Path:
    from ggufkit.converters.cache import cache_dir

    return cache_dir().parent / "fit"


def key(*parts: Any) -> str:
    """A hash of JSON-able parts (order matters)."""
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def get(kind: str, k: str) -> dict[str, Any] | None:
    try:
        data = json.loads((store_dir() / f"{kind}-{k}.json").read_text())
    except (OSError, ValueError):  # absent, or damaged: measured again
        return None
    return data if isinstance(data, dict) else None


def put(kind: str, k: str, value: dict[str, Any]) -> None:
    """Kept whole or not at all; a store that cannot be written only costs the next call its time."""
    try:
        folder = make_dir(store_dir())
        with atomic_output(folder / f"{kind}-{k}.json") as tmp:
            tmp.write_text(json.dumps(value))
    except Exception:  # noqa: BLE001  a cache is an optimisation, never a reason to fail
        pass


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@functools.cache
def build():
    """llama.cpp's build as system.llama_build describes it (asked once)."""
    from ggufkit.system import llama_build

    return llama_build()


@functools.cache
def machine_id() -> dict[str, Any]:
    """What a speed or memory figure depends on besides the file and the settings."""
    from ggufkit import __version__
    from ggufkit.system import llama_cpp_python_version, machine

    build_ = build()
    m = machine(build_)
    return {"cpu": m.cpu, "cores": m.cores, "ram": m.ram_bytes, "gpus": m.gpus, "backends": build_.backends,
            "llama_cpp_python": llama_cpp_python_version(), "ggufkit": __version__}
