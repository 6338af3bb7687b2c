"""`ggufkit diff`: what differs between two models; exit 0 same, 1 different, 2 bad input (as diff does)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ggufkit.cli.common import JsonOpt
from ggufkit.cli.output import notice, print_json, short_value, table

EXIT_DIFFERENT = 1


def diff(
    a: Annotated[Path, typer.Argument(help="A model: GGUF (a split model's first shard) or a legacy file.", show_default=False)],
    b: Annotated[Path, typer.Argument(help="The model to compare it with.", show_default=False)],
    values: Annotated[bool, typer.Option("--values", help="Also dequantize the tensors present in both (any types, same shape) and give max |Δ| and RMSE of each.")] = False,
    json_: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing: the exit code says it.")] = False,
) -> int:
    """Compare two models: metadata added, removed, changed; tensors added, removed, of another type or shape, of other bytes.

    Exit code 0: the same model byte for byte (each written as one file: same keys, values, types and
    order, same tensors and data; the split.* keys, which only say how a model is cut into files, are
    left out); 1: they differ; 2: bad input. Legacy files are compared as they convert. Long arrays
    (the vocabulary) are shown by length and first difference.
    """
    from ggufkit.cli.progress import count_bar
    from ggufkit.surgery.diff import diff as diff_models

    with count_bar(0, "diff", "B", quiet or json_) as bar:
        report = diff_models(a, b, values, None if quiet else notice, bar)
    if json_:
        print_json(report.to_dict())
    elif not quiet:
        typer.echo(render(report.to_dict()))
    return 0 if report.same else EXIT_DIFFERENT


def render(r: dict) -> str:
    m, t = r["metadata"], r["tensors"]
    lines = [f"a: {r['a']}" + (f" ({r['files']['a']} shards)" if r["files"]["a"] > 1 else ""),
             f"b: {r['b']}" + (f" ({r['files']['b']} shards)" if r["files"]["b"] > 1 else ""),
             f"metadata: {len(m['added'])} added, {len(m['removed'])} removed, {len(m['changed'])} changed"
             + ("; keys in another order" if m["order"] != "same" else "")]
    lines += [f"  + {k} ({v['type']}): {short_value(v['value'], 70)}" for k, v in m["added"].items()]
    lines += [f"  - {k} ({v['type']}): {short_value(v['value'], 70)}" for k, v in m["removed"].items()]
    for k, c in m["changed"].items():
        kind = c["type_a"] if c["type_a"] == c["type_b"] else f"{c['type_a']} -> {c['type_b']}"
        if "first_difference" in c:
            d = c["first_difference"]
            where = "" if d is None else f", first difference at {d['index']}: {short_value(d['a'], 30)} -> {short_value(d['b'], 30)}"
            lines.append(f"  ~ {k} ({kind}): {c['length_a']} -> {c['length_b']} items{where}")
        else:
            lines.append(f"  ~ {k} ({kind}): {short_value(c['a'], 35)} -> {short_value(c['b'], 35)}")
    if "alignment" in m:
        lines.append(f"  ~ alignment: {m['alignment']['a']} -> {m['alignment']['b']}")
    lines.append(f"tensors: {t['a']} and {t['b']}; {len(t['added'])} added, {len(t['removed'])} removed, "
                 f"{len(t['changed'])} of another type or shape, {t['same_bytes']} same bytes, "
                 f"{len(t['different_bytes'])} other bytes" + ("; in another order" if t["order"] != "same" else ""))
    lines += [f"  + {x['name']} {x['type']} {x['shape']}" for x in t["added"]]
    lines += [f"  - {x['name']} {x['type']} {x['shape']}" for x in t["removed"]]
    lines += [f"  ~ {x['name']}: {x['type_a']} {x['shape_a']} -> {x['type_b']} {x['shape_b']}" for x in t["changed"]]
    lines += [f"  ≠ {name}: other bytes" for name in t["different_bytes"]]
    if t["values"]:
        rows = [[v["name"], v["type_a"], v["type_b"], *(
            [v["error"], ""] if "error" in v else [f"{v['max_abs_diff']:.4g}", f"{v['rmse']:.4g}"])]
            for v in t["values"]]
        lines += ["", table(rows, ["tensor", "a", "b", "max |Δ|", "RMSE"])]
    lines.append("same model, byte for byte" if r["same"] else "the models differ")
    return "\n".join(lines)
