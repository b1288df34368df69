"""Inference and checking (`lstndsl.analyze`, `lstndsl.load`): numbers, mismatches, fixes.

Covers: the catalog's shapes, parameters and MACs on hand-computed rows; every kind of
mismatch (output shape, channels, parameters, Total) with its position and the fix that would
make the row consistent; inference going on from the declared value (one misprint, one error);
maps that shrink below 1; the head against the transform; linear-stack warnings; re-inference
at another input size; `load` raising with diagnostics.

Not here: parsing (test_parser.py), the paper's own tables (test_paper_tables.py), torch
(test_properties.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lstndsl import analyze, check, load, parse
from lstndsl.check import Analysis
from lstndsl.errors import Diagnostic, SpecCheckError, SpecInputError

HEADER = "input: 32x32x3\nhead: flatten -> fc 6\n"
TABLE = "| Type | Filter Shape | Output Shape | Parameters |\n|---|---|---|---|\n"
ROW = 5  # line of the first table row


def run(rows: str, header: str = HEADER, size: tuple[int, int] | None = None) -> Analysis:
    return analyze(parse(header + TABLE + rows, "c.spec"), size)


def relevant(a: Analysis) -> list[Diagnostic]:
    """Diagnostics other than the dead-bias warning (a conv bias before a batch norm), which
    many rows here have and which its own tests cover."""
    return [d for d in a.diagnostics if d.code != "dead-bias"]


def where(a: Analysis) -> list[tuple[str, int, int, str]]:
    return [(d.severity, d.line, d.column, d.code) for d in relevant(a)]


# --- numbers ------------------------------------------------------------------------------


def test_conv_bn_relu_pool_numbers_by_hand() -> None:
    a = run(
        "| Conv, stride 2, padding 1 + BN + ReLU | 3x3x3x8 | | |\n"  # 32 -> 16
        "| Max pool, stride 2 | 2x2x8x8 | | |\n"  # 16 -> 8
        "| Conv, groups 2, no bias + ReLU | 3x3x8x4 | | |\n"  # 8 -> 6
    )
    assert a.ok and where(a) == []
    r1, r2, r3 = a.rows
    assert (r1.input, r1.output) == ((3, 32, 32), (8, 16, 16))
    assert r1.param_terms == (3 * 9 * 8 + 8, 16) and r1.params == 240
    assert r1.macs == 16 * 16 * 8 * 27
    assert r1.cost() == {"mac": 55296, "bias": 2048, "norm": 2048, "act": 2048}
    assert (r2.output, r2.params, r2.macs) == ((8, 8, 8), 0, 0)
    assert r2.cost() == {"pool": 8 * 8 * 8 * 4}
    assert r3.output == (4, 6, 6)
    assert r3.param_terms == (4 * (8 // 2) * 9,)  # groups split the input channels
    assert r3.macs == 6 * 6 * 4 * 4 * 9
    assert a.localization_output == (4, 6, 6)
    assert a.params_localization == 240 + 144
    assert a.params_head == 144 * 6 + 6 and a.macs_head == 144 * 6
    assert a.params_total == 240 + 144 + 870
    assert [r.name for r in r1.layers] == [
        "Conv2d(3, 8, 3×3, stride 2, padding 1)",
        "BatchNorm2d(8)",
        "ReLU()",
    ]
    assert r3.layers[0].name == "Conv2d(8, 4, 3×3, groups 2, no bias)"


def test_flat_part_linear_batchnorm1d_prelu() -> None:
    a = run(
        "| Adaptive avg pool 2 | | | |\n"
        "| Flatten | | | |\n"
        "| FC 5, no bias | | | |\n"
        "| BN | | | |\n"
        "| PReLU, per channel | | | |\n"
    )
    assert a.ok
    assert [r.output for r in a.rows] == [(3, 2, 2), (12,), (5,), (5,), (5,)]
    assert [r.params for r in a.rows] == [0, 0, 60, 10, 5]
    assert a.rows[1].layers[0].name == "Flatten()"
    assert a.rows[3].layers[0].name == "BatchNorm1d(5)"
    assert a.rows[2].macs == 60
    assert a.params_head == 5 * 6 + 6


def test_ceil_mode_and_dilation() -> None:
    a = run(
        "| Max pool, stride 2, ceil mode | 3x3 | 16x16x3 | |\n"
        "| Conv, dilation 2 + ReLU | 3x3x3x1 | 12x12x1 | |\n"
    )
    assert where(a) == []
    assert a.rows[0].output == (3, 16, 16)  # floor would give 15


# --- mismatches, each at its cell, with a fix ----------------------------------------------


@pytest.mark.parametrize(
    ("row", "column", "message", "hint"),
    [
        (
            "| Conv + ReLU | 3x3x3x4 | 32x32x4 | |",
            27,
            "output shape: declared 32×32×4, inferred 30×30×4",
            "declared 32×32×4 fits padding 1",
        ),
        (
            "| Conv + ReLU | 3x3x3x4 | 15x15x4 | |",
            27,
            "output shape: declared 15×15×4, inferred 30×30×4",
            "declared 15×15×4 fits stride 2",
        ),
        (
            "| Conv + ReLU | 3x3x3x4 | 30x30x5 | |",
            27,
            "output shape: declared 30×30×5, inferred 30×30×4",
            "the row makes 4 channels, not 5",
        ),
        (
            "| Max pool | 3x3 | 11x11x3 | |",
            20,
            "output shape: declared 11×11×3, inferred 10×10×3",
            "declared 11×11×3 fits padding 1",
        ),
        (
            "| Max pool, stride 2 | 3x3 | 16x16x3 | |",
            30,
            "output shape: declared 16×16×3, inferred 15×15×3",
            "declared 16×16×3 fits padding 1",
        ),
        (
            "| Conv + ReLU | 3x3x3x4 | 29x29x4 | |",
            27,
            "output shape: declared 29×29×4, inferred 30×30×4",
            None,
        ),
    ],
)
def test_shape_mismatch(row: str, column: int, message: str, hint: str | None) -> None:
    a = run(row + "\n")
    (d,) = a.diagnostics
    assert (d.severity, d.line, d.column, d.code) == ("error", ROW, column, "shape")
    assert (d.message, d.hint) == (message, hint)


@pytest.mark.parametrize(
    ("row", "message", "hint"),
    [
        (
            "| Conv, BN + ReLU | 3x3x3x4 | | 112+16 |",
            "parameters: declared 112+16, inferred 112+8",
            "BatchNorm2d(4) has 8 parameters, not 16",
        ),
        (
            "| Conv + ReLU | 3x3x3x4 | | 112+8 |",
            "parameters: declared 112+8, inferred 112",
            "112+8 implies a batch norm the Type cell does not name (BatchNorm2d(4) has 8):"
            " 'Conv + BN + ReLU' would fit",
        ),
        (
            "| Conv, padding 1 + ReLU, dropout 0.1 | 3x3x3x4 | | 120 |",
            "parameters: declared 120, inferred 112",
            "120 implies a batch norm the Type cell does not name (BatchNorm2d(4) has 8):"
            " 'Conv, padding 1 + BN + ReLU, dropout 0.1' would fit",
        ),
        (
            "| Flatten | | | |\n| FC 16 + ReLU | | | 49168+32 |",
            "parameters: declared 49168+32, inferred 49168",
            "49168+32 implies a batch norm the Type cell does not name (BatchNorm1d(16) has 32):"
            " 'FC 16 + BN + ReLU' would fit",
        ),
        (
            "| Conv + ReLU | 3x3x3x4 | | 108 |",
            "parameters: declared 108, inferred 112",
            "108 fits Conv2d(3, 4, 3×3) without a bias ('no bias')",
        ),
        (
            "| Conv, no bias + ReLU | 3x3x3x4 | | 112 |",
            "parameters: declared 112, inferred 108",
            "112 fits Conv2d(3, 4, 3×3, no bias) with a bias",
        ),
        (
            "| Conv, BN + ReLU | 3x3x3x4 | | 112 |",
            "parameters: declared 112, inferred 112+8",
            "declared 112 counts the Conv2d(3, 4, 3×3) only; with BatchNorm2d(4) the row has"
            " 120 (112+8)",
        ),
        (
            "| Conv + ReLU | 3x3x3x4 | | 111 |",
            "parameters: declared 111, inferred 112",
            "Conv2d(3, 4, 3×3) has 112 parameters, not 111",
        ),
        (
            "| Max pool | 2x2 | | 4 |",
            "parameters: declared 4, inferred 0",
            None,
        ),
    ],
)
def test_parameter_mismatch(row: str, message: str, hint: str | None) -> None:
    a = run(row + "\n")
    (d,) = relevant(a)
    last = row.splitlines()[-1]
    params_column = last.rindex("|", 0, len(last) - 1) + 3
    line = ROW + row.count("\n")
    assert (d.severity, d.line, d.column, d.code) == ("error", line, params_column, "params")
    assert (d.message, d.hint) == (message, hint)


def test_parameters_as_one_sum_or_as_terms_both_check() -> None:
    assert run("| Conv, BN + ReLU | 3x3x3x4 | | 120 |\n").ok
    assert run("| Conv, BN + ReLU | 3x3x3x4 | | 112+8 |\n").ok
    assert not run("| Conv, BN + ReLU | 3x3x3x4 | | 8+112 |\n").ok  # terms are in row order


def test_channel_mismatch_is_reported_at_the_filter_and_inference_goes_on() -> None:
    a = run(
        "| Conv + ReLU | 3x3x3x4 | 30x30x4 | |\n"
        "| Conv + ReLU | 3x3x5x4 | 28x28x4 | |\n"
        "| Conv + ReLU | 3x3x4x4 | 26x26x4 | |\n"
    )
    assert where(a) == [("error", ROW + 1, 17, "channels")]
    message = a.diagnostics[0].message
    assert message == "the filter expects 5 input channels, the previous row gives 4"
    assert a.rows[2].output == (4, 26, 26)


def test_one_misprint_gives_one_error_not_a_cascade() -> None:
    # the Type cell omits the padding its Output Shape needs; the next rows follow the declared
    # shape, so they agree and only row 1 is reported
    a = run(
        "| Conv + ReLU | 3x3x3x4 | 32x32x4 | 112 |\n"
        "| Max pool | 2x2x4x4 | 16x16x4 | 0 |\n"
        "| Conv + ReLU | 3x3x4x8 | 14x14x8 | 296 |\n"
        "| Total | | | 408 |\n"
    )
    assert where(a) == [("error", ROW, 27, "shape")]
    assert a.rows[1].input == (4, 32, 32)
    assert a.localization_output == (8, 14, 14)
    assert a.params_head == 14 * 14 * 8 * 6 + 6


def test_map_shrinking_below_one_is_an_error_at_that_row_and_stops_there() -> None:
    a = run(
        "| Conv + ReLU | 7x7x3x4 | | |\n"  # 32 -> 26
        "| Max pool, stride 8 | 8x8 | | |\n"  # 26 -> 3
        "| Conv + ReLU | 5x5x4x4 | | |\n"  # 3 -> nothing
        "| Conv + ReLU | 3x3x4x4 | | |\n"
    )
    assert where(a) == [("error", ROW + 2, 3, "infer")]
    d = a.diagnostics[0]
    assert d.message == (
        "a convolution with a 5×5 window does not fit a 3×3 input (output would be 0×0)"
    )
    assert d.hint == "use a larger input, padding, or a smaller kernel"
    assert not a.complete and not a.ok
    assert a.head == []
    with pytest.raises(SpecCheckError):
        a.raise_for_errors()


def test_inference_goes_on_after_a_failed_row_from_its_declared_output() -> None:
    a = run(
        "| Conv + ReLU | 40x40x3x4 | 4x4x4 | |\n"  # cannot be inferred; declares 4×4×4
        "| Conv + ReLU | 3x3x4x4 | 2x2x4 | |\n"
    )
    assert where(a) == [("error", ROW, 3, "infer")]
    assert a.rows[1].input == (4, 4, 4) and a.rows[1].output == (4, 2, 2)


def test_pooling_padding_more_than_half_the_window() -> None:
    a = run("| Max pool, padding 2 | 3x3 | | |\n")
    (d,) = a.diagnostics
    assert (d.line, d.column, d.code) == (ROW, 3, "infer")
    assert d.message == "padding 2 is more than half the 3-wide window; torch refuses it"
    assert d.hint == "use padding 1 or less"


def test_spatial_layer_after_flatten_and_linear_before_it() -> None:
    # one error each: no channel complaint about a vector's length or a map's channels
    a = run("| Flatten | | | |\n| Conv + ReLU | 3x3x3x4 | | |\n")
    assert where(a) == [("error", ROW + 1, 3, "infer")]
    message = a.diagnostics[0].message
    assert message == "a convolution needs a feature map, but its input is a vector of 3072"
    assert a.diagnostics[0].hint == "move it before the flatten"
    a = run("| FC 4 + ReLU | 32x4 | | |\n")
    assert where(a) == [("error", ROW, 3, "infer")]
    assert a.diagnostics[0].hint == "add 'flatten' before it"


def test_groups_must_divide_channels() -> None:
    a = run("| Conv, groups 2 + ReLU | 3x3x3x4 | | |\n")
    assert where(a) == [("error", ROW, 3, "infer")]
    assert a.diagnostics[0].message == "groups 2 must divide both 3 input and 4 output channels"


def test_total_errors_and_what_the_total_accepts() -> None:
    rows = "| Conv, BN + ReLU | 3x3x3x4 | | 112+8 |\n"
    a = run(rows + "| Total | | | 100 |\n")
    (d,) = relevant(a)
    assert (d.line, d.column, d.code) == (ROW + 1, 15, "total")
    assert (d.message, d.hint) == ("total: declared 100, inferred 120", "the rows add up to 120")
    assert run(rows + "| Total | | | 120 |\n").ok
    assert run(rows + "| Total | | | 1,20 |\n").errors  # "1,20" reads as 1+20
    # a row whose declared count implies a batch norm: the Total may count it
    structural = "| Conv + ReLU | 3x3x3x4 | | 112+8 |\n"
    a = run(structural + "| Total | | | 120 |\n")
    assert [d.code for d in a.errors] == ["params"]
    a = run(structural + "| Total | | | 112 |\n")
    assert [d.code for d in a.errors] == ["params", "total"]
    # a plain misprint: the Total may be the declared sum (as printed) or the inferred one
    misprint = "| Conv + ReLU | 3x3x3x4 | | 110 |\n"
    assert [d.code for d in run(misprint + "| Total | | | 110 |\n").errors] == ["params"]
    assert [d.code for d in run(misprint + "| Total | | | 112 |\n").errors] == ["params"]
    assert [d.code for d in run(misprint + "| Total | | | 111 |\n").errors] == ["params", "total"]


def test_every_mismatch_is_reported_not_only_the_first() -> None:
    a = run(
        "| Conv + ReLU | 3x3x3x4 | 32x32x4 | 111 |\n"
        "| Conv, BN + ReLU | 3x3x4x4 | 30x30x4 | 148+16 |\n"
        "| Conv + ReLU | 3x3x5x4 | 28x28x4 | |\n"
        "| Total | | | 1 |\n"
    )
    assert [(d.line, d.code) for d in a.errors] == [
        (ROW, "shape"),
        (ROW, "params"),
        (ROW + 1, "params"),
        (ROW + 2, "channels"),
        (ROW + 3, "total"),
    ]


# --- the head ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "dof"), [("affine", 6), ("translation", 2), ("similarity", 4), ("projective", 8)]
)
def test_head_must_end_in_the_transform_size(transform: str, dof: int) -> None:
    header = f"input: 32x32x3\nhead: flatten -> fc 32 -> relu -> fc 5\ntransform: {transform}\n"
    a = run("| Conv + ReLU | 3x3x3x4 | | |\n", header)
    (d,) = a.errors
    assert (d.line, d.column, d.code) == (2, 35, "head")
    article = "an" if transform == "affine" else "a"
    assert d.message == (
        f"the head ends in 5 outputs, but {article} {transform} transform takes {dof} numbers"
    )
    assert d.hint == f"end the head with 'fc {dof}'"
    fixed = header.replace("fc 5", f"fc {dof}")
    assert run("| Conv + ReLU | 3x3x3x4 | | |\n", fixed).ok


def test_head_errors_stand_at_the_head_layer() -> None:
    a = run("| Conv + ReLU | 3x3x3x4 | | |\n", "input: 32x32x3\nhead: fc 32 -> relu -> fc 6\n")
    (d,) = a.errors
    assert (d.line, d.column, d.code) == (2, 7, "infer")
    assert d.message == "head: a linear layer needs a flat input, but its input is 30×30×4"


def test_head_must_end_in_a_linear_layer_with_a_bias() -> None:
    row = "| Conv + ReLU | 3x3x3x4 | | |\n"
    a = run(row, "input: 32x32x3\nhead: flatten -> fc 6 -> relu\n")
    (d,) = a.errors
    assert (d.line, d.column, d.code) == (2, 26, "head")
    assert d.hint == "end the head with 'fc 6'"
    a = run(row, "input: 32x32x3\nhead: flatten -> fc 6, no bias\n")
    (d,) = a.errors
    assert (d.line, d.column, d.code, d.hint) == (2, 18, "head", "remove 'no bias'")


def test_head_parameters_are_inferred_from_the_table() -> None:
    header = "input: 224x224x3\nhead: flatten -> fc 32 -> relu -> fc 6\n"
    a = run("| Conv, stride 4 + ReLU | 8x8x3x10 | 55x55x10 | 1930 |\n", header)
    assert a.ok
    assert a.params_head == 55 * 55 * 10 * 32 + 32 + 32 * 6 + 6
    assert [r.name for r in a.head] == ["Flatten()", "Linear(30250, 32)", "ReLU()", "Linear(32, 6)"]


# --- warnings ------------------------------------------------------------------------------


def test_stacked_convolutions_warn_without_failing() -> None:
    a = run("| Conv | 3x3x3x4 | | |\n| BN | | | |\n| Conv + ReLU | 3x3x4x4 | | |\n")
    assert where(a) == [("warning", ROW + 2, 3, "linear-stack")]
    (w,) = relevant(a)
    assert w.message == (
        f"Conv (line {ROW}) and Conv (line {ROW + 2}) follow one another with no nonlinearity"
        " between them: together they are one linear map"
    )
    assert w.hint == "add an activation (e.g. '+ ReLU') or merge them"
    assert a.ok  # warnings do not fail the check


def test_a_bias_before_a_batch_norm_is_dead() -> None:
    a = run(
        "| Conv, BN + ReLU | 3x3x3x4 | | |\n"
        "| Conv, no bias, BN + ReLU | 3x3x4x8 | | |\n"
        "| Conv + BN + ReLU | 1x1x8x6 | | |\n"
    )
    (w,) = a.warnings
    assert (w.severity, w.line, w.column, w.code) == ("warning", ROW, 3, "dead-bias")
    assert w.message == (
        f"2 biases (the first a Conv bias at line {ROW}) are cancelled by the batch norm right"
        " after each (it subtracts the mean): 10 parameters that never learn"
    )
    assert w.hint == "write 'no bias' in the Type cell to drop them"
    assert a.ok
    one = run("| Conv, BN + ReLU | 3x3x3x4 | | |\n")
    assert one.warnings[0].message.startswith(f"the Conv bias at line {ROW} is cancelled")
    # after a flatten, a linear layer's bias before BatchNorm1d is dead too; in the head
    head = "input: 8x8x3\nhead: flatten -> fc 16 -> bn -> relu -> fc 6\n"
    a = run("| Conv, no bias + ReLU | 3x3x3x4 | | |\n", header=head)
    assert [(w.code, w.message.split(" is ")[0]) for w in a.warnings] == [
        ("dead-bias", "the FC bias at the head")
    ]
    # nothing between the bias and the norm but the norm: a ReLU in between keeps it alive
    assert run("| Conv + ReLU | 3x3x3x4 | | |\n| BN | | | |\n").warnings == []


def test_nonlinearities_break_the_stack_and_the_head_counts() -> None:
    assert run("| Conv + ReLU | 3x3x3x4 | | |\n| Conv + tanh | 3x3x4x4 | | |\n").warnings == []
    pooled = run("| Conv | 3x3x3x4 | | |\n| Max pool | 2x2 | | |\n| Conv + ReLU | 3x3x4x4 | | |\n")
    assert pooled.warnings == []  # max pooling is not linear
    # a last conv with no activation meets the head's first linear layer
    a = run("| Conv | 3x3x3x4 | | |\n")
    assert where(a) == [("warning", 2, 18, "linear-stack")]


# --- another input size --------------------------------------------------------------------


def test_input_size_reinfers_shapes_head_and_cost() -> None:
    rows = "| Conv + ReLU | 3x3x3x4 | 30x30x4 | 112 |\n| Max pool | 2x2x4x4 | 15x15x4 | 0 |\n"
    a = run(rows, size=(64, 48))
    assert a.errors == []  # declared Output Shapes hold at the declared size only
    assert a.input == (3, 64, 48)
    assert [r.output for r in a.rows] == [(4, 62, 46), (4, 31, 23)]
    assert a.rows[0].macs == 62 * 46 * 4 * 27
    assert a.params_head == 31 * 23 * 4 * 6 + 6
    assert a.params_localization == 112


def test_input_size_still_checks_size_independent_parameters() -> None:
    a = run("| Conv + ReLU | 3x3x3x4 | 30x30x4 | 111 |\n", size=(64, 64))
    assert [(d.line, d.code) for d in a.errors] == [(ROW, "params")]
    assert not a.errors[0].message.startswith("at input")


def test_input_size_drops_declared_linear_in_features() -> None:
    rows = "| Conv + ReLU | 3x3x3x4 | 30x30x4 | |\n| Flatten | | | |\n| FC 3 | 3600x3 | | |\n"
    assert run(rows).errors == []
    a = run(rows, size=(10, 10))
    assert a.errors == []
    assert a.rows[2].params == 8 * 8 * 4 * 3 + 3


def test_input_size_too_small_is_an_error_at_the_row() -> None:
    a = run("| Conv + ReLU | 9x9x3x4 | | |\n", size=(8, 8))
    (d,) = a.errors
    assert (d.line, d.column, d.code) == (ROW, 3, "infer")
    assert d.message.startswith("at input 8×8: a convolution with a 9×9 window does not fit")


def test_same_size_as_declared_is_the_plain_analysis() -> None:
    rows = "| Conv + ReLU | 3x3x3x4 | 30x30x4 | 112 |\n"
    assert where(run(rows, size=(32, 32))) == where(run(rows)) == []
    assert run(rows, size=(32, 32)).input == (3, 32, 32)


# --- the API -------------------------------------------------------------------------------


def test_load_raises_check_errors_with_diagnostics(tmp_path: Path) -> None:
    path = tmp_path / "bad.spec"
    path.write_text(HEADER + TABLE + "| Conv + ReLU | 3x3x3x4 | 32x32x4 | |\n", encoding="utf-8")
    with pytest.raises(SpecCheckError) as info:
        load(path)
    assert info.value.exit_code == 1
    assert [(d.path, d.line, d.column, d.code) for d in info.value.errors] == [
        (str(path), ROW, 27, "shape")
    ]
    assert info.value.source is not None and "32x32x4" in info.value.source


def test_load_raises_input_errors_with_diagnostics(tmp_path: Path) -> None:
    path = tmp_path / "bad.spec"
    path.write_text(HEADER + TABLE + "| Cnv | | | |\n", encoding="utf-8")
    with pytest.raises(SpecInputError) as info:
        load(path)
    assert info.value.exit_code == 2
    got = [(d.line, d.column, d.code) for d in info.value.diagnostics]
    assert got == [(ROW, 3, "unknown-word")]
    with pytest.raises(SpecInputError) as info:
        load(tmp_path / "missing.spec")
    assert info.value.diagnostics[0].code == "read"


def test_load_returns_the_spec_when_only_warnings(tmp_path: Path) -> None:
    path = tmp_path / "warn.spec"
    path.write_text(HEADER + TABLE + "| Conv | 3x3x3x4 | | |\n", encoding="utf-8")
    spec = load(path)
    assert spec.path == str(path) and len(spec.rows) == 1


def test_check_function_raises_and_returns() -> None:
    good = parse(HEADER + TABLE + "| Conv + ReLU | 3x3x3x4 | | |\n")
    assert check.check(good).ok
    bad = parse(HEADER + TABLE + "| Conv + ReLU | 3x3x3x4 | 1x1x4 | |\n")
    with pytest.raises(SpecCheckError):
        check.check(bad)


def test_tps_head_size_message_counts_the_control_points() -> None:
    spec = parse(
        "input: 32x32x3\nhead: flatten -> fc 6\ntransform: tps 20\n"
        "| Type |\n|---|\n| Max pool 2 |\n",
        "t.spec",
    )
    (d,) = analyze(spec).errors
    assert (d.line, d.column, d.code) == (2, 18, "head")
    assert "2 × 20 control points = 40" in d.message and d.hint == "end the head with 'fc 40'"


def test_rare_tps_and_stage2_specs_check_clean_with_the_reference_counts() -> None:
    specs = Path(__file__).resolve().parents[1] / "specs"
    rare = analyze(load(specs / "rare-tps.spec"))
    assert rare.diagnostics == [] and rare.params_total == 1_692_392
    assert rare.params_localization == 1_550_784 and rare.localization_output == (512, 1, 1)
    assert rare.spec.transform.points == (2, 10)
    stage2 = analyze(load(specs / "stage2.spec"))
    assert stage2.errors == [] and stage2.spec.at == "layer2"
    assert stage2.input == (128, 28, 28)


# --- messages a newcomer needs (issue 9) ---------------------------------------------------


def test_a_total_of_localization_plus_head_says_what_the_total_counts() -> None:
    rows = "| Conv + ReLU | 3x3x3x8 | 30x30x8 | 224 |\n| Total | | | 43,430 |\n"
    a = run(rows)
    (d,) = a.errors
    assert (d.line, d.column, d.code) == (6, 15, "total")
    assert d.hint == (
        "the Total counts the localization net only (224); 43430 is the localization net plus"
        " the head (43206), what torchsummary prints for the whole transformer"
    )
    # any other wrong Total keeps the plain hint
    (d,) = run(rows.replace("43,430", "43,431")).errors
    assert d.hint == "the rows add up to 224"


@pytest.mark.parametrize(
    ("written", "code", "message", "hint"),
    [
        (
            "1x28x28",
            "input-order",
            "input 1×28×28 reads as height 1, width 28, 28 channels",
            "the order is H×W×C; for PyTorch's C×H×W = 1×28×28 write 'input: 28x28x1'",
        ),
        (
            "3 x 224 x 224",
            "input-order",
            "input 3×224×224 reads as height 3, width 224, 224 channels",
            "the order is H×W×C; for PyTorch's C×H×W = 3×224×224 write 'input: 224x224x3'",
        ),
        (
            "28x28",
            "input-channels",
            "the input has no channel count: read as 28×28×3 (RGB)",
            "write 'input: 28x28x3' to say so, or 'input: 28x28x1' for grayscale",
        ),
        (
            "64",
            "input-channels",
            "the input has no channel count: read as 64×64×3 (RGB)",
            "write 'input: 64x64x3' to say so, or 'input: 64x64x1' for grayscale",
        ),
    ],
)
def test_input_sizes_a_newcomer_misreads_are_warned_at_the_input(
    written: str, code: str, message: str, hint: str
) -> None:
    a = run("| ReLU | | | |\n", header=f"input: {written}\nhead: flatten -> fc 6\n")
    warned = [d for d in a.warnings if d.code == code]
    assert [(d.line, d.column, d.message, d.hint) for d in warned] == [(1, 8, message, hint)]


@pytest.mark.parametrize("written", ["28x28x1", "224x224x3", "1x1x3", "3x3x3"])
def test_plain_input_sizes_are_not_warned(written: str) -> None:
    a = run("| ReLU | | | |\n", header=f"input: {written}\nhead: flatten -> fc 6\n")
    assert not [d for d in a.warnings if d.code.startswith("input")]
