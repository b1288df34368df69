"""Check specs: parse, infer every shape, parameter count and cost, and compare with every
number the spec declares. Prints each mismatch as path:line:col with the fix that would make
the row consistent, and warnings for suspicious but legal designs.

Exit status: 0 clean (warnings allowed unless --strict), 1 check errors, 2 unusable input.
Pure Python: never imports torch.
"""

from __future__ import annotations

import argparse

from lstndsl import check, parser
from lstndsl.commands._output import dump_json, num, parse_size, print_diagnostics
from lstndsl.errors import SpecInputError
from lstndsl.ir import format_shape

HELP = "check a spec's declared numbers against inference"
ORDER = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files")
    p.add_argument("--strict", action="store_true", help="warnings fail the check (exit 1)")
    p.add_argument("--input-size", metavar="N|HxW", help="also infer at this input size (H or HxW)")
    p.add_argument("--json", action="store_true", help="machine-readable results on stdout")


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.input_size)
    status = 0
    results = []
    for path in args.specs:
        try:
            spec = parser.parse_file(path)
        except SpecInputError as err:
            if not args.json:
                print_diagnostics(err.diagnostics, err.source)
            results.append(
                {"path": path, "ok": False, "diagnostics": [d.to_json() for d in err.diagnostics]}
            )
            status = max(status, 2)
            continue
        analysis = check.analyze(spec, size)
        failed = bool(analysis.errors) or (args.strict and bool(analysis.warnings))
        status = max(status, 1 if failed else 0)
        if args.json:
            results.append(
                {
                    "path": path,
                    "name": spec.name,
                    "ok": not failed,
                    "diagnostics": [d.to_json() for d in analysis.diagnostics],
                    "input": list(analysis.input),
                    "localization_output": list(analysis.localization_output),
                    "params": {
                        "localization": analysis.params_localization,
                        "head": analysis.params_head,
                        "total": analysis.params_total,
                    },
                }
            )
            continue
        print_diagnostics(analysis.diagnostics, spec.source)
        n_err, n_warn = len(analysis.errors), len(analysis.warnings)
        if n_err:
            print(
                f"{path}: {n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}"
            )
        else:
            c, h, w = analysis.input
            warned = f", {n_warn} warning{'s' * (n_warn != 1)}" if n_warn else ""
            print(
                f"{path}: ok{warned}: {spec.name}, {len(spec.rows)} rows,"
                f" {h}×{w}×{c} -> {format_shape(analysis.localization_output)},"
                f" parameters {num(analysis.params_localization)} localization"
                f" + {num(analysis.params_head)} head = {num(analysis.params_total)}"
            )
    if args.json:
        dump_json(results)
    return status
