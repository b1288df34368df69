"""The `lstndsl` command line: thin. Flags -> one library call -> print.

Each subcommand is a module in `lstndsl/commands/` with `HELP`, `ORDER`, `add_arguments(p)` and
`run(args) -> int`; this file finds them, so adding a command never touches it. Command modules
import torch and friends inside `run`, so `lstndsl check` stays instant.

Exit codes: 0 clean, 1 check or compile errors, 2 unusable input (syntax, unknown words,
unreadable files, bad flags) or an unusable place (a read-only or full file system, standard
output closed, full or unable to encode the text), 3 a bug in lstndsl. No traceback reaches the
user unless `--debug` is given.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, TextIO

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
    _stderr_never_fails()
    parser = make_parser()
    args = parser.parse_args(argv)
    original = sys.stdout
    sys.stdout = _Stdout(original)
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # a full device shows here, not at the interpreter's exit
        return code
    except LstnError as err:
        from lstndsl.commands._output import print_diagnostics

        print_diagnostics(err.diagnostics, err.source)
        return err.exit_code
    except KeyboardInterrupt:
        print("lstndsl: interrupted", file=sys.stderr)
        return 130
    except StdoutFailed as err:
        if args.debug:
            raise
        print(f"lstndsl: error: cannot write to standard output: {err}", file=sys.stderr)
        _point_at_devnull(original)
        return 2
    except OSError as err:
        if args.debug:
            raise
        where = f"{err.filename}: " if err.filename is not None else ""
        print(f"lstndsl: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except Exception as err:
        if args.debug:
            raise
        print(
            f"lstndsl: internal error: {type(err).__name__}: {err}\n"
            "  this is a bug in lstndsl; run again with --debug for the traceback",
            file=sys.stderr,
        )
        return 3
    finally:
        sys.stdout = original


class StdoutFailed(Exception):
    """Standard output cannot take the text: a closed pipe, a full device, its encoding."""


class _Stdout:
    """sys.stdout as it was, with its failures told apart from those of other files."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except UnicodeEncodeError as err:
            bad = err.object[err.start : err.end]
            raise StdoutFailed(
                f"its encoding, {err.encoding}, has no {' '.join(f'U+{ord(c):04X}' for c in bad)}"
                " (set PYTHONIOENCODING=utf-8, or a UTF-8 locale)"
            ) from err
        except BrokenPipeError as err:
            raise StdoutFailed("the pipe was closed before the output ended") from err
        except OSError as err:
            raise StdoutFailed(err.strerror or str(err)) from err

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError as err:
            raise StdoutFailed("the pipe was closed before the output ended") from err
        except OSError as err:
            raise StdoutFailed(err.strerror or str(err)) from err

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _stderr_never_fails() -> None:
    """Messages reach stderr whatever its encoding (PYTHONIOENCODING=ascii: θ becomes \\u03b8)."""
    reconfigure = getattr(sys.stderr, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def _point_at_devnull(stream: TextIO) -> None:
    """Send what is left of stdout to /dev/null, so that the interpreter's last flush does not
    fail a second time (Python's advice for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (a test's capture): nothing to flush at exit


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
