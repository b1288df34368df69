"""Spec text -> Document -> typed IR.

`parse_document` runs the Lark grammar (grammar/spec.lark, LALR with positions) and returns a
`Document` (document.py): header lines and table rows as cells of items, each with its source
position, nothing interpreted yet (fmt works on this). A syntax error becomes a
`SpecInputError` with its line and column: Lark's own errors never escape. `parse` then hands
the Document to interpret.py, which turns words into IR (interpret.py imports the Document
types from document.py, not from here: no import circle).
"""

from __future__ import annotations

import re
from pathlib import Path

import lark

from lstndsl import ir, syntax
from lstndsl.document import Atom, Document, Header, Item, RawCell, RawRow
from lstndsl.errors import Diagnostic, SourceLines, SpecInputError
from lstndsl.interpret import build_spec

__all__ = [
    "Atom",
    "Document",
    "Header",
    "Item",
    "RawCell",
    "RawRow",
    "parse",
    "parse_document",
    "parse_file",
    "read_source",
]

# --- Lark -> Document ---------------------------------------------------------------------


_TERMINAL_NAMES = {
    "WORD": "a word",
    "NUMBER": "a number",
    "DIMS": "dimensions such as 3×3×8×4",
    "DASH": "'-'",
    "PIPE": "'|'",
    "COLON": "':'",
    "_SEP": "',' or '+' or '->'",
    "_EQ": "'='",
    "_DOTDOT": "'..'",
    "_NL": "the end of the line",
    "TEXT": "a name",
    "NAME_KEY": "a header such as 'name:'",
    "SEPARATOR": "a Markdown delimiter row (|---|---|)",
    "CAPTION": "a caption",
    "$END": "the end of the file",
}


def _expected(names: set[str] | frozenset[str]) -> str:
    described = sorted({_TERMINAL_NAMES.get(n, n.lower()) for n in names})
    return ", ".join(described[:-1]) + (" or " if len(described) > 1 else "") + described[-1]


def _syntax_error(err: lark.exceptions.UnexpectedInput, path: str, text: str) -> SpecInputError:
    line, column = max(1, err.line), max(1, err.column)
    lines = SourceLines(text).lines  # split as Lark counts lines: at '\n' only
    if isinstance(err, lark.exceptions.UnexpectedToken) and err.token.type == "$END":
        if len(lines) > 1 and not lines[-1]:
            lines.pop()  # the end of the last line, not the empty line after it
        line, column = len(lines), len(lines[-1]) + 1
        found = "the end of the file"
    else:
        src = lines[line - 1] if 0 < line <= len(lines) else ""
        char = src[column - 1 : column] if column <= len(src) else ""
        if isinstance(err, lark.exceptions.UnexpectedToken) and err.token.type == "_NL":
            found = "the end of the line"
        else:
            found = f"'{char}'" if char else "the end of the line"
    expected = getattr(err, "expected", None) or getattr(err, "allowed", None) or set()
    message = f"unexpected {found}"
    hint = f"expected {_expected(expected)}" if expected else None
    if isinstance(err, lark.exceptions.UnexpectedToken) and "COLON" in expected:
        hint = "a header line is 'key: value', e.g. 'input: 224x224x3'"
        if found == "'|'":
            hint = (
                "a table row starts with '|': | Type | Filter Shape | Output Shape | Parameters |"
            )
    return SpecInputError([Diagnostic("error", message, path, line, column, hint, code="syntax")])


#: the most a spec file may hold (the largest real spec is 5 kB; 20,000 rows are 1 MB)
MAX_SPEC_BYTES = 16 * 2**20


def read_source(path: str | Path) -> str:
    """Read a spec file; unreadable or undecodable input is a SpecInputError with a position."""
    name = str(path)
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)  # /dev/zero, a log file: never more than this
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        reason = "its path has a NUL character" if isinstance(err, ValueError) else err.strerror
        reason = reason or str(err)
        raise SpecInputError(
            [Diagnostic("error", f"cannot read the spec: {reason}", name, 1, 1, code="read")]
        ) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecInputError(
            [
                Diagnostic(
                    "error",
                    f"the spec is larger than {MAX_SPEC_BYTES // 2**20} MB; reading stopped there",
                    name,
                    1,
                    1,
                    "a spec is a page of text: is this the right file?",
                    code="read",
                )
            ]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = err.start - (before.rfind(b"\n") + 1) + 1
        raise SpecInputError(
            [
                Diagnostic(
                    "error",
                    f"the spec is not UTF-8 text (byte 0x{data[err.start]:02x})",
                    name,
                    line,
                    column,
                    "save it as UTF-8",
                    code="read",
                )
            ]
        ) from None


def normalized(text: str) -> str:
    """The text the grammar reads: without a byte-order mark, and with each carriage return
    that is not part of a CRLF (old Mac line endings) read as a line feed. Both keep every
    other character where it was, so positions agree with the file."""
    text = text.lstrip("\ufeff")
    return re.sub(r"\r(?!\n)", "\n", text) if "\r" in text else text


def parse_document(text: str, path: str = "<spec>") -> Document:
    """Run the grammar. Raises SpecInputError (with the position) on a syntax error."""
    text = normalized(text)
    doc = Document(path=path, source=text)
    try:
        lines = syntax.lines(text)
    except lark.exceptions.UnexpectedInput as err:
        raise _syntax_error(err, path, text) from None
    for line in lines:
        if isinstance(line, Header):
            doc.headers.append(line)
        elif isinstance(line, RawRow):
            doc.rows.append(line)
        elif isinstance(line, syntax.Caption):
            doc.caption = (line.text, line.line)
        elif isinstance(line, syntax.Separator):
            doc.separator_lines.append(line.line)
    return doc


def parse(text: str, path: str = "<spec>") -> ir.Spec:
    """Spec text -> IR. Raises SpecInputError (exit 2) on anything unusable."""
    text = normalized(text)
    try:
        return build_spec(parse_document(text, path))
    except SpecInputError as err:
        err.source = text
        raise


def parse_file(path: str | Path) -> ir.Spec:
    return parse(read_source(path), str(path))
