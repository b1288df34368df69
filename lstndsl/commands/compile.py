"""Compile a spec to PyTorch: build the spatial transformer, check that torch agrees with the
catalog row by row (parameter counts, and output shapes in a dry forward), and print the
table: declared and inferred output shape and parameters per row, MACs, and totals.

`--input-size` re-infers shapes, the head and the cost at another size. `-o FILE` saves the
compiled module (`torch.load(FILE, weights_only=False)` gives it back). `--json` prints the
contract for scripts, shapes as [C, H, W].
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lstndsl import check, parser
from lstndsl.commands._output import dump_json, human, num, parse_size, table
from lstndsl.ir import format_shape

HELP = "compile a spec to PyTorch and print its per-row table"
ORDER = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--input-size", metavar="N|HxW", help="compile for this input size")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-o", "--output", metavar="FILE", help="save the compiled module here")


def contract(analysis: check.Analysis) -> dict[str, object]:
    """The `compile --json` contract (keys are stable; scripts rely on them)."""
    return {
        "name": analysis.spec.name,
        "input": list(analysis.input),
        "layers": [
            {
                "line": r.row.pos.line,
                "type": r.row.type.text,
                "output": list(r.output or ()),
                "params": r.params,
                "macs": r.macs,
            }
            for r in analysis.rows
        ],
        "localization_output": list(analysis.localization_output),
        "params": {
            "localization": analysis.params_localization,
            "head": analysis.params_head,
            "total": analysis.params_total,
        },
        "head": [
            {"type": r.name, "output": list(r.output), "params": r.params, "macs": r.macs}
            for r in analysis.head
        ],
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from compiler.build import analyze_for_build, build_stn, verify

    size = parse_size(args.input_size)
    spec = parser.parse_file(args.spec)
    analysis = analyze_for_build(spec, size)
    stn = build_stn(spec, analysis)
    verify(stn, analysis)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        torch.save(stn, args.output)
    if args.json:
        dump_json(contract(analysis))
        return 0
    c, h, w = analysis.input
    at = "" if size is None else f" (declared {spec.input.height}×{spec.input.width})"
    print(f"{spec.name}  {args.spec}  input {h}×{w}×{c}{at}\n")
    rows = [["line", "type", "output", "declared", "params", "declared", "MACs"]]
    for r in analysis.rows:
        declared_out = format_shape(r.row.output.values) if r.row.output and size is None else "-"
        if r.row.output and size is not None:
            declared_out = f"({format_shape(r.row.output.values)})"
        terms = r.param_terms
        rows.append(
            [
                str(r.row.pos.line),
                r.row.type.text,
                format_shape(r.output or ()),
                declared_out,
                "+".join(map(str, terms)) if len(terms) > 1 else num(r.params),
                "+".join(map(str, r.row.params.terms)) if r.row.params else "-",
                num(r.macs),
            ]
        )
    head_text = f"head: {spec.head_text}"
    rows.append(
        [
            "",
            head_text,
            format_shape(analysis.head[-1].output) if analysis.head else "-",
            "",
            num(analysis.params_head),
            "",
            num(analysis.macs_head),
        ]
    )
    table(rows, "rlllrrr")
    total_macs = analysis.macs_localization + analysis.macs_head
    print(
        f"\nparameters: localization {num(analysis.params_localization)}"
        f" + head {num(analysis.params_head)} = {num(analysis.params_total)}"
    )
    print(
        f"MACs (conv and linear multiply-accumulates, one image): localization"
        f" {human(analysis.macs_localization)} + head {human(analysis.macs_head)}"
        f" = {human(total_macs)}"
    )
    print(
        f"torch agrees with the catalog: {len(analysis.rows)} rows and the head,"
        f" parameter counts and output shapes (dry forward at {h}×{w})"
    )
    if analysis.warnings:
        print(f"{len(analysis.warnings)} warning(s): see `lstndsl check {args.spec}`")
    if args.output:
        print(f"saved the compiled module to {args.output}")
    return 0
