"""Shared printing and flag parsing for the commands: diagnostics, tables, sizes, numbers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from lstndsl.errors import Diagnostic, UsageError, format_diagnostics


def print_diagnostics(
    diags: Sequence[Diagnostic], source: str | None = None, stream: TextIO | None = None
) -> None:
    """Each diagnostic as `path:line:col: severity: message`, then its source line and a caret;
    past errors.MAX_SHOWN of them, one line that says how many more."""
    out = stream or sys.stderr
    for text in format_diagnostics(diags, source):
        print(text, file=out)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """`--input-size 240` or `240x320` (H×W) -> (240, 240) / (240, 320)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX×,]\s*(\d+))?\s*", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise UsageError(f"--input-size takes N or HxW (e.g. 240 or 240x320), not '{text}'")
    h = int(m.group(1))
    return (h, int(m.group(2)) if m.group(2) else h)


#: the back end's parameter names (compiler.build) as the commands' flags spell them
FLAGS = {"num_classes": "--num-classes", "input_size": "--input-size", "a backbone": "--backbone"}


@contextlib.contextmanager
def as_flags() -> Iterator[None]:
    """Re-raise the back end's UsageErrors with its parameter names turned into flag names:
    `num_classes needs a backbone` -> `--num-classes needs --backbone`."""
    try:
        yield
    except UsageError as err:
        message = err.diagnostics[0].message
        for name, flag in FLAGS.items():
            message = re.sub(rf"(?<![-\w]){re.escape(name)}(?![\w])", flag, message)
        if message == err.diagnostics[0].message:
            raise
        raise UsageError(message) from err


def check_output_file(given: str | Path | None, inputs: list[str | None]) -> None:
    """-o must be a file of its own: not a directory, not one of this command's inputs
    (None: no -o, nothing to check)."""
    if given is None:
        return
    output = Path(given)
    if output.is_dir():
        raise UsageError(f"-o {output} is a directory; give the file to write, e.g. model.onnx")
    parent = output.parent if str(output.parent) else Path(".")
    if parent.is_dir() and not os.access(parent, os.W_OK):
        why = "a read-only file system" if _read_only(parent) else "not writable"
        raise UsageError(f"cannot write -o {output}: its directory {parent} is {why}")
    for given in inputs:
        if given and Path(given).exists() and output.exists() and os.path.samefile(given, output):
            raise UsageError(f"-o {output} is one of the inputs ({given}): it would be overwritten")


def _read_only(directory: Path) -> bool:
    return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)


def write_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` so that a crash leaves the old file or the new one, never half:
    a temporary file beside it, flushed to disk, then renamed over it (keeping its mode)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def num(n: int | float) -> str:
    """12,345 (thousands separators), for people; --json prints plain numbers."""
    return f"{n:,}" if isinstance(n, int) else f"{n:,.3g}"


def human(n: int) -> str:
    """12.3M, 4.1G: for MAC and parameter totals in prose."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def table(rows: Sequence[Sequence[str]], align: str, stream: TextIO | None = None) -> None:
    """Print rows as aligned columns; `align` has one of l/r per column. Row 0 is the header."""
    out = stream or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        cells = [
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=True)
        ]
        print("  ".join(cells).rstrip(), file=out)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=out)


def dump_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
