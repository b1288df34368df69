"""The paper's comparison grids: parameters and GMACs per backbone, alone and with each spec,
and the specs alone at every input resolution.

    lstndsl report SPEC... [--backbones resnet18,resnet50,...] [--num-classes K]
                           [--format markdown|csv|latex]

Grid 1, per backbone at its own resolution (ResNet/DenseNet 224, EfficientNet b0–b5 224 … 456):
the backbone alone, then the backbone behind each spec's spatial transformer (compiled for that
resolution). Grid 2: each spec alone at each of those resolutions. GMACs are for one image,
under the `thop` convention (the paper's "GFLOPS") and the `full` count (lstndsl/cost.py).
The specs' numbers come from the catalog (pure Python); each backbone is built from scratch
once and counted by one forward pass (resnet152 and efficientnet_b5 take a few seconds).
CSV output is the two grids one after the other, separated by a blank line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lstndsl import check, cost, parser, render
from lstndsl.errors import UsageError

HELP = "the paper's grid: parameters and GMACs per backbone, alone and with each spec"
ORDER = 50

NOTE = (
    "GMACs: multiply-accumulates (10^9) for one image. thop: the L-STN paper's convention (its"
    ' "GFLOPS"); full: every operation, the grid and sampler included (rules in'
    " lstndsl/cost.py). Backbones are built from scratch; parameters include the classifier."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument(
        "--backbones",
        metavar="A,B,...",
        help="comma-separated backbone names (default: the paper's ten; '' for none)",
    )
    p.add_argument("--num-classes", type=int, metavar="K", help="classifier size (default 1000)")
    p.add_argument("--format", choices=render.FORMATS, default="markdown", help="default: markdown")


def _names(text: str | None) -> list[str]:
    from compiler.backbones import PAPER_BACKBONES, resolve

    names = list(PAPER_BACKBONES) if text is None else [n for n in text.split(",") if n.strip()]
    for n in names:
        resolve(n.strip())  # an unknown name fails before any model is built
    return [n.strip() for n in names]


def _cells(fmt: str, *values: int) -> list[str]:
    """Parameters then MACs: grouped and in G for people, plain integers for CSV."""
    params, *macs = values
    if fmt == "csv":
        return [str(params), *(str(m) for m in macs)]
    return [render.group(params), *(render.giga(m) for m in macs)]


def run(args: argparse.Namespace) -> int:
    from compiler import backbones
    from compiler.build import analyze_for_build
    from compiler.cost import count, params

    if args.num_classes is not None and args.num_classes < 1:
        raise UsageError(f"--num-classes must be at least 1, not {args.num_classes}")
    specs = [parser.parse_file(path) for path in args.specs]
    for spec in specs:
        check.check(spec)  # a spec whose numbers disagree fails here, at its rows
    names = _names(args.backbones)
    channels = specs[0].input.channels
    classes = 1000 if args.num_classes is None else args.num_classes
    fmt = args.format
    mac_header = ["GMACs (thop)", "GMACs (full)"] if fmt != "csv" else ["MACs thop", "MACs full"]

    def stn_numbers(spec: Any, res: int) -> tuple[int, int, int]:
        analysis = analyze_for_build(spec, res)
        ops = cost.spec_ops(analysis)
        return analysis.params_total, ops.macs("thop")["total"], ops.macs("full")["total"]

    grids: list[render.Grid] = []
    resolutions: list[int] = []
    if names:
        grid = render.Grid(
            ["Model", "Input", "Parameters", *mac_header],
            align="lrrrr",
            caption=f"Backbones alone and behind each spatial transformer, {classes} classes.",
            notes=[NOTE],
        )
        for name in names:
            res = backbones.default_resolution(name)
            resolutions.append(res)
            net = backbones.create(name, num_classes=args.num_classes, in_chans=channels)
            ops = count(net, (channels, res, res))
            n, thop, full = params(net), cost.macs(ops, "thop"), cost.macs(ops, "full")
            del net
            grid.rules_before.add(len(grid.rows))
            size = f"{res}×{res}"
            grid.rows.append([name, size, *_cells(fmt, n, thop, full)])
            for spec in specs:
                sp, st, sf = stn_numbers(spec, res)
                label = f"{name} + {spec.name}"
                grid.rows.append([label, size, *_cells(fmt, n + sp, thop + st, full + sf)])
        grids.append(grid)
    if not resolutions:
        resolutions = [s.input.height for s in specs]
    grid = render.Grid(
        ["Spatial transformer", "Input", "Parameters", *mac_header],
        align="lrrrr",
        caption="Spatial transformers alone (localization net, head, grid and sampler).",
        notes=[NOTE.rsplit(" Backbones", 1)[0]],
    )
    for res in sorted(set(resolutions)):
        grid.rules_before.add(len(grid.rows))
        for spec in specs:
            grid.rows.append([spec.name, f"{res}×{res}", *_cells(fmt, *stn_numbers(spec, res))])
    grids.append(grid)
    sys.stdout.write("\n".join(render.render(g, fmt) for g in grids))
    return 0
