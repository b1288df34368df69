"""lstndsl: spatial-transformer localization nets written as the paper's layer tables.

The Python API is kept small:

- `lstndsl.load(path) -> Spec`: parse and check a spec; raises `SpecInputError` (unusable
  input) or `SpecCheckError` (declared numbers that disagree), each carrying diagnostics
  with path:line:col.
- `lstndsl.parse(text, path) -> Spec`: parse only.
- `lstndsl.analyze(spec, input_size=None) -> Analysis`: inferred shapes, parameters and
  costs per row, and every diagnostic, without raising.
- `compiler.build(spec, ...)` (the `compiler` package) turns a Spec into PyTorch modules.

Importing lstndsl never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from lstndsl.check import Analysis, analyze
from lstndsl.errors import (
    CompileError,
    Diagnostic,
    LstnError,
    SpecCheckError,
    SpecInputError,
)
from lstndsl.ir import Spec
from lstndsl.parser import parse, parse_file

__all__ = [
    "Analysis",
    "CompileError",
    "Diagnostic",
    "LstnError",
    "Spec",
    "SpecCheckError",
    "SpecInputError",
    "analyze",
    "load",
    "parse",
]

__version__ = "0.1.0"


def load(path: str | Path) -> Spec:
    """Parse and check the spec at `path`. Raises on any error; warnings do not raise."""
    spec = parse_file(path)
    analyze(spec).raise_for_errors()
    return spec
