"""`ggufkit inspect`: metadata of GGUF and legacy GGML/GGMF/GGJT files, for people and for scripts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ggufkit.cli.common import JsonOpt
from ggufkit.cli.output import first_clause, human_bytes, human_count, notice, print_json, short_value, table
from ggufkit.errors import EXIT_BAD_INPUT, GgufkitError
from ggufkit.runtime.settings import RunSettings

DEFAULT_CTX = RunSettings.ctx  # the estimate is for the context `run` opens by default


def inspect(
    files: Annotated[list[Path], typer.Argument(help="Model files (GGUF v1-v3, GGML, GGMF, GGJT v1-v3), or directories: then one line per model file directly inside (format, family, type, size, whether convert takes it).", show_default=False)],
    json_: JsonOpt = False,
    tensors: Annotated[bool, typer.Option("--tensors", help="List every tensor: name, shape, type, bytes, offset.")] = False,
    kv: Annotated[bool, typer.Option("--kv", help="List every key/value (long arrays shortened).")] = False,
    template: Annotated[bool, typer.Option("--template", help="Print the chat template, if the model has one.")] = False,
    ctx: Annotated[int, typer.Option("--ctx", help="Context length for the memory estimate.", min=1)] = DEFAULT_CTX,
) -> int:
    """Show format, architecture, file type, parameters, hparams, vocabulary, template, tensors and memory.

    A directory lists its model files instead, one line each (--json: a list of path, format, family,
    file_type, file_size, parameters, converts, convert, error).

    Reads headers only (never tensor data) and validates them: a malformed file exits with code 2.
    JSON: one object for one file, a list for several. The memory estimate is weights + an f16 KV cache
    for --ctx tokens + a margin for compute buffers (logits of a 512-token batch + max(64 MiB, 5% of weights)).
    """
    if any(p.is_dir() for p in files):
        return _list(files, json_)
    from ggufkit.formats.summary import summarize

    results, failed = [], 0
    for path in files:
        try:
            results.append(summarize(path, ctx).to_dict())
        except GgufkitError as e:
            if len(files) == 1:
                raise
            notice(f"error: {e}")
            failed += 1
    if json_:
        print_json(results[0] if len(files) == 1 else results)
    else:
        for i, s in enumerate(results):
            if i:
                sys.stdout.write("\n")
            sys.stdout.write(_render(s, tensors, kv, template) + "\n")
    return EXIT_BAD_INPUT if failed else 0


def _list(paths: list[Path], json_: bool) -> int:
    """`inspect DIR`: a line per model file; a file that cannot be read is a line too (and exit code 2)."""
    from ggufkit.formats.listing import list_models

    listed = list_models(paths)
    if json_:
        print_json([m.to_dict() for m in listed])
    else:
        rows = [[Path(m.path).name, m.format or "-", m.family or "-", m.file_type or "-", human_bytes(m.file_size),
                 first_clause(m.convert) if m.error is None
                 else f"error: {m.error}"] for m in listed]
        sys.stdout.write(table(rows, ["file", "format", "family", "type", "size", "convert"]) + "\n")
    return EXIT_BAD_INPUT if any(m.error for m in listed) else 0


def _render(s: dict, show_tensors: bool, show_kv: bool, show_template: bool) -> str:
    version = "" if s["version"] is None else f" v{s['version']}"
    hp = " ".join(f"{k}={v}" for k, v in s["hparams"].items())
    special = " ".join(f"{role}={t['id']} {t['text']!r}" for role, t in s["special_tokens"].items())
    tmpl = s["chat_template"]
    lines = [
        ("file", s["path"]),
        ("format", s["format"] + version + (
            f" ({s['family']} family, quantization version {s['quantization_version']})" if s["family"] and s["format"] != "GGUF" else "")),
        ("architecture", s["architecture"] or "unknown"),
        *([("convert", s["convert"])] if s.get("convert") else []),
        ("name", s["name"] or "-"),
        ("file type", s["file_type"] or "-"),
        ("size", human_bytes(s["file_size"]) + (f" in {len(s['shards'])} shards" if s["shards"] else "")),
        ("parameters", human_count(s["parameters"])),
        ("hparams", hp or "-"),
        ("vocab", f"{s['vocab_size']} tokens ({s['tokenizer'] or 'tokenizer unknown'}){'; ' + special if special else ''}" if s["vocab_size"] else "-"),
        ("chat template", f"present ({len(tmpl)} chars{'' if show_template else '; --template shows it'})" if tmpl else "absent"),
        ("tensors", f"{len(s['tensors'])}{'' if show_tensors else ' (--tensors lists them)'}"),
    ]
    m = s["memory"]
    if m:
        lines.append((
            f"memory @ ctx {m['context']}",
            f"{human_bytes(m['total_bytes'])} (weights {human_bytes(m['weights_bytes'])} + "
            f"KV cache {human_bytes(m['kv_cache_bytes'])} + margin {human_bytes(m['margin_bytes'])})",
        ))
    width = max(len(k) for k, _ in lines) + 1
    lines += [("shard" if i else "shards", f"{sh['path']} ({sh['tensors']} tensors, {human_bytes(sh['bytes'])})")
              for i, sh in enumerate(s["shards"])]
    out = "\n".join(f"{k + ':' if k != 'shard' else '':<{width}} {v}" for k, v in lines)
    if show_template and tmpl:
        out += "\n\nchat template:\n" + tmpl
    if show_kv:
        out += "\n\n" + table([[k, short_value(v)] for k, v in s["kv"].items()], ["key", "value"])
    if show_tensors:
        rows = [[t["name"], "x".join(map(str, t["shape"])), t["type"], t["bytes"], t["offset"]] for t in s["tensors"]]
        out += "\n\n" + table(rows, ["name", "shape", "type", "bytes", "offset"])
    return out
