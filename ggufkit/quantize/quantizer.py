"""Quantize a model with llama.cpp's own quantizer, isolated in a child process, to one or several types.

Everything that can be checked is checked before llama.cpp starts (input header, output paths,
imatrix file, types that need an imatrix), so most mistakes cost nothing and leave nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gguf.constants import Keys

from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.formats.detect import sniff
from ggufkit.formats.gguf_file import GgufFile, read_gguf
from ggufkit.fsutil import atomic_output, check_output, check_split_outputs
from ggufkit.quantize import CHILD
from ggufkit.quantize.options import QuantizeOptions
from ggufkit.quantize.quant_types import QuantType
from ggufkit.quantize.report import QuantizeReport, report_dry_run, report_from_outputs
from ggufkit.runtime.child import StartedChild, run_child


# (target number, tensors done, tensor count, tensor name)
TensorFn = Callable[[int, int, int, str], None]
NoticeFn = Callable[[str], None]


def quantize_file(src: Path, out: Path | None, qtype: QuantType, options: QuantizeOptions | None = None,
                  force: bool = False, on_tensor: Callable[[int, int, str], None] | None = None) -> QuantizeReport:
    """One input, one type; `out` may be None on a dry run."""
    hook = None if on_tensor is None else (lambda _target, i, n, name: on_tensor(i, n, name))
    return quantize_targets(src, [(qtype, out)], options, force, hook)[0]


def quantize_targets(src: Path, targets: list[tuple[QuantType, Path | None]], options: QuantizeOptions | None = None,
                     force: bool = False, on_tensor: TensorFn | None = None, on_notice: NoticeFn | None = None,
                     started: StartedChild | None = None,
                     on_done: Callable[[QuantizeReport], None] | None = None,
                     on_imatrix: Callable[[Any], None] | None = None) -> list[QuantizeReport]:
    """Quantize `src` (GGUF, or a legacy file converted on the fly) to each (type, output) in turn.

    `started`: a child of CHILD started by the caller (its imports overlap these checks), used for the
    first target; the caller cancels it if this raises before using it. `on_done` hears of each output
    as it is finished (what an interruption leaves done: the one in progress is killed, nothing of it
    written). With `options.imatrix_text` the matrix is computed first (or found in imatrix/cache.py's
    cache); `on_imatrix` gets its progress.
    """
    options = options or QuantizeOptions()
    kind = sniff(src)
    header = read_gguf(src) if kind == "gguf" else None  # validated before llama.cpp sees it
    _check_targets(src, targets, options, force, _n_split(header) if header else 1)
    input_bytes = header.file_size if header else src.stat().st_size  # a split model: all its shards
    with contextlib.ExitStack() as stack:
        model_path, model = (src, header) if header else _convert(src, targets, stack, on_notice)
        options = _with_imatrix(src, model_path, model, options, on_imatrix)
        reports = []
        for k, (qtype, out) in enumerate(targets):
            reports.append(_quantize_one(
                model_path, model, src, input_bytes, qtype, out, options, force,
                None if on_tensor is None else (lambda i, n, name, k=k: on_tensor(k, i, n, name)),
                started if k == 0 else None))
            if on_done is not None:
                on_done(reports[-1])
        return reports


def split_outputs(out: Path, n: int) -> list[Path]:
    """The files --keep-split writes for `out`: llama_split_path's PREFIX-0000i-of-0000n.gguf per input shard."""
    prefix = out.name.removesuffix(".gguf")
    return [out.with_name(f"{prefix}-{i:05d}-of-{n:05d}.gguf") for i in range(1, n + 1)]


def _n_split(model: GgufFile) -> int:
    n = model.kv.get(Keys.Split.LLM_KV_SPLIT_COUNT, 1)
    return n if isinstance(n, int) and n > 0 else 1


def _check_targets(src: Path, targets: list[tuple[QuantType, Path | None]], options: QuantizeOptions,
                   force: bool, n_split: int) -> None:
    if not targets:
        raise BadInputError("no quantization type given")
    if options.imatrix is not None and options.imatrix_text is not None:
        raise BadInputError("give --imatrix FILE or --imatrix-text TEXT, not both")
    if options.imatrix_chunks is not None and options.imatrix_text is None:
        raise BadInputError("--imatrix-chunks goes with --imatrix-text")
    if options.imatrix is not None:
        from ggufkit.imatrix.files import read_matrix

        read_matrix(options.imatrix)
    if options.imatrix_text is not None:
        from ggufkit.imatrix.cache import resolve_text

        resolve_text(options.imatrix_text)  # a missing or empty text fails now, not after the conversion
    if options.threads < 0:
        raise BadInputError(f"--threads must be 0 (all) or more, got {options.threads}")
    if options.keep_split and options.split_max_size is not None:
        raise BadInputError("give --keep-split or --split-max-size, not both")
    seen: set[Path] = set()
    for qtype, out in targets:
        if qtype.needs_imatrix and options.imatrix is None and options.imatrix_text is None and not options.dry_run:
            raise BadInputError(
                f"{qtype.name} needs an importance matrix: pass --imatrix FILE (from `ggufkit imatrix` or "
                "llama-imatrix) or --imatrix-text TEXT|default (computed here, then cached), or pick a type "
                "that needs none (see `ggufkit quantize --list`)")
        if options.dry_run:
            continue
        if out is None:
            raise BadInputError(f"no output file for {qtype.name}")
        if out.resolve() in seen:
            raise BadInputError("two targets would write the same file", out)
        seen.add(out.resolve())
        if options.split_max_size is not None:
            check_split_outputs(out, force)
            continue
        for path in split_outputs(out, n_split) if options.keep_split else [out]:
            check_output(path, [src], force)


def _with_imatrix(src: Path, model_path: Path, model: GgufFile, options: QuantizeOptions,
                  on_imatrix: Callable[[Any], None] | None) -> QuantizeOptions:
    """The options with the importance matrix to use: --imatrix-text's, computed (or found in the cache) on
    the GGUF llama.cpp will read; either one checked against the model's tensors first."""
    from dataclasses import replace

    from ggufkit.imatrix.files import read_matrix
    from ggufkit.imatrix.matrix import check_matches

    if options.imatrix_text is not None and not options.dry_run:  # a dry run needs no matrix
        from ggufkit.imatrix.cache import matrix_for

        path = matrix_for(model_path, options.imatrix_text, chunks=options.imatrix_chunks,
                          threads=options.threads or None, gpu_layers=options.imatrix_gpu_layers,
                          on_progress=on_imatrix)
        options = replace(options, imatrix=path)
    if options.imatrix is not None:
        check_matches(read_matrix(options.imatrix), model, options.imatrix, src)
    return options


def _convert(src: Path, targets: list[tuple[QuantType, Path | None]], stack: contextlib.ExitStack,
             on_notice: NoticeFn | None) -> tuple[Path, GgufFile]:
    from ggufkit.converters.cache import convert_checked

    beside = next((out.parent for _, out in targets if out is not None), None)
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".ggufkit-convert-", dir=beside)))
    converted = work / f"{src.stem}.gguf"
    model, label = convert_checked(src, converted, on_notice)
    if on_notice is not None:  # after success, so a failure is one line
        on_notice(f"{src}: legacy {label} file, converted to a temporary GGUF first")
    return converted, model


def _quantize_one(model_path: Path, model: GgufFile, src: Path, input_bytes: int, qtype: QuantType,
                  out: Path | None, options: QuantizeOptions, force: bool,
                  on_tensor: Callable[[int, int, str], None] | None, started: StartedChild | None) -> QuantizeReport:
    new_types: dict[str, str] = {}

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") != "tensor":
            return
        new_types[event["name"]] = event["type"]
        if on_tensor is not None:
            on_tensor(event["index"], event["total"], event["name"])

    request = {
        **{k: v for k, v in asdict(options).items()
           if k not in ("imatrix", "imatrix_text", "imatrix_chunks", "imatrix_gpu_layers", "kv_overrides",
                        "tensor_types", "split_max_size")},
        "input": str(model_path), "ftype": int(qtype.ftype), "only_copy": qtype.only_copy,
        "kv_overrides": [[o.key, o.kind, o.value] for o in options.kv_overrides],
        "tensor_types": [list(t) for t in options.tensor_types],
        "imatrix": None if options.imatrix is None else str(options.imatrix),
    }
    t0 = time.perf_counter()
    if options.dry_run:
        _run(request, os.devnull, on_event, src, started)
        return report_dry_run(src, model, input_bytes, qtype.name, new_types, time.perf_counter() - t0)
    assert out is not None
    # the report is read before the outputs get their names, so that an output that has its name is one the
    # caller hears of (an interruption in between would leave a finished file unlisted)
    if options.split_max_size is not None:
        from ggufkit.surgery.split import split_written

        _, outputs = split_written(lambda tmp: _run(request, str(tmp), on_event, src, started), out,
                                   options.split_max_size, force)
        report = report_from_outputs(src, input_bytes, qtype.name, outputs, time.perf_counter() - t0)
    elif not options.keep_split:
        with atomic_output(out) as tmp:
            _run(request, str(tmp), on_event, src, started)
            report = report_from_outputs(src, input_bytes, qtype.name, [tmp], time.perf_counter() - t0)
        outputs = [out]
    else:
        outputs = split_outputs(out, _n_split(model))
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as work:
            _run(request, str(Path(work) / outputs[0].name.split("-00001-of-")[0]), on_event, src, started)
            report = report_from_outputs(src, input_bytes, qtype.name, [Path(work) / o.name for o in outputs],
                                         time.perf_counter() - t0)
            _publish(Path(work), outputs)
    report.outputs = [str(o) for o in outputs]
    return report


def _publish(work: Path, outputs: list[Path]) -> None:
    """Move llama.cpp's finished shards from the hidden work directory to their names."""
    for final in outputs:
        part = work / final.name
        try:
            with open(part, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(part, final)
        except OSError as e:
            raise GgufkitError(f"cannot write: {e.strerror or e}", final) from e


def _run(request: dict[str, Any], output: str, on_event: Callable[[dict[str, Any]], None], src: Path,
         started: StartedChild | None) -> None:
    try:
        run_child(CHILD, {**request, "output": output}, on_event, path=str(src), started=started)
    except GgufkitError as e:
        if "requantizing from type" in e.message:
            e.message += " (the input is already quantized: pass --allow-requantize, at some loss of quality)"
        elif "requires an imatrix" in e.message:
            e.message += " (some tensors get a 1-3 bit i-quant: pass --imatrix FILE or --imatrix-text TEXT)"
        raise
