"""How diagnostics are shown: the source line under the caret split as the parser counts lines
(at '\\n' only, whatever the line endings and control characters), invisible characters
escaped, long lines clipped around the column, and a cap on how many are printed; and the
fast row reader (lstndsl/syntax.py) agreeing with Lark on every row.

Not here: which errors a spec gets (test_parser.py, test_check.py, the golden fixtures).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstndsl import syntax
from lstndsl.errors import MAX_SHOWN, Diagnostic, SourceLines, SpecInputError, format_diagnostics
from lstndsl.parser import parse, parse_document

HEADER = "input: 32x32x3\nhead: flatten -> fc 6\n"
TABLE = "| Type | Filter Shape |\n|---|---|\n"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPECS = Path(__file__).resolve().parent.parent / "specs"


def shown(text: str) -> tuple[Diagnostic, list[str]]:
    with pytest.raises(SpecInputError) as info:
        parse(text, "t.spec")
    d = info.value.diagnostics[0]
    return d, d.format(info.value.source).splitlines()


@pytest.mark.parametrize("odd", ["\x0b", "\x0c", "\u2028", "\x1c", "\x85", "\u2029"])
def test_the_caret_shows_the_line_the_parser_counted(odd: str) -> None:
    # a comment with a character that str.splitlines() would split at: not a line break
    d, lines = shown(f"# a{odd}b\n" + HEADER + TABLE + "| Reluu | |\n")
    assert (d.line, d.column) == (6, 3)
    assert lines[1] == "    6 | | Reluu | |"
    assert lines[2] == "      |   ^~~~~"


def test_the_caret_is_right_for_crlf_and_cr_only_line_endings() -> None:
    text = HEADER + TABLE + "| Reluu | |\n"
    for newline in ("\r\n", "\r"):
        d, lines = shown(text.replace("\n", newline))
        assert (d.line, d.column) == (5, 3)
        assert lines[1:] == ["    5 | | Reluu | |", "      |   ^~~~~"]


def test_cr_only_line_endings_read_like_lf() -> None:
    text = HEADER + TABLE + "| Conv | 3x3x3x4 |\n"
    assert parse(text.replace("\n", "\r"), "t.spec").semantic() == parse(text, "t.spec").semantic()


def test_invisible_characters_are_escaped_in_messages_and_shown_in_the_line() -> None:
    d, lines = shown(HEADER + TABLE + "| Conv\u200b | |\n")
    assert (d.line, d.column) == (5, 7)
    assert lines[0] == "t.spec:5:7: error: unexpected '\\u200b'" + lines[0].split("'\\u200b'")[1]
    assert "\u200b" not in "\n".join(lines)
    assert lines[1] == "    5 | | Conv\N{REPLACEMENT CHARACTER} | |"
    assert lines[2] == "      |       ^"
    d, lines = shown(HEADER + TABLE + "| Conv \x0b | |\n")
    assert (d.line, d.column) == (5, 8)
    assert lines[0].startswith("t.spec:5:8: error: unexpected '\\x0b'")
    assert lines[1] == "    5 | | Conv \u240b | |"


def test_a_long_line_is_clipped_around_the_column() -> None:
    text = HEADER + TABLE + "| Conv " + "a" * 100_000 + " Reluu " + "b " * 50_000 + "| |\n"
    d, lines = shown(text)
    assert (d.line, d.column) == (5, 3)  # 'Conv aaaa…' is one unknown word
    assert lines[1] == "    5 | | Conv " + "a" * 113 + "…"
    column = len("| Conv ") + 100_000 + 2
    line, caret = SourceLines(text).show(5, column, 5) or ("", "")
    assert len(line) == 122 and line.startswith("…a") and line.endswith("b …")
    assert line[caret.index("^") :].startswith("Reluu") and caret.endswith("^~~~~")


def test_past_the_cap_one_line_says_how_many_more() -> None:
    diags = [Diagnostic("error", "bad", "t.spec", n, 1, code="bad-table") for n in range(1, 501)]
    out = format_diagnostics(diags, "x\n" * 500)
    assert len(out) == MAX_SHOWN + 1
    assert out[-1] == (
        "t.spec: and 470 more like it (bad-table): 470 errors not shown;"
        " lstndsl check --json lists every one"
    )
    assert format_diagnostics(diags, None, limit=None)[-1].startswith("t.spec:500:1:")


def test_twenty_thousand_rows_after_the_total(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "big.spec"
    row = "| Conv, BN | 1×1×4×10 | 52×52×10 | 50+20 |\n"
    lstn = (SPECS / "lstn.spec").read_text(encoding="utf-8")
    path.write_text(lstn + row * 20_000, encoding="utf-8")
    first = len(lstn.splitlines()) + 1
    result = cli("check", path)
    assert result.code == 2
    err = result.err.splitlines()
    assert len(err) == 3 * MAX_SHOWN + 1
    assert (
        err[0]
        == f"{path}:{first}:3: error: a row after the Total row; the Total row ends the table"
    )
    assert err[-1] == (
        f"{path}: and 19,970 more like it (bad-table): 19,970 errors not shown;"
        " lstndsl check --json lists every one"
    )


# --- the fast row reader agrees with Lark -----------------------------------------------

ROWS = [
    line
    for path in [*sorted((FIXTURES / "good").glob("*.spec")), *sorted(SPECS.glob("*.spec"))]
    for line in path.read_text(encoding="utf-8").splitlines()
    if line.lstrip().startswith("|")
]
PIECES = [
    "|",
    " | ",
    "Conv",
    " 3x3x3x8",
    " 0.5..2",
    ",",
    " + ",
    "->",
    "=",
    "..",
    "-",
    "—",
    " # c |",
    "$",
    "\\times",
    "1,024",
    "1e5",
    ".5",
    "x",
    " ",
    "\t",
    "stride 2",
    ":",
    "--",
]


def both(text: str) -> tuple[list[object], list[object]]:
    """The lines as the two readers give them; Lark's error class when it refuses."""
    out = []
    for fast in (True, False):
        try:
            out.append(syntax.lines(text, fast=fast))
        except Exception as err:  # compared, not swallowed
            out.append([type(err).__name__, getattr(err, "line", 0), getattr(err, "column", 0)])
    return out[0], out[1]


def test_the_fast_reader_reads_every_real_row() -> None:
    assert len(ROWS) > 100
    for line in ROWS:
        assert syntax.fast_row(line, 1, 0) is not None or "-" * 3 in line, line
        fast, slow = both(TABLE + line + "\n")
        assert fast == slow, line


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=12))
def test_the_fast_reader_agrees_with_lark(pieces: list[str]) -> None:
    text = TABLE + "".join(pieces) + "\n| Conv |\n"
    fast, slow = both(text)
    assert fast == slow


def test_document_rows_are_the_same_either_way() -> None:
    text = (SPECS / "lstn.spec").read_text(encoding="utf-8")
    assert parse_document(text).rows == [
        x for x in syntax.lines(text, fast=False) if hasattr(x, "cells")
    ]
