"""How `convert` shows its results: one file's summary, a batch's table, a dry run's plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ggufkit.cli.output import first_clause, human_bytes, table


def summary_lines(report: Any) -> list[str]:
    """One converted file, for people (a ConvertReport)."""
    m = report.metadata
    src_of = m["sources"]
    base = (f"{m['rope_freq_base']:g} ({src_of['rope_freq_base']})" if m["rope_freq_base"] is not None
            else "not set (llama.cpp: 10000)")
    more = f" (+{len(report.shards) - 1} more shards)" if len(getattr(report, "shards", ())) > 1 else ""
    lines = [f"converted {report.input} -> {report.output}{more}",
             f"  {report.file_type}, {report.tensors} tensors, {human_bytes(report.bytes)} in {report.seconds:.2f} s",
             f"  context_length {m['context_length']} ({src_of['context_length']}), "
             f"{m['eps_name']} {m[m['eps_name']]:g} ({src_of['eps']}), rope_freq_base {base}, "
             f"head_count_kv {m['head_count_kv']}",
             f"  {conversion_line(report.conversion)}"]
    if m["tokenizer"]:
        lines.append("  tokenizer: " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in m["tokenizer"].items()))
    if report.verified is not None:
        lines.append(f"  {verify_line(report.verified)}")
    return lines


def conversion_line(c: dict) -> str:
    """What happened to the blocks, e.g. "from GGJT v1: 12 tensors repacked (scales rounded to f16, ...)"."""
    parts = [f"{c['copied']} copied"] + ([f"{c['repacked']} repacked"] if c["repacked"] else []) + (
        [f"{c['requantized']} requantized ({', '.join(c['requantized_types'])})"] if c["requantized"] else [])
    loss = c["loss"]
    if c["max_scale_change"] is not None:
        loss += f", largest weight change {c['max_scale_change']:.2e} of its block's largest"
    joined = f", {c['parts']} parts joined" if c["parts"] > 1 else ""
    if c.get("permuted"):
        parts.append(f"{c['permuted']} of them with rows permuted")
    scores = "" if c["vocab_scores"] == "file" else f"; token scores {c['vocab_scores']}"
    return f"from {c['source']}{joined}: tensors {', '.join(parts)}; {loss}{scores}"


def verify_line(v: dict) -> str:
    order = f" (of them {v['rows_permuted']} in the permuted row order)" if v["rows_permuted"] else ""
    return (f"verified {v['tensors']} tensors: {v['byte_identical']} byte-identical, {v['compared_as_values']} "
            f"compared as values ({v['values_compared']} values), largest difference {v['max_abs_diff']:.3g}{order}")


def batch_table(items: list[Any], verify: bool) -> str:
    """One row per file: input, output (a renamed one shows), type, size, time, status (and what --verify
    compared)."""
    rows = []
    for i in items:
        row = [Path(i.input).name, Path(i.output).name if i.output else "-", i.file_type or "-",
               human_bytes(i.bytes) if i.bytes else "-", f"{i.seconds:.2f}" if i.status == "converted" else "-",
               i.status + (f": {first_clause(i.message)}" if i.message else "")]
        if verify:
            v = i.verified
            row.insert(5, "-" if v is None else f"{v['tensors']} tensors, max diff {v['max_abs_diff']:.2g}")
        rows.append(row)
    header = ["file", "output", "ftype", "size", "seconds", "status"]
    if verify:
        header.insert(5, "verified")
    return table(rows, header)


def plan_text(plan: Any, one: bool) -> str:
    """A dry run for people: a row per file; for one file, a row per tensor too; the disk space."""
    rows = []
    for f in plan.files:
        what = (", ".join(f"{n} {a}" for a, n in f.actions.items() if n) + f" ({f.loss})"
                if f.status == "convert" else f"{f.status}: {first_clause(f.message)}")
        if f.status == "convert" and f.message:
            what += f"; {f.message}"
        rows.append([Path(f.input).name, Path(f.output).name, f.source or "-", f.file_type or "-",
                     f"~{human_bytes(f.bytes)}" if f.bytes else "-", what])
    out = [table(rows, ["file", "output", "from", "ftype", "size", "tensors / status"])]
    if one and plan.files and plan.files[0].tensors:
        rows = [[t["name"], t["gguf_name"], t["type"], t["to_type"],
                 t["action"] + (" (rows permuted)" if t.get("rows_permuted") else ""), human_bytes(t["bytes"])]
                for t in plan.files[0].tensors]
        out.append(table(rows, ["tensor", "GGUF name", "type", "to", "action", "bytes"]))
    for c in plan.clashes:
        then = (f"--distinct-names writes the later to {Path(c['renamed_to']).name}" if c["renamed_to"]
                else "the batch is refused (--distinct-names names the later NAME-2.gguf)")
        out.append(f"clash: {c['inputs'][0]} and {c['inputs'][1]} would both be written to {c['output']}: {then}")
    free = "unknown" if plan.free_bytes is None else human_bytes(plan.free_bytes)
    n = sum(f.status == "convert" for f in plan.files)
    out.append(f"dry run: nothing written; {n} file(s) would take ~{human_bytes(plan.bytes_needed)}, "
               f"{free} free in {plan.target}")
    return "\n\n".join(out)
