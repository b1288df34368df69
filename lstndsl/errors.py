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
import unicodedata
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

    def format(self, source: str | SourceLines | None = None) -> str:
        """`path:line:col: error: message (hint)`, then the source line and a caret if given.
        Invisible characters in the message are escaped (\\x0b, \\u2028); give a SourceLines
        when formatting many diagnostics of one spec (a str is split again on every call)."""
        path = visible(self.path)
        where = f"{path}:{self.line}:{self.column}" if self.line > 0 else path
        text = f"{where}: {self.severity}: {_clipped(visible(self.message))}"  # line 0: no line
        if self.hint:
            text += f"; {_clipped(visible(self.hint))}"
        if source is not None:
            lines = source if isinstance(source, SourceLines) else SourceLines(source)
            shown = lines.show(self.line, self.column, self.width)
            if shown is not None:
                src, caret = shown
                gutter = f"{self.line:>5} | "
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


#: how many diagnostics a command prints for one spec before it says how many more there are
MAX_SHOWN = 30
#: the widest source line shown under a caret; a longer one is clipped around the column
MAX_SHOWN_WIDTH = 120


def _invisible(ch: str) -> bool:
    """Characters a terminal would not show as themselves: controls, format characters
    (U+200B, U+FEFF), line and paragraph separators, and every space but ' '."""
    cat = unicodedata.category(ch)
    return cat[0] == "C" or cat in ("Zl", "Zp") or (cat == "Zs" and ch != " ")


def visible(text: str) -> str:
    """The text with its invisible characters escaped as Python writes them ('\\x0b',
    '\\u2028'), so a message never hides, breaks or reorders a line."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if _invisible(ch) else ch for ch in text
    )


def _clipped(text: str, most: int = 400) -> str:
    """A message quoting 100,000 characters of a spec, cut in its middle."""
    if len(text) <= most:
        return text
    return text[: most // 2] + f" …({len(text) - most:,} characters)… " + text[-most // 2 :]


def _placeholder(ch: str) -> str:
    """One visible column for an invisible character in a shown source line (the caret below
    counts columns as the parser does: one per character)."""
    if ch == "\t":
        return " "
    if ord(ch) < 0x20:
        return chr(0x2400 + ord(ch))  # the Unicode control pictures: ␋ ␌
    return "\N{REPLACEMENT CHARACTER}" if _invisible(ch) else ch


class SourceLines:
    """A spec's text split into lines once, the way the parser counts them: at '\\n' only (a
    trailing '\\r' belongs to the line ending). Form feeds, vertical tabs and U+2028 are not
    line breaks to the grammar, so they are none here either."""

    def __init__(self, source: str) -> None:
        self.lines = [line.removesuffix("\r") for line in source.split("\n")]

    def show(self, line: int, column: int, width: int = 1) -> tuple[str, str] | None:
        """The line, made visible and clipped around `column`, and its caret line; None when
        the spec has no such line."""
        if not 1 <= line <= len(self.lines):
            return None
        src = self.lines[line - 1]
        start = 0
        if len(src) > MAX_SHOWN_WIDTH:  # clip around the column, say so with an ellipsis
            start = max(0, min(column - 1 - MAX_SHOWN_WIDTH // 2, len(src) - MAX_SHOWN_WIDTH))
        part = src[start : start + MAX_SHOWN_WIDTH]
        shown = "".join(_placeholder(ch) if not ch.isprintable() else ch for ch in part)
        pad = 0
        if start > 0:
            shown, pad = "…" + shown, 1
        if start + MAX_SHOWN_WIDTH < len(src):
            shown += "…"
        col = max(1, column - start + pad)
        span = max(1, min(width, len(shown) - col + 1))
        return shown, " " * (col - 1) + "^" + "~" * (span - 1)


def format_diagnostics(
    diags: Sequence[Diagnostic], source: str | None = None, limit: int | None = MAX_SHOWN
) -> list[str]:
    """Every diagnostic formatted, sorted by position, the source split once: linear in the
    spec. Past `limit`, one line says how many more there are, and of which kinds."""
    lines = SourceLines(source) if source is not None else None
    ordered = sorted_diagnostics(diags)
    shown = ordered if limit is None else ordered[:limit]
    out = [d.format(lines if d.line > 0 else None) for d in shown]
    rest = ordered[len(shown) :]
    if rest:
        counts: dict[str, int] = {}
        for d in rest:
            counts[d.severity] = counts.get(d.severity, 0) + 1
        kinds = ", ".join(f"{n:,} {sev}{'s' * (n != 1)}" for sev, n in counts.items())
        codes = sorted({d.code for d in rest if d.code})
        like = f" ({', '.join(codes)})" if codes else ""
        out.append(
            f"{visible(rest[0].path)}: and {len(rest):,} more like it{like}: {kinds} not shown;"
            " lstndsl check --json lists every one"
        )
    return out


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
