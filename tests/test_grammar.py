"""The grammar (lstndsl/grammar/spec.lark) through `parser.parse_document`: what the lexer and
LALR parser make of spec text, before any word is interpreted.

Covers: dimension spellings (×, x, X, *, \\times, $…$), numbers with thousands separators,
ranges, dashes as empty cells, delimiter rows, captions, comments, line endings, trailing
pipes, and syntax errors (one per parse, at the right line and column, code "syntax").

Not here: what words mean (test_parser.py), inference (test_check.py).
"""

from __future__ import annotations

import pytest

from lstndsl.errors import SpecInputError
from lstndsl.parser import Document, parse_document

TABLE = "| Type | Filter Shape |\n|---|---|\n"


def cell_atoms(doc: Document, row: int, col: int) -> list[tuple[str, object]]:
    return [(a.kind, a.value) for i in doc.rows[row].cells[col].items for a in i.atoms]


@pytest.mark.parametrize(
    "written",
    [
        "3×3×8×4",
        "3x3x8x4",
        "3X3X8X4",
        "3*3*8*4",
        "3 × 3 × 8 × 4",
        "3 x 3 x 8 x 4",
        "3\\times3\\times8\\times4",
        "3 \\times 3 \\times 8 \\times 4",
        "$3 \\times 3 \\times 8 \\times 4$",
        "$3\\times 3 \\times 8\\times4$",
    ],
)
def test_every_dimension_spelling_is_one_dims_atom(written: str) -> None:
    doc = parse_document(TABLE + f"| Conv | {written} |\n")
    assert cell_atoms(doc, 1, 1) == [("DIMS", (3, 3, 8, 4))]
    assert doc.rows[1].cells[1].text == written  # the cell keeps its text, dollars included


def test_numbers_thousands_separators_floats_and_ranges() -> None:
    doc = parse_document(
        "| Type | Parameters |\n|---|---|\n| Total | 1,184 |\n| Dropout 0.25 | 112+8 |\n"
        "| BN, eps 1e-3 | 3,690 |\n"
    )
    assert cell_atoms(doc, 1, 1) == [("NUMBER", 1184)]
    assert cell_atoms(doc, 2, 0) == [("WORD", "Dropout"), ("NUMBER", 0.25)]
    assert cell_atoms(doc, 2, 1) == [("NUMBER", 112), ("NUMBER", 8)]
    assert [len(c.items) for c in doc.rows[2].cells] == [1, 2]  # '+' separates items
    assert cell_atoms(doc, 3, 0)[-1] == ("NUMBER", 0.001)
    header = parse_document("transform: similarity, scale 0.5..2\n").headers[0]
    assert [(a.kind, a.value) for a in header.items[1].atoms] == [
        ("WORD", "scale"),
        ("range", (0.5, 2.0)),
    ]


@pytest.mark.parametrize("dash", ["-", "—", "–", ""])
def test_dashes_and_blanks_are_empty_cells(dash: str) -> None:
    doc = parse_document(TABLE + f"| ReLU | {dash} |\n")
    assert doc.rows[1].cells[1].empty
    assert not doc.rows[1].cells[0].empty


@pytest.mark.parametrize(
    "delimiter",
    ["|---|---|", "|:---|---:|", "| :---: | --- |", "---|---", "|---|---", "|-|-|  # note"],
)
def test_delimiter_rows(delimiter: str) -> None:
    doc = parse_document(f"| Type | Filter Shape |\n{delimiter}\n| Conv | 3x3x3x4 |\n")
    assert doc.separator_lines == [2]
    assert [r.line for r in doc.rows] == [1, 3]


def test_one_column_table_has_a_delimiter_row() -> None:
    doc = parse_document("| Type |\n|---|\n| ReLU |\n")
    assert doc.separator_lines == [2]
    assert [r.line for r in doc.rows] == [1, 3]


def test_trailing_pipe_is_optional_and_cells_keep_positions() -> None:
    doc = parse_document(TABLE + "| Conv, stride 2 | 3x3x3x4\n")
    row = doc.rows[1]
    assert [c.text for c in row.cells] == ["Conv, stride 2", "3x3x3x4"]
    assert [(c.line, c.column) for c in row.cells] == [(3, 3), (3, 20)]
    stride = row.cells[0].items[1]
    assert stride.text == "stride 2"
    assert (stride.pos.line, stride.pos.column, stride.pos.width) == (3, 9, 8)


def test_caption_headers_and_comments() -> None:
    text = (
        "# a comment line\n"
        "Table 3. The Proposed Architecture (L-STN)   # a trailing comment\n"
        "name: L-STN (ours), v2  # not part of the name\n"
        "input: 224 x 224 x 3   # trailing\n"
        "\n"
        "| Type | Filter Shape |  # after the header row\n"
        "|---|---|\n"
        "| Conv | 3x3x3x4 |  # after a row\n"
    )
    doc = parse_document(text)
    assert doc.caption == ("Table 3. The Proposed Architecture (L-STN)", 2)
    name, size = doc.headers
    assert (name.key, name.text, name.line, name.value_column) == ("name", "L-STN (ours), v2", 3, 7)
    assert (size.key, size.text, size.line, size.value_column) == ("input", "224 x 224 x 3", 4, 8)
    assert [r.line for r in doc.rows] == [6, 8]
    assert doc.rows[1].cells[1].text == "3x3x3x4"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_endings_bom_tabs_and_missing_final_newline(newline: str) -> None:
    text = "\n".join(["", "input:\t224x224x3", "", TABLE.rstrip("\n"), "|\tConv\t|x|"])
    doc = parse_document("\ufeff" + text.replace("\n", newline))
    assert [h.key for h in doc.headers] == ["input"]
    assert doc.headers[0].line == 2
    assert [r.line for r in doc.rows] == [4, 6]


def test_multiword_header_key() -> None:
    doc = parse_document("input size: 64x64x1\n")
    assert doc.headers[0].key == "input size"


def test_header_without_value_parses() -> None:
    # the grammar accepts it; interpretation reports it (test_parser.py)
    doc = parse_document("head:\n")
    assert doc.headers[0].items == ()


@pytest.mark.parametrize(
    ("text", "line", "column", "found"),
    [
        ("input 224x224x3\n", 1, 7, "unexpected '2'"),
        ("input: 224x224x3\n| Conv @ | 3x3 |\n", 2, 8, "unexpected '@'"),
        ("input: 224x224x3\n| Conv | (3) |\n", 2, 10, "unexpected '('"),
        ("input: 3 =", 1, 11, "unexpected the end of the file"),
        ("Type | Filter Shape\n", 1, 6, "unexpected '|'"),
        ("input: 224x224x3\n\n  @\n", 3, 3, "unexpected '@'"),
        ("input: 224x224x3\nhead: fc 6 -> \n", 2, 15, "unexpected the end of the line"),
    ],
)
def test_syntax_errors_have_one_diagnostic_at_the_position(
    text: str, line: int, column: int, found: str
) -> None:
    with pytest.raises(SpecInputError) as info:
        parse_document(text, "s.spec")
    (d,) = info.value.diagnostics
    assert (d.path, d.line, d.column, d.code) == ("s.spec", line, column, "syntax")
    assert d.message == found
    assert d.hint


def test_syntax_error_hints_name_what_was_expected() -> None:
    with pytest.raises(SpecInputError) as info:
        parse_document("Type | Filter Shape\n")
    assert info.value.diagnostics[0].hint == (
        "a table row starts with '|': | Type | Filter Shape | Output Shape | Parameters |"
    )
    with pytest.raises(SpecInputError) as info:
        parse_document("input 224\n")
    hint = info.value.diagnostics[0].hint
    assert hint == "a header line is 'key: value', e.g. 'input: 224x224x3'"
    with pytest.raises(SpecInputError) as info:
        parse_document("input: 224x224x3\n| Conv | 3x3 @ |\n")
    hint = info.value.diagnostics[0].hint or ""
    assert hint.startswith("expected ") and "dimensions such as 3×3×8×4" in hint


def test_words_allow_hyphens_apostrophes_and_non_ascii_letters() -> None:
    doc = parse_document(TABLE + "| max-pool | leaky_relu |\n| Über | x |\n")
    assert cell_atoms(doc, 1, 0) == [("WORD", "max-pool")]
    assert cell_atoms(doc, 1, 1) == [("WORD", "leaky_relu")]
    assert cell_atoms(doc, 2, 0) == [("WORD", "Über")]


def test_arrows_and_semicolons_separate_items() -> None:
    for sep in ("->", "→", ",", ";", "+"):
        doc = parse_document(f"head: flatten {sep} fc 32 {sep} relu\n")
        assert [i.text for i in doc.headers[0].items] == ["flatten", "fc 32", "relu"]
