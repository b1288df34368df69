"""Compile a spec to PyTorch: build the spatial transformer, check that torch agrees with the
catalog row by row (parameter counts, and output shapes in a dry forward), and print the
table: declared and inferred output shape and parameters per row, MACs, and totals.

`--input-size` re-infers shapes, the head and the cost at another size. `-o FILE` saves the
compiled module (`torch.load(FILE, weights_only=False)` gives it back). `--json` prints the
contract for scripts, shapes as [C, H, W].

`--backbone NAME [--num-classes K]` compiles the whole model, `backbone(stn(x))`, at the
backbone's resolution (unless `--input-size`), and runs the liveness check on 2 random images:
θ must reach the output and every localization and head parameter must learn
(compiler/liveness.py). `-o` then saves the whole model. Several specs compile into one model:
their transformers apply in the order given, each at its `at:` site (the input, or a backbone
module such as `layer2`, at the feature map there); each gets its own table.

`--emit python` writes the spatial transformer as standalone PyTorch source instead (to `-o`,
else stdout; compiler/emit.py). `--fuse` saves the inference path: batch norm folded,
channels-last (compiler/fuse.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstndsl import check, parser
from lstndsl.commands._output import (
    as_flags,
    check_output_file,
    dump_json,
    human,
    num,
    parse_size,
    table,
)
from lstndsl.errors import UsageError
from lstndsl.ir import format_shape

HELP = "compile a spec to PyTorch and print its per-row table"
ORDER = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "specs",
        metavar="SPEC",
        nargs="+",
        help="one spec, or several: their transformers apply in the order given, each at its"
        " `at:` site",
    )
    p.add_argument("--input-size", metavar="N|HxW", help="compile for this input size")
    p.add_argument(
        "--backbone",
        metavar="NAME",
        help="put a classifier behind the transformer (timm or torchvision name, from scratch;"
        " compiled at its resolution) and check that the transformer is live",
    )
    p.add_argument("--num-classes", type=int, metavar="K", help="the backbone's classes")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-o", "--output", metavar="FILE", help="save the compiled module here")
    p.add_argument("--emit", choices=["python"], help="write standalone PyTorch source instead")
    p.add_argument("--fuse", action="store_true", help="save the fused inference module (-o)")


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

    from compiler.build import build, check_backbone_args

    check_output_file(args.output, list(args.specs))
    with as_flags():
        check_backbone_args(args.backbone, args.num_classes)
        specs = [parser.parse_file(path) for path in args.specs]
        size = parse_size(args.input_size)
        model: Any = build(
            specs, backbone=args.backbone, num_classes=args.num_classes, input_size=size
        )
    args.spec = args.specs[0]  # emit and fuse work on the first (emit: the only) spec
    analyses = [stn.analysis for stn in model.transformers.values()]
    sites = list(model.sites.values())
    backbone = _backbone_report(model, args) if args.backbone is not None else None
    what = "compiled module"
    if args.emit or args.fuse:  # lstndsl/commands/export.py; None: the source went to stdout
        from lstndsl.commands.export import emit_or_fuse

        if args.emit and len(specs) > 1:
            raise UsageError("--emit python writes one spatial transformer: give one spec")
        model, what = emit_or_fuse(args, specs[0], analyses[0].input[1:], model)
        if model is None:
            return 0
    if args.output and not args.emit:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        torch.save(model, args.output)
    if args.json:
        first = contract(analyses[0])
        if len(analyses) > 1:
            first["transformers"] = [
                {"site": site, **contract(a)} for site, a in zip(sites, analyses, strict=True)
            ]
        dump_json({**first, **(backbone or {})})
        return 0
    for k, (path, site, analysis) in enumerate(zip(args.specs, sites, analyses, strict=True)):
        if k:
            print()
        _print_table(path, site, analysis)
    if backbone is not None:
        _print_backbone(backbone)
    warnings = sum(len(a.warnings) for a in analyses)
    if warnings:
        print(f"{warnings} warning(s): see `lstndsl check {' '.join(args.specs)}`")
    if args.output:
        print(f"saved the {what} to {args.output}")
    return 0


def _print_table(path: str, site: str, analysis: check.Analysis) -> None:
    spec = analysis.spec
    c, h, w = analysis.input
    at_declared = (h, w) == (spec.input.height, spec.input.width)
    at = "" if at_declared else f" (declared {spec.input.height}×{spec.input.width})"
    where = "" if site == "input" else f" at {site}"
    print(f"{spec.name}  {path}  input {h}×{w}×{c}{at}{where}\n")
    rows = [["line", "type", "output", "declared", "params", "declared", "MACs"]]
    for r in analysis.rows:
        declared_out = format_shape(r.row.output.values) if r.row.output and at_declared else "-"
        if r.row.output and not at_declared:
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


def _backbone_report(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run the liveness check on the model with its backbone; the extra `--json` keys."""
    from compiler import backbones, liveness
    from compiler.cost import params

    live = liveness.check(model)
    net = params(model.backbone)
    stn = model.num_params()["stn"]
    return {
        "backbone": {
            "name": args.backbone,
            "library": backbones.resolve(args.backbone)[0],
            "num_classes": args.num_classes,
            "params": net,
        },
        "model_params": stn + net,
        "liveness": {
            "tensors": live.parameters,
            "output_change": live.output_change,
            "smallest_gradient": live.smallest_gradient,
            "dead_by_construction": live.dead_by_construction,
        },
    }


def _print_backbone(report: dict[str, Any]) -> None:
    b, live = report["backbone"], report["liveness"]
    classes = "its default classes" if b["num_classes"] is None else f"{b['num_classes']} classes"
    print(
        f"backbone: {b['name']} ({b['library']}, from scratch, {classes}), {num(b['params'])}"
        f" parameters; model total {num(report['model_params'])}"
    )
    dead = live["dead_by_construction"]
    print(
        f"liveness: moving θ changes the output (by up to {live['output_change']:.3g}); after one"
        f" optimizer step every localization and head tensor ({live['tensors'] - len(dead)})"
        " gets a finite, non-zero gradient"
    )
    if dead:
        print(
            f"  {len(dead)} convolution bias(es) before a batch norm get none by construction"
            " (the batch norm subtracts the mean): they count as parameters but never learn"
        )
