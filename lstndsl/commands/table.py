"""Print a spec as the paper's layer table, every value inferred, ready for a paper.

Type | Filter Shape | Output Shape | Parameters, then Total, as Markdown or LaTeX (booktabs).
The Type cells are the spec's; Filter Shape, Output Shape and Parameters are what the catalog
infers, so the table always agrees with the net (a misprint in the spec is an error here, as in
`lstndsl check`). `--input-size` prints it at another resolution; `--head` adds the regression
head's rows. Pure Python: never imports torch.
"""

from __future__ import annotations

import argparse
import sys

from lstndsl import check, parser, render
from lstndsl.commands._output import parse_size

HELP = "print a spec as the paper's layer table (markdown or latex), values inferred"
ORDER = 45


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--format", choices=render.FORMATS, default="markdown", help="default: markdown")
    p.add_argument("--input-size", metavar="N|HxW", help="infer the table at this input size")
    p.add_argument("--head", action="store_true", help="add the regression head's rows")


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.input_size)
    spec = parser.parse_file(args.spec)
    analysis = check.check(spec, size)
    grid = render.layer_table(analysis, head=args.head, plain=args.format == "csv")
    sys.stdout.write(render.render(grid, args.format))
    return 0
