"""`ggufkit quantize`: llama.cpp's own quantizer, several types per call, with progress and a report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.cli.common import ForceOpt, GpuLayersOpt, JsonOpt, QuietOpt, complete_quant_types
from ggufkit.cli.output import fitted_table, human_bytes, notice, print_json
from ggufkit.errors import EXIT_INTERRUPTED
from ggufkit.quantize.job import QuantizeJob, run_job
from ggufkit.runtime.settings import RunSettings

_ADV = "llama-quantize options"


def quantize(
    model: Annotated[Optional[Path], typer.Argument(help="Input model: GGUF, or a legacy GGML/GGMF/GGJT file (converted on the fly).", show_default=False)] = None,
    types: Annotated[Optional[list[str]], typer.Option("--type", "-t", help="Target type, e.g. q4_k_m (repeat for several; --list shows all).", show_default=False, autocompletion=complete_quant_types)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (one type only).", show_default=False)] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Write NAME-TYPE.gguf files here (default: beside the input).", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the types with bits per weight and exit.")] = False,
    threads: Annotated[int, typer.Option("--threads", help="Threads; 0 uses every hardware thread.", min=0, rich_help_panel=_ADV)] = QuantizeJob.threads,
    allow_requantize: Annotated[bool, typer.Option("--allow-requantize", help="Allow re-quantizing tensors that are already quantized (costs quality).", rich_help_panel=_ADV)] = False,
    leave_output_tensor: Annotated[bool, typer.Option("--leave-output-tensor", help="Leave output.weight un(re)quantized.", rich_help_panel=_ADV)] = False,
    pure: Annotated[bool, typer.Option("--pure", help="No k-quant mixture: every tensor gets the main type.", rich_help_panel=_ADV)] = False,
    output_tensor_type: Annotated[Optional[str], typer.Option("--output-tensor-type", help="ggml type for output.weight (e.g. q8_0).", show_default=False, rich_help_panel=_ADV)] = None,
    token_embedding_type: Annotated[Optional[str], typer.Option("--token-embedding-type", help="ggml type for the token embeddings.", show_default=False, rich_help_panel=_ADV)] = None,
    tensor_type: Annotated[Optional[list[str]], typer.Option("--tensor-type", help="PATTERN=TYPE: tensors whose name matches the regex get TYPE (repeatable).", show_default=False, rich_help_panel=_ADV)] = None,
    imatrix: Annotated[Optional[Path], typer.Option("--imatrix", help="Importance matrix from `ggufkit imatrix` or llama-imatrix (GGUF or .dat); the types marked in --list need one.", show_default=False)] = None,
    imatrix_text: Annotated[Optional[str], typer.Option("--imatrix-text", help="Compute the importance matrix on this text file first ('default': the text `ggufkit eval` uses); kept in a cache, so another type or call reuses it.", show_default=False)] = None,
    imatrix_chunks: Annotated[Optional[int], typer.Option("--imatrix-chunks", help="With --imatrix-text: stop after this many chunks of 512 tokens.", show_default=False)] = None,
    override_kv: Annotated[Optional[list[str]], typer.Option("--override-kv", help="KEY=TYPE:VALUE (TYPE int, float, bool, str) written into the output (repeatable).", show_default=False, rich_help_panel=_ADV)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute the sizes only; nothing is written.", rich_help_panel=_ADV)] = False,
    keep_split: Annotated[bool, typer.Option("--keep-split", help="Keep the input's shards: OUT-00001-of-0000N.gguf ...", rich_help_panel=_ADV)] = False,
    split_max_size: Annotated[Optional[str], typer.Option("--split-max-size", help="Split each output into shards of at most this much tensor data, as `ggufkit split --max-size` (500M = 500 MB, 2G = 2 GB): OUT-00001-of-0000N.gguf ...", show_default=False, rich_help_panel=_ADV)] = None,
    eval_text: Annotated[Optional[Path], typer.Option("--eval", help="After quantizing, score every output against the input on this text file ('default': the text `ggufkit eval` uses without -f) and add PPL, KLD and top-token agreement to the report.", show_default=False)] = None,
    eval_chunks: Annotated[Optional[int], typer.Option("--eval-chunks", help="With --eval: stop after this many chunks of 512 tokens.", show_default=False)] = None,
    gpu_layers: GpuLayersOpt = str(RunSettings.gpu_layers),
    force: ForceOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Quantize a model with llama.cpp's own quantizer (the files equal llama-quantize's, byte for byte).

    Examples: `ggufkit quantize model-f16.gguf -t q4_k_m -o model-q4.gguf`;
    `ggufkit quantize model-f16.gguf -t q4_k_m -t q5_k_m -t q8_0 --out-dir out/`.
    """
    if list_:
        _print_types(json_)
        return 0
    from ggufkit.cli.split import parse_split_size

    job = QuantizeJob(
        model, types or [], output, out_dir, force, threads=threads, allow_requantize=allow_requantize,
        leave_output_tensor=leave_output_tensor, pure=pure, output_tensor_type=output_tensor_type,
        token_embedding_type=token_embedding_type, tensor_types=tensor_type or [], imatrix=imatrix,
        imatrix_text=imatrix_text, imatrix_chunks=imatrix_chunks, gpu_layers=gpu_layers,
        kv_overrides=override_kv or [], dry_run=dry_run, keep_split=keep_split,
        split_max_size=None if split_max_size is None else parse_split_size(split_max_size, "--split-max-size"),
    )
    from ggufkit.cli.progress import chunk_bar

    bars = _Bars() if not quiet and sys.stderr.isatty() else None
    done: list = []
    try:
        with chunk_bar("imatrix", quiet or json_) as imatrix_bar:
            reports = run_job(job, bars.update if bars else None, None if quiet else notice, done.append, imatrix_bar)
    except KeyboardInterrupt:  # the llama.cpp child is killed, the output in progress never named
        if bars:
            bars.close()
        return _interrupted(done, types or [], json_, quiet)
    finally:
        if bars:
            bars.close()
    if eval_text is not None:
        from ggufkit.cli.progress import count_bar
        from ggufkit.quantize.job import add_quality

        from ggufkit.runtime.params import LoadParams
        from ggufkit.runtime.settings import default_threads, parse_gpu_layers

        assert job.model is not None
        load = LoadParams(job.model, n_threads=default_threads(), n_gpu_layers=parse_gpu_layers(gpu_layers))
        with count_bar(0, "eval", "chunk", quiet or json_) as bar:
            add_quality(job, reports, None if str(eval_text) == "default" else eval_text, chunks=eval_chunks,
                        load=load, on_notice=None if quiet else notice, on_chunk=bar)
    if json_:
        print_json([r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict())
    elif not quiet:
        _print_reports(reports)
    return 0


def _interrupted(done: list, types: list[str], json_: bool, quiet: bool) -> int:
    """Ctrl-C: what was finished (its table or JSON), and one line."""
    from ggufkit.errors import GgufkitError
    from ggufkit.quantize.quant_types import quant_type

    try:
        n_types = len({quant_type(t).name for t in types})  # q4_k and q4_k_m are one
    except GgufkitError:  # interrupted before the types were checked
        n_types = len(set(types))
    if json_:
        print_json([r.to_dict() for r in done])
    elif done and not quiet:
        _print_reports(done)
    finished = ", ".join(r.type for r in done) or "none"
    notice(f"interrupted: {len(done)} of {n_types} types done ({finished}); the one in progress was stopped, "
           "nothing of it written")
    return EXIT_INTERRUPTED


class _Bars:
    """One tqdm bar per target type, fed by llama.cpp's per-tensor log lines."""

    def __init__(self) -> None:
        self.bar = None
        self.target: str | None = None

    def update(self, target: str, done: int, total: int, name: str) -> None:
        from tqdm import tqdm

        if target != self.target:
            self.close()
            self.target = target
            self.bar = tqdm(total=total, desc=target, unit="tensor", file=sys.stderr, leave=True)
        self.bar.n = done
        self.bar.set_postfix_str(name, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_types(json_: bool) -> None:
    from ggufkit.quantize.quant_types import ALIASES, QUANT_TYPES

    rows = [{"name": q.name, "main_type": None if q.only_copy else q.main_type.name,
             "bits_per_weight": None if q.only_copy else round(q.bits_per_weight, 4),
             "needs_imatrix": q.needs_imatrix, "description": q.description} for q in QUANT_TYPES]
    if json_:
        print_json(rows)
        return
    sys.stdout.write(fitted_table(
        [[r["name"].lower(), (r["main_type"] or "-").lower(),
          "-" if r["bits_per_weight"] is None else f"{r['bits_per_weight']:.2f}",
          "yes" if r["needs_imatrix"] else "", r["description"]] for r in rows],
        ["type", "main", "main bpw", "imatrix", "description"]) + "\n")
    sys.stdout.write("\nmain bpw: bits per weight of the main type, which most tensors get. Mixes\n"
                     "(k-quant *_S/_M/_L, the i-quant mixes) give some tensors other types, so a\n"
                     "file's overall figure differs; the descriptions' \"overall\" figures are\n"
                     "llama-quantize's for those mixes.\n")
    sys.stdout.write("aliases: " + ", ".join(f"{a.lower()} = {t.lower()}" for a, t in ALIASES.items()) + "\n")


def _print_reports(reports: list) -> None:
    rows = []
    for r in reports:
        where = ", ".join(r.outputs) if r.outputs else "(dry run: nothing written)"
        size = ("~" if r.dry_run else "") + human_bytes(r.output_bytes)
        kinds = " ".join(f"{k}:{n}" for k, n in r.tensor_types.items())
        q = r.quality
        quality = [] if q is None else [f"{q['ppl']:.4f}", f"{q['kld_mean']:.6f}", f"{100 * q['same_top']:.2f} %"]
        rows.append([r.type, where, f"{human_bytes(r.input_bytes)} -> {size}", f"{r.bits_per_weight:.2f}",
                     f"{r.ratio:.2f}x", f"{r.seconds:.2f}", kinds, *quality])
    header = ["type", "output", "size", "bpw", "smaller", "seconds", "tensors"]
    if any(r.quality for r in reports):
        header += ["PPL", "mean KLD", "same top"]
    sys.stdout.write(fitted_table(rows, header) + "\n")
    q = next((r.quality for r in reports if r.quality), None)
    if q:
        sys.stdout.write(f"input PPL {q['base_ppl']:.4f}; quality over {q['chunks']} chunks of {q['ctx']} tokens "
                         "(see `ggufkit eval` for every statistic)\n")
