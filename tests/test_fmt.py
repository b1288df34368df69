"""`lstndsl fmt` and `lstndsl.fmt.format_spec`: aligned columns, `--fill`, `--write`, and the
round trip parse -> fmt -> parse giving the same IR (also on hypothesis-generated specs).

Not here: the parser's own tests (test_parser.py), checking (test_check.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lstndsl import analyze, parse
from lstndsl.errors import SpecCheckError, SpecInputError
from lstndsl.fmt import format_spec

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "specs").glob("*.spec"))

RAGGED = """# a net  | with a pipe in the comment
name: ragged   # the name
input: 32x32x3
head: flatten -> fc 6

| Type | Filter Shape | Output Shape | Parameters |
|:--|:-:|--:|---|
|Conv, BN + ReLU|3 × 3 × 3 × 4|30 × 30 × 4|112+8|   # row one
| Max pool, stride 2   | 2 × 2 × 4 × 4 |  | |
| Total |  |  | 120 |
"""


def table_lines(text: str) -> list[str]:
    return [ln.split("  #")[0] for ln in text.splitlines() if ln.startswith("|")]


def pipe_columns(line: str) -> list[int]:
    return [i for i, ch in enumerate(line) if ch == "|"]


def test_columns_are_aligned_and_everything_else_is_kept() -> None:
    out = format_spec(RAGGED, "r.spec")
    rows = table_lines(out)
    assert len(rows) == 5
    assert len({tuple(pipe_columns(r)) for r in rows}) == 1  # every pipe in one column
    assert rows[0] == "| Type               | Filter Shape  | Output Shape | Parameters |"
    assert (
        rows[1] == "|:-------------------|:-------------:|-------------:|------------|"
    )  # colons kept
    assert rows[2] == "| Conv, BN + ReLU    | 3 × 3 × 3 × 4 | 30 × 30 × 4  | 112+8      |"
    # header lines, comments and the blank line stay as written; row comments are kept
    assert out.splitlines()[:5] == RAGGED.splitlines()[:5]
    assert out.splitlines()[7].endswith("|  # row one")
    assert out.endswith("\n")


def test_fmt_is_idempotent_and_the_specs_are_already_formatted() -> None:
    once = format_spec(RAGGED)
    assert format_spec(once) == once
    for path in SPECS:
        text = path.read_text(encoding="utf-8")
        assert format_spec(text, str(path)) == text, path.name


def test_cells_keep_their_text() -> None:
    text = (
        "input: 32x32x3\nhead: flatten -> fc 6\n"
        "| Type | Filter Shape |\n|---|---|\n"
        "| conv ,stride 2 | $3 \\times 3 \\times 3 \\times 4$ |\n"
    )
    out = format_spec(text)
    assert "| conv ,stride 2 | $3 \\times 3 \\times 3 \\times 4$ |" in out


def test_fill_writes_inferred_shapes_parameters_and_total() -> None:
    out = format_spec(RAGGED, fill=True)
    rows = table_lines(out)
    assert [c.strip() for c in rows[3].strip("|").split("|")] == [
        "Max pool, stride 2",
        "2 × 2 × 4 × 4",
        "15 × 15 × 4",  # the table's own multiplication style, spaces included
        "0",
    ]
    # declared cells are never overwritten
    assert "| 30 × 30 × 4  | 112+8      |" in rows[2]
    assert analyze(parse(out)).errors == []


@pytest.mark.parametrize(
    ("filter_cell", "expected"),
    [
        ("3x3x3x4", "30x30x4"),
        ("3×3×3×4", "30×30×4"),
        ("3 × 3 × 3 × 4", "30 × 30 × 4"),
        ("3 \\times 3 \\times 3 \\times 4", "30 \\times 30 \\times 4"),
        ("$3 \\times 3 \\times 3 \\times 4$", "$30 \\times 30 \\times 4$"),
    ],
)
def test_fill_uses_the_tables_multiplication_style(filter_cell: str, expected: str) -> None:
    text = (
        "input: 32x32x3\nhead: flatten -> fc 6\n| Type | Filter Shape |\n|---|---|\n"
        f"| Conv, BN + ReLU | {filter_cell} |\n"
    )
    rows = table_lines(format_spec(text, fill=True))
    cells = [c.strip() for c in rows[2].strip("|").split("|")]
    assert cells == ["Conv, BN + ReLU", filter_cell, expected, "112+8"]


def test_fill_adds_missing_columns_and_fills_the_total() -> None:
    text = (
        "input: 32x32x3\nhead: flatten -> fc 6\nactivation: relu\n\n"
        "| Type |\n|---|\n"
        "| Conv 3, out 4, stride 2, padding 1 + BN |\n"
        "| Flatten |\n"
        "| FC 5 |\n"
        "| Total |\n"
    )
    out = format_spec(text, fill=True)
    rows = table_lines(out)
    assert [c.strip() for c in rows[0].strip("|").split("|")] == [
        "Type",
        "Output Shape",
        "Parameters",
    ]
    body = [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]
    assert body == [
        ["Conv 3, out 4, stride 2, padding 1 + BN", "16×16×4", "112+8"],
        ["Flatten", "1024", "0"],
        ["FC 5", "5", "5125"],
        ["Total", "", str(120 + 5125)],
    ]
    spec = parse(out)
    assert spec.total is not None and spec.total.total == 5245
    assert analyze(spec).errors == []


def test_fill_refuses_a_spec_whose_numbers_disagree() -> None:
    bad = RAGGED.replace("30 × 30 × 4", "31 × 31 × 4")
    with pytest.raises(SpecCheckError) as info:
        format_spec(bad, "r.spec", fill=True)
    assert [(d.line, d.column, d.code) for d in info.value.errors] == [(8, 32, "shape")]
    assert info.value.source == bad
    assert format_spec(bad) != bad  # plain fmt still aligns it


def test_fill_refuses_unknown_words_with_the_source() -> None:
    text = RAGGED.replace("Max pool", "Max pol")
    with pytest.raises(SpecInputError) as info:
        format_spec(text, fill=True)
    assert info.value.source == text
    assert info.value.diagnostics[0].code == "unknown-word"


def test_crlf_stays_crlf() -> None:
    crlf = RAGGED.replace("\n", "\r\n")
    out = format_spec(crlf)
    assert out == format_spec(RAGGED).replace("\n", "\r\n")


def test_syntax_errors_are_reported() -> None:
    with pytest.raises(SpecInputError) as info:
        format_spec("input 3\n", "s.spec")
    assert (info.value.diagnostics[0].line, info.value.diagnostics[0].column) == (1, 7)


def test_no_table_is_printed_unchanged() -> None:
    assert format_spec("input: 3\n# nothing else\n") == "input: 3\n# nothing else\n"


# --- the command ---------------------------------------------------------------------------


def test_fmt_command_prints_and_write_rewrites_in_place(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    path = write_spec(RAGGED)
    r = cli("fmt", path)
    assert (r.code, r.out) == (0, format_spec(RAGGED))
    assert path.read_text(encoding="utf-8") == RAGGED  # printing never writes
    r = cli("fmt", "--write", "--fill", path)
    assert (r.code, r.out, r.err) == (0, "", f"reformatted {path}\n")
    written = path.read_text(encoding="utf-8")
    assert written == format_spec(RAGGED, fill=True)
    assert written.startswith("# a net  | with a pipe in the comment\nname: ragged   # the name\n")
    r = cli("fmt", "--write", path)  # already formatted: nothing to do
    assert (r.code, r.err) == (0, "")
    assert path.read_text(encoding="utf-8") == written


def test_fmt_command_exit_codes(cli: Callable[..., Any], write_spec: Callable[..., Path]) -> None:
    bad = write_spec(RAGGED.replace("30 × 30 × 4", "31 × 31 × 4"), "bad.spec")
    r = cli("fmt", "--fill", bad)
    assert r.code == 1 and r.out == ""
    assert r.err.startswith(f"{bad}:8:32: error: output shape: declared 31×31×4")
    assert cli("fmt", "--fill", "--write", bad).code == 1
    assert "31 × 31 × 4" in bad.read_text(encoding="utf-8")  # untouched
    assert cli("fmt", write_spec("input 3\n", "syntax.spec")).code == 2


# --- round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_specs_round_trip(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    spec = parse(text, str(path))
    for filled in (False, True):
        again = parse(format_spec(text, str(path), fill=filled), str(path))
        assert again.semantic() == spec.semantic()


ROW_TYPES = [
    ("Conv{opts}", "3{x}3{x}{c}{x}4", ", stride 2|, padding 1| + BN| + ReLU|, no bias"),
    ("conv 1, out 2{opts}", "", " + bn| + relu|, dilation 2"),
    ("Max pool{opts}", "2{x}2", ", stride 1|, ceil mode| + ReLU"),
    ("avg pool 2{opts}", "", ", stride 1|, exclude pad"),
    ("BN{opts}", "", ", eps 0.001|, momentum 0.2"),
    ("{act}", "", ""),
    ("Dropout 0.2", "", ""),
]


@st.composite
def table_specs(draw: st.DrawFn) -> str:
    times = draw(st.sampled_from(["x", "×", " × ", "\\times", " \\times "]))
    sep = draw(st.sampled_from(["|---|---|", "|:--|--:|", "| --- | :---: |"]))
    pad = st.text(alphabet=" \t", max_size=3)
    lines = [
        "# generated",
        f"input: {draw(st.integers(24, 48))}x{draw(st.integers(24, 48))}x3",
        "head: flatten -> fc 32 -> relu -> fc 6",
    ]
    if draw(st.booleans()):
        lines.append("activation: " + draw(st.sampled_from(["relu", "tanh", "leaky relu 0.1"])))
    lines += ["", "| Type | Filter Shape |", sep]
    channels = 3
    for _ in range(draw(st.integers(1, 6))):
        type_text, filt, opts = draw(st.sampled_from(ROW_TYPES))
        chosen = draw(st.lists(st.sampled_from(opts.split("|")), unique=True)) if opts else []
        act = draw(st.sampled_from(["ReLU", "tanh", "GELU", "PReLU"]))
        cell = type_text.format(opts="".join(chosen), act=act)
        if draw(st.booleans()):
            cell = cell.upper()
        f = filt.format(x=times, c=channels)
        if type_text.startswith("Conv"):
            channels = 4
        elif type_text.startswith("conv 1"):
            channels = 2
        comment = draw(st.sampled_from(["", "  # note", "#x"]))
        lines.append(f"|{draw(pad)}{cell}{draw(pad)}|{draw(pad)}{f}{draw(pad)}|{comment}")
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(max_examples=60, deadline=None)
@given(text=table_specs())
def test_generated_specs_round_trip(text: str) -> None:
    try:
        spec = parse(text)
    except SpecInputError:  # e.g. an option drawn twice; the parser's tests cover those
        assume(False)
        return
    out = format_spec(text)
    assert parse(out).semantic() == spec.semantic()
    assert format_spec(out) == out
    if analyze(spec).errors:
        return
    filled = format_spec(text, fill=True)
    refilled = parse(filled)
    assert analyze(refilled).errors == []
    # what --fill declared is exactly what inference gives
    for row, result in zip(refilled.rows, analyze(refilled).rows, strict=True):
        assert row.output is not None and row.output.values == result.output
        assert row.params is not None and row.params.total == result.params


def test_fmt_keeps_the_at_and_tps_headers() -> None:
    text = (
        "at: layer2\ninput: 28x28x128\nhead: flatten -> fc 8\ntransform: tps 4\n"
        "| Type | Filter Shape |\n|---|---|\n| Max pool 2 | |\n"
    )
    out = format_spec(text, "t.spec")
    assert out.splitlines()[:4] == text.splitlines()[:4]
    assert parse(out, "t.spec").semantic() == parse(text, "t.spec").semantic()
    assert parse(out, "t.spec").at == "layer2"
