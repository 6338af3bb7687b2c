"""`diff`: what differs between two models: metadata added, removed, changed; tensors added, removed, of
another type or shape, of other bytes; with values, how far apart the numbers are.

Each side is read as a whole model: a split model from its first shard, a legacy file as it converts
(converters.cache.open_as_gguf). The split.* keys say how a model is cut into files, not what it is, so
they are left out: the two are the same when, each written as one file, they would be byte for byte
the same (same keys, types, values and order; same tensors, types, shapes, order and data).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import Keys

from ggufkit.converters.cache import open_as_gguf
from ggufkit.errors import BadInputError
from ggufkit.formats.arrays import NumberArray, StringArray, jsonable
from ggufkit.formats.gguf_file import GgufFile
from ggufkit.formats.shards import SPLIT_KEYS
from ggufkit.surgery.compare import Located, ProgressFn, same_bytes, value_difference
from ggufkit.surgery.header import encode_value, type_label


@dataclass
class DiffReport:
    a: str
    b: str
    same: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)  # added, removed, changed, order
    tensors: dict[str, Any] = field(default_factory=dict)  # counts, added, removed, changed, different_bytes, values
    files: dict[str, int] = field(default_factory=dict)  # a, b: how many files each side is (shards)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _encoded(key: str, g: GgufFile) -> bytes:
    try:
        return encode_value(key, g.kv[key], g.kv_types[key])
    except BadInputError:  # an array of arrays (llama.cpp cannot read one): compare what was read
        return repr((g.kv_types[key], g.kv[key])).encode()


def _is_array(v: Any) -> bool:
    return isinstance(v, (list, StringArray, NumberArray, np.ndarray))


def _first_difference(x: Any, y: Any) -> dict[str, Any] | None:
    """Where two arrays first differ: index and both items (None past the end of the shorter one)."""
    n = min(len(x), len(y))
    x, y = (v.numpy() if isinstance(v, NumberArray) else v for v in (x, y))
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype and n:
        rows_a, rows_b = x[:n].view(np.uint8).reshape(n, -1), y[:n].view(np.uint8).reshape(n, -1)
        at = np.flatnonzero(np.any(rows_a != rows_b, axis=1))  # as bytes: a NaN equals the same NaN
        i = int(at[0]) if at.size else n
    else:
        i = next((k for k in range(n) if x[k] != y[k]), n)
    if i == n and len(x) == len(y):
        return None
    return {"index": i, "a": _item(x, i), "b": _item(y, i)}


def _item(v: Any, i: int) -> Any:
    if i >= len(v):
        return None
    return jsonable(v[i].item() if isinstance(v, np.ndarray) else v[i])


def _metadata(a: GgufFile, b: GgufFile) -> dict[str, Any]:
    ka = [k for k in a.kv if k not in SPLIT_KEYS]
    kb = [k for k in b.kv if k not in SPLIT_KEYS]
    sb = set(kb)
    sa = set(ka)
    out: dict[str, Any] = {
        "added": {k: {"type": type_label(b.kv_types[k]), "value": jsonable(b.kv[k])} for k in kb if k not in sa},
        "removed": {k: {"type": type_label(a.kv_types[k]), "value": jsonable(a.kv[k])} for k in ka if k not in sb},
        "changed": {},
    }
    for k in ka:
        if k in sb and _encoded(k, a) != _encoded(k, b):
            va, vb = a.kv[k], b.kv[k]
            change = {"type_a": type_label(a.kv_types[k]), "type_b": type_label(b.kv_types[k]),
                      "a": jsonable(va), "b": jsonable(vb)}
            if _is_array(va) and _is_array(vb):
                change.update(length_a=len(va), length_b=len(vb), first_difference=_first_difference(va, vb))
            out["changed"][k] = change
    common_a = [k for k in ka if k in sb]
    out["order"] = "same" if common_a == [k for k in kb if k in sa] else "different"
    return out


def _row(t) -> dict[str, Any]:  # noqa: ANN001
    return {"name": t.name, "type": t.type_name, "shape": list(t.shape)}


def _open(path: Path, on_notice: Callable[[str], None] | None) -> GgufFile:
    """The model as one GGUF: a legacy file as `convert` would write it. The conversion cache is keyed on
    content, so its copy may bear the name of another file with the same bytes: the name is this one's."""
    from ggufkit.converters.engine import default_name

    converted, g = open_as_gguf(path, on_notice)
    if converted != path and isinstance(g.kv.get(Keys.General.NAME), str):
        g.kv[Keys.General.NAME] = default_name(path)
    return g


def diff(path_a: Path, path_b: Path, values: bool = False, on_notice: Callable[[str], None] | None = None,
         on_progress: Callable[[int, int], None] | None = None) -> DiffReport:
    """`on_progress(done, total)`: bytes of tensor data read so far, of about as many as there are to read."""
    a, b = _open(path_a, on_notice), _open(path_b, on_notice)
    report = DiffReport(str(path_a), str(path_b), files={"a": len(a.files()), "b": len(b.files())})
    report.metadata = _metadata(a, b)
    with contextlib.ExitStack() as stack:
        fds: dict[str, int] = {}
        for f in (*a.files(), *b.files()):
            if f.path not in fds:
                fds[f.path] = os.open(f.path, os.O_RDONLY)
                stack.callback(os.close, fds[f.path])
        la = {t.name: Located(fds[p], t) for p, t in a.placed()}
        lb = {t.name: Located(fds[p], t) for p, t in b.placed()}
        report.tensors = _tensors(la, lb, values, _progress(la, lb, values, on_progress))
    m, t = report.metadata, report.tensors
    report.same = (not (m["added"] or m["removed"] or m["changed"]) and m["order"] == "same"
                   and not (t["added"] or t["removed"] or t["changed"] or t["different_bytes"])
                   and t["order"] == "same" and a.alignment == b.alignment)
    if a.alignment != b.alignment:
        m["alignment"] = {"a": a.alignment, "b": b.alignment}
    return report


def _progress(la: dict[str, Located], lb: dict[str, Located], values: bool,
              on_progress: Callable[[int, int], None] | None) -> ProgressFn | None:
    """Bytes read so far as (done, total): every tensor in both is read once from each side (once more with
    values: an upper bound, as a comparison stops at the first different byte)."""
    if on_progress is None:
        return None
    total = sum(la[n].tensor.nbytes + lb[n].tensor.nbytes for n in la if n in lb) * (2 if values else 1)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        on_progress(done, total)
    return step


def _tensors(la: dict[str, Located], lb: dict[str, Located], values: bool, on_progress: ProgressFn | None
             ) -> dict[str, Any]:
    common = [n for n in la if n in lb]
    out: dict[str, Any] = {
        "a": len(la), "b": len(lb),
        "added": [_row(lb[n].tensor) for n in lb if n not in la],
        "removed": [_row(la[n].tensor) for n in la if n not in lb],
        "changed": [], "same_bytes": 0, "different_bytes": [],
        "order": "same" if common == [n for n in lb if n in la] else "different",
        "values": [] if values else None,
    }
    for n in common:
        ta, tb = la[n].tensor, lb[n].tensor
        if ta.ggml_type != tb.ggml_type or ta.shape != tb.shape:
            out["changed"].append({"name": n, "type_a": ta.type_name, "type_b": tb.type_name,
                                   "shape_a": list(ta.shape), "shape_b": list(tb.shape)})
        elif same_bytes(la[n], lb[n], on_progress):
            out["same_bytes"] += 1
            if values:
                out["values"].append({"name": n, "type_a": ta.type_name, "type_b": tb.type_name,
                                      "max_abs_diff": 0.0, "rmse": 0.0})
            continue
        else:
            out["different_bytes"].append(n)
        if values and ta.shape == tb.shape:
            row = {"name": n, "type_a": ta.type_name, "type_b": tb.type_name}
            try:
                row.update(value_difference(la[n], lb[n], on_progress))
            except NotImplementedError:
                unknown = ta.type_name if ta.type_name == tb.type_name else f"{ta.type_name} or {tb.type_name}"
                row["error"] = f"gguf-py cannot dequantize {unknown}"
            out["values"].append(row)
    return out
