"""`ggufkit inspect`: metadata of GGUF and legacy GGML/GGMF/GGJT files, for people and for scripts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ggufkit.cli.common import JsonOpt
from ggufkit.cli.output import first_clause, human_bytes, human_count, notice, print_json, short_value, table
from ggufkit.errors import EXIT_BAD_INPUT, BadInputError, GgufkitError
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

    An importance matrix (GGUF or .dat) shows its datasets, chunks and per-tensor statistics, as
    llama-imatrix --show-statistics. A directory lists its model files instead, one line each (--json: a list of path, format, family,
    file_type, file_size, parameters, converts, convert, error).

    Reads headers only (never tensor data) and validates them: a malformed file exits with code 2.
    JSON: one object for one file, a list for several. The memory estimate is weights + an f16 KV cache
    for --ctx tokens + a margin for compute buffers (logits of a 512-token batch + max(64 MiB, 5% of weights)).
    """
    if any(p.is_dir() for p in files):
        return _list(files, json_)
    results, failed = [], 0
    for path in files:
        try:
            results.append(_summary(path, ctx))
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
            sys.stdout.write((_render_imatrix(s) if "entries" in s else _render(s, tensors, kv, template)) + "\n")
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


def _summary(path: Path, ctx: int) -> dict:
    """A model's summary, or an importance matrix's (a GGUF of general.type imatrix, or a .dat file)."""
    from ggufkit.formats.detect import open_model
    from ggufkit.formats.gguf_file import GgufFile
    from ggufkit.formats.summary import summarize_model
    from ggufkit.imatrix import files, stats

    try:
        opened = open_model(path)
    except BadInputError as e:
        if "unknown magic" not in e.message and "too short" not in e.message:
            raise
        return stats.describe(path, files.read_unknown(path, e))
    if isinstance(opened, GgufFile) and files.is_imatrix_gguf(opened):
        return stats.describe(path, files.read_matrix(path))
    return summarize_model(opened, ctx).to_dict()


def _render_imatrix(s: dict) -> str:
    lines = [("file", s["path"]), ("format", s["format"]), ("size", human_bytes(s["file_size"])),
             ("datasets", ", ".join(s["datasets"]) or "-"),
             ("chunks", f"{s['chunk_count']}" + (f" of {s['chunk_size']} tokens" if s["chunk_size"] else "")),
             ("tensors", f"{s['entries']}" + (f" ({s['experts']} experts)" if s["experts"] > 1 else ""))]
    if s["partial"]:
        lines.append(("partial", "yes: Ctrl-C cut the run short"))
    width = max(len(k) for k, _ in lines) + 1
    rows = [[t["tensor"], f"{t['sum']:.2f}", f"{t['max']:.4f}", f"{t['mean']:.4f}", f"{t['stddev']:.4f}",
             f"{100 * t['active']:.2f}%", f"{100 * t['entropy_norm']:.2f}%", f"{100 * t['zd']:.2f}%",
             "-" if t["cossim"] is None else f"{t['cossim']:.4f}"] for t in s["tensors"]]
    return ("\n".join(f"{k + ':':<{width}} {v}" for k, v in lines) + "\n\n"
            + table(rows, ["tensor", "sum(act²)", "max", "mean", "stddev", "active", "entropy", "ZD", "cos prev"])
            + "\n\nper tensor, over its mean squared activations (llama-imatrix --show-statistics): entropy as a "
            "share of the most\npossible, ZD the share more than one σ above the mean, cos prev the cosine "
            "similarity with\nthe same tensor one block earlier")


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
