"""One error family for lstndsl: every diagnostic carries path:line:col and formats itself.

`Diagnostic` is one message (error, warning or note) at a source position, with an optional
hint (the fix that would make the row consistent). `LstnError` and its subclasses carry a
list of diagnostics; the CLI maps them to exit codes:

- `SpecInputError` (exit 2): the input is unusable (unreadable file, syntax, unknown words).
- `SpecCheckError` (exit 1): the spec parses but its numbers disagree with inference.
- `CompileError` (exit 1): torch disagrees with the catalog, or a built model is broken.

This module imports nothing heavy; the language layer never imports torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Diagnostic:
    """A message about one place in a spec."""

    severity: Severity
    message: str
    path: str
    line: int
    column: int
    hint: str | None = None
    #: how many characters the caret underline spans (1 = a single caret)
    width: int = 1
    #: a short stable name for the check that produced it (tests and --json use it)
    code: str = ""

    def format(self, source: str | None = None) -> str:
        """`path:line:col: error: message (hint)`, then the source line and a caret if given."""
        where = f"{self.path}:{self.line}:{self.column}" if self.line > 0 else self.path
        text = f"{where}: {self.severity}: {self.message}"  # line 0: not about a spec line
        if self.hint:
            text += f"; {self.hint}"
        if source is not None:
            lines = source.splitlines()
            if 1 <= self.line <= len(lines):
                src = lines[self.line - 1].expandtabs(1)
                gutter = f"{self.line:>5} | "
                caret = " " * (self.column - 1) + "^" + "~" * max(0, self.width - 1)
                text += f"\n{gutter}{src}\n{' ' * (len(gutter) - 2)}| {caret}"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "hint": self.hint,
        }


class LstnError(Exception):
    """Base of every error lstndsl raises on purpose. Carries one or more diagnostics."""

    def __init__(
        self, diagnostics: list[Diagnostic], source: str | None = None, exit_code: int = 1
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        #: the spec text, so the CLI can show the offending line
        self.source = source
        self.exit_code = exit_code

    def __str__(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class SpecInputError(LstnError):
    """The input cannot be used: unreadable, malformed, or names something unknown (exit 2)."""

    def __init__(self, diagnostics: list[Diagnostic], source: str | None = None) -> None:
        super().__init__(diagnostics, source, exit_code=2)


class SpecCheckError(LstnError):
    """The spec's declared numbers disagree with inference (exit 1)."""

    def __init__(self, diagnostics: list[Diagnostic], source: str | None = None) -> None:
        super().__init__(diagnostics, source, exit_code=1)


class CompileError(LstnError):
    """Building or verifying the PyTorch module failed at a row (exit 1)."""

    def __init__(self, diagnostics: list[Diagnostic], source: str | None = None) -> None:
        super().__init__(diagnostics, source, exit_code=1)


class UsageError(LstnError):
    """A command-line value that cannot be used, e.g. a bad --input-size (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__([Diagnostic("error", message, "lstndsl", 0, 0)], None, exit_code=2)

    def __str__(self) -> str:
        return f"lstndsl: error: {self.diagnostics[0].message}"


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str | None:
    """A "did you mean …?" hint from the closest choices, or None when nothing is close."""
    pool = sorted(set(choices))
    close = difflib.get_close_matches(word.lower(), [c.lower() for c in pool], n=n, cutoff=0.6)
    if not close:
        return None
    by_lower = {c.lower(): c for c in pool}
    quoted = [f"'{by_lower[c]}'" for c in close]
    return "did you mean " + " or ".join(quoted) + "?"


def sort_key(d: Diagnostic) -> tuple[str, int, int]:
    return (d.path, d.line, d.column)


def sorted_diagnostics(diags: Sequence[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=sort_key)
