"""The paper's tables, as printed, are the table part of a spec; the three specs in specs/.

Each file of ../shared/paper/tables/ is appended verbatim (caption line included) to a short
header block. Table 1 and Table 2 check clean (Table 2 with its two linear-stack warnings);
Table 3 reports exactly its five known inconsistencies (../shared/paper/L-STN.md), each at its
row and column, with the fix that would make the row consistent, and no Total error.
The three specs check clean and carry the paper's totals.

This file does not test the CLI's printing (test_cli.py) or the compiler (test_layering.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lstndsl import analyze, load, parse
from lstndsl.check import Analysis

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
TABLES = REPO.parent / "shared" / "paper" / "tables"
HEADER = "input: 224x224x3\nhead: flatten -> fc 32 -> relu -> fc 6\n"
HEAD_224 = 52 * 52 * 10 * 32 + 32 + 32 * 6 + 6  # 865,510

needs_tables = pytest.mark.skipif(
    not TABLES.is_dir(),
    reason=f"the paper's tables are not beside the repository ({TABLES}); CI clones shared/"
    " next to it",
)


def table_spec(name: str, extra: str = "") -> tuple[str, int]:
    """Header + the printed table; returns the text and the line the table file starts on."""
    head = HEADER + extra
    return head + (TABLES / name).read_text(encoding="utf-8"), head.count("\n") + 1


def analyze_table(name: str, extra: str = "") -> tuple[Analysis, int]:
    text, first = table_spec(name, extra)
    return analyze(parse(text, name)), first


def table_row_line(first: int, row: int) -> int:
    """Source line of the table's data row `row` (1-based): caption, blank, header, delimiter."""
    return first + 3 + row


@needs_tables
def test_table1_checks_clean() -> None:
    a, first = analyze_table("table1-stn.md")
    assert a.diagnostics == []
    assert a.params_localization == 3194
    assert a.spec.total is not None and a.spec.total.total == 3194
    assert a.localization_output == (10, 52, 52)
    assert a.params_head == HEAD_224
    assert [r.row.pos.line for r in a.rows] == [table_row_line(first, i) for i in range(1, 5)]
    # the caption names the net when no `name:` header does
    assert a.spec.name == "Regular STN Localization Architecture"


@needs_tables
def test_table2_checks_clean_with_two_linear_stack_warnings() -> None:
    a, first = analyze_table("table2-vstn.md")
    assert a.errors == []
    assert a.params_localization == 3032
    assert a.localization_output == (10, 52, 52)
    # conv 3×3 ×3 (rows 1-3), then conv 3×3 ×2 (rows 5-6): each stack is one linear map;
    # the warning stands at the second convolution of the stack, where the stacking starts
    warned = [(w.code, w.line, w.column) for w in a.warnings]
    assert warned == [
        ("linear-stack", table_row_line(first, 2), 3),
        ("linear-stack", table_row_line(first, 6), 3),
    ]
    assert f"line {table_row_line(first, 3)}" in a.warnings[0].message
    assert f"line {table_row_line(first, 5)}" in a.warnings[1].message


@needs_tables
def test_table3_reports_exactly_its_five_known_inconsistencies() -> None:
    a, first = analyze_table("table3-lstn.md", "activation: relu\n")
    got = [(e.code, e.line, e.column) for e in a.errors]
    # columns: Output Shape starts at 42, Parameters at 59 in the printed table
    assert got == [
        ("shape", table_row_line(first, 1), 42),
        ("params", table_row_line(first, 4), 59),
        ("params", table_row_line(first, 7), 59),
        ("shape", table_row_line(first, 9), 42),
        ("params", table_row_line(first, 12), 59),
    ]
    e = a.errors
    assert e[0].message == "output shape: declared 112×112×4, inferred 111×111×4"
    assert e[0].hint == "declared 112×112×4 fits padding 1"
    assert e[3].message == "output shape: declared 54×54×8, inferred 53×53×8"
    assert e[3].hint == "declared 54×54×8 fits padding 1"
    for bn in (e[1], e[2]):
        assert bn.message == "parameters: declared 36+16, inferred 36+8"
        assert bn.hint == "BatchNorm2d(4) has 8 parameters, not 16"
    assert e[4].message == "parameters: declared 584+16, inferred 584"
    assert e[4].hint is not None
    assert e[4].hint.startswith("584+16 implies a batch norm the Type cell does not name")
    assert "'Conv, padding 1 + BN' would fit" in e[4].hint
    # the printed Total (3,690) adds up with the structural fixes: no Total error, and the
    # header's activation adds ReLUs, which have no parameters. The one warning: every
    # convolution's bias is cancelled by the batch norm after it (not the row 12 one, which
    # names no batch norm as printed)
    assert [(w.code, w.line) for w in a.warnings] == [("dead-bias", e[0].line)]
    assert "16 biases" in a.warnings[0].message


@needs_tables
def test_table3_misprints_do_not_cascade() -> None:
    """After row 1's shape mismatch inference goes on from the declared 112×112×4: row 2
    onwards agree, so there is one error at row 1, not one per row below it."""
    a, _ = analyze_table("table3-lstn.md", "activation: relu\n")
    assert a.rows[1].input == (4, 112, 112)
    assert a.rows[9].input == (8, 54, 54)
    assert a.localization_output == (10, 52, 52)
    assert a.params_head == HEAD_224


@needs_tables
def test_table3_without_the_header_activation_reports_the_same_errors() -> None:
    with_relu, first_r = analyze_table("table3-lstn.md", "activation: relu\n")
    without, first = analyze_table("table3-lstn.md")
    assert [(d.line - first, d.column, d.code) for d in without.errors] == [
        (d.line - first_r, d.column, d.code) for d in with_relu.errors
    ]
    # without any activation the whole net is one linear map, and check says so
    assert [w.code for w in without.warnings] == ["dead-bias", "linear-stack"]


@pytest.mark.parametrize(
    ("name", "total", "warnings"),
    [("stn", 3194, ()), ("vstn", 3032, ("linear-stack",) * 2), ("lstn", 3690, ("dead-bias",))],
)
def test_the_three_specs_check_clean(name: str, total: int, warnings: tuple[str, ...]) -> None:
    spec = load(SPECS / f"{name}.spec")  # raises on any error
    a = analyze(spec)
    assert a.errors == []
    assert tuple(w.code for w in a.warnings) == warnings
    assert a.params_localization == total
    assert spec.total is not None and spec.total.total == total
    assert a.localization_output == (10, 52, 52)
    assert a.params_head == HEAD_224 == 865_510
    assert a.params_total == total + 865_510
    assert spec.transform.kind == "affine"
    assert spec.sampler.align_corners is False


def test_lstn_spec_places_activations_as_the_authors_code() -> None:
    """Every L-STN convolution is followed by batch norm then ReLU; the strided convs and the
    'padding 1' conv pad by 1, all others by 0."""
    a = analyze(load(SPECS / "lstn.spec"))
    for rr in a.rows:
        assert [r.layer.kind for r in rr.layers] == ["conv", "batchnorm", "relu"]
        assert rr.layers[0].layer.bias is True
    padded = [i + 1 for i, rr in enumerate(a.rows) if rr.layers[0].layer.padding == (1, 1)]
    assert padded == [1, 9, 12]


def test_stn_and_vstn_put_relu_after_each_pool_only() -> None:
    for name in ("stn", "vstn"):
        a = analyze(load(SPECS / f"{name}.spec"))
        kinds = [tuple(r.layer.kind for r in rr.layers) for rr in a.rows]
        for k in kinds:
            assert k in {("conv",), ("maxpool", "relu")}
        assert kinds[-1] == ("maxpool", "relu")


def test_specs_document_the_corrections() -> None:
    """The L-STN spec says what it changed from the printed table, and why."""
    text = (SPECS / "lstn.spec").read_text(encoding="utf-8")
    for fragment in ("padding 1", "BatchNorm2d(4) has 8", "3,690"):
        assert fragment in text
