"""Print a spec with its table's columns aligned. `--fill` writes the inferred Output Shape
and Parameters into empty cells; `--write` rewrites the file instead of printing: atomically
(a new file renamed over the old), keeping its byte-order mark and its mode."""

from __future__ import annotations

import argparse
import codecs
import sys
from pathlib import Path

from lstndsl import parser
from lstndsl.commands._output import write_atomic
from lstndsl.fmt import format_spec

HELP = "align a spec's table; --fill writes inferred values into empty cells"
ORDER = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--fill", action="store_true", help="fill empty Output Shape and Parameters")
    p.add_argument("--write", action="store_true", help="rewrite SPEC in place")


def run(args: argparse.Namespace) -> int:
    text = parser.read_source(args.spec)
    out = format_spec(text, args.spec, fill=args.fill)
    if args.write:
        if out != text:
            path = Path(args.spec)
            with path.open("rb") as f:
                bom = f.read(3) == codecs.BOM_UTF8
            write_atomic(path, ("\ufeff" if bom else "") + out)  # a crash leaves the old file
            print(f"reformatted {args.spec}", file=sys.stderr)
        return 0
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0
