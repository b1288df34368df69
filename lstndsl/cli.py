"""The `lstndsl` command line: thin. Flags -> one library call -> print.

Each subcommand is a module in `lstndsl/commands/` with `HELP`, `ORDER`, `add_arguments(p)` and
`run(args) -> int`; this file finds them, so adding a command never touches it. Command modules
import torch and friends inside `run`, so `lstndsl check` stays instant.

Exit codes: 0 clean, 1 check or compile errors, 2 unusable input (syntax, unknown words,
unreadable files, bad flags). No traceback reaches the user unless `--debug` is given.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from lstndsl import commands
from lstndsl.errors import LstnError


def _command_modules() -> list[tuple[str, ModuleType]]:
    found = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"lstndsl.commands.{info.name}")
        found.append((getattr(module, "NAME", info.name), module))
    return sorted(found, key=lambda nm: (getattr(nm[1], "ORDER", 100), nm[0]))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lstndsl",
        description="Spatial-transformer localization nets, written as the paper's layer tables.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in _command_modules():
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--debug", action="store_true", help="show tracebacks")
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except LstnError as err:
        from lstndsl.commands._output import print_diagnostics

        print_diagnostics(err.diagnostics, err.source)
        return err.exit_code
    except KeyboardInterrupt:
        print("lstndsl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:
        if args.debug:
            raise
        print(
            f"lstndsl: internal error: {type(err).__name__}: {err}\n"
            "  this is a bug in lstndsl; run again with --debug for the traceback",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
