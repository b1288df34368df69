"""Spec text -> IR (`lstndsl.parse`): what the words, cells and headers of a spec mean.

Covers the paper's row vocabulary, options in any order, case and spacing, Filter Shape
folding, Output Shape as (C, H, W), Parameters sums, the header default activation, the
transform and sampler headers, column aliases, names, and every interpretation error (exit 2,
`SpecInputError`) with its line, column and code, all collected in one pass.

Not here: the grammar's tokens (test_grammar.py), inference and checks (test_check.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from lstndsl import ir, parse
from lstndsl.errors import SpecInputError

HEADER = "input: 32x32x3\nhead: flatten -> fc 6\n"
TABLE = "| Type | Filter Shape | Output Shape | Parameters |\n|---|---|---|---|\n"
FIRST_ROW = 5  # the line of the first table row under HEADER + TABLE


def spec_of(rows: str, header: str = HEADER) -> ir.Spec:
    return parse(header + TABLE + rows, "t.spec")


def layers_of(type_cell: str, filter_cell: str = "", header: str = HEADER) -> list[dict[str, Any]]:
    spec = spec_of(f"| {type_cell} | {filter_cell} | | |\n", header)
    return [layer.model_dump(exclude={"pos"}) for layer in spec.rows[0].layers]


def errors_of(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(SpecInputError) as info:
        parse(text, "t.spec")
    assert info.value.exit_code == 2
    return [(d.line, d.column, d.code) for d in info.value.diagnostics]


def one_error(text: str) -> Any:
    with pytest.raises(SpecInputError) as info:
        parse(text, "t.spec")
    (d,) = info.value.diagnostics
    return d


# --- the paper's vocabulary -----------------------------------------------------------------


def test_paper_rows_as_written() -> None:
    conv = layers_of("Conv", "3 × 3 × 3 × 4")
    expected = ir.Conv(kernel=(3, 3), in_channels=3, out_channels=4)
    assert conv == [expected.model_dump(exclude={"pos"})]
    assert [x["kind"] for x in layers_of("Conv, BN", "1×1×3×8")] == ["conv", "batchnorm"]
    strided = layers_of("Conv, stride 2 + BN", "3×3×3×4")
    assert [x["kind"] for x in strided] == ["conv", "batchnorm"]
    assert strided[0]["stride"] == (2, 2) and strided[0]["padding"] == (0, 0)
    assert layers_of("Conv, padding 1", "3×3×3×8")[0]["padding"] == (1, 1)
    pool = layers_of("Max pool, stride 2", "2 × 2 × 3 × 3")
    assert pool == [
        ir.MaxPool(kernel=(2, 2), stride=(2, 2), channels=3).model_dump(exclude={"pos"})
    ]


@pytest.mark.parametrize(
    "written",
    [
        "Conv, stride 2, padding 1 + BN + ReLU",
        "Conv, padding 1, stride 2 + BN + ReLU",
        "Conv + BN + ReLU, stride 2, padding 1",
        "Conv, BN, padding 1, ReLU, stride 2",
        "stride 2, padding 1, Conv, BN, ReLU",
        "CONV ,STRIDE 2,PADDING 1+bn+relu",
        "conv2d; s 2; pad 1 + batch norm + relu",
        "Convolution, stride 2x2, padding 1×1 + Batch-Norm + ReLU",
    ],
)
def test_options_in_any_order_case_and_spacing_give_one_ir(written: str) -> None:
    expected = [
        ir.Conv(kernel=(3, 3), in_channels=3, out_channels=4, stride=2, padding=1),
        ir.BatchNorm(),
        ir.Activation(kind="relu"),
    ]
    assert layers_of(written, "3x3x3x4") == [x.model_dump(exclude={"pos"}) for x in expected]


@pytest.mark.parametrize(
    ("written", "kind"),
    [
        ("Max pool", "maxpool"),
        ("max pool", "maxpool"),
        ("MaxPool", "maxpool"),
        ("max-pool", "maxpool"),
        ("max_pool", "maxpool"),
        ("MAX   POOL", "maxpool"),
        ("maxpool2d", "maxpool"),
        ("Avg pool", "avgpool"),
        ("average pooling", "avgpool"),
    ],
)
def test_layer_words_ignore_case_spaces_hyphens_underscores(written: str, kind: str) -> None:
    assert layers_of(written, "2x2")[0]["kind"] == kind


def test_values_in_the_type_cell() -> None:
    conv = ir.Conv(kernel=3, out_channels=8)
    assert layers_of("Conv 3, out 8")[0] == conv.model_dump(exclude={"pos"})
    assert layers_of("Conv 5x3, out 2, dilation 2, groups 1, no bias")[0]["kernel"] == (5, 3)
    assert layers_of("Max pool 3, stride 2, ceil mode")[0] == ir.MaxPool(
        kernel=3, stride=2, ceil_mode=True
    ).model_dump(exclude={"pos"})
    assert layers_of("Dropout 0.3")[0] == {"kind": "dropout", "p": 0.3}
    assert layers_of("Leaky ReLU 0.2")[0] == {"kind": "leakyrelu", "negative_slope": 0.2}
    assert layers_of("PReLU, per channel")[0]["per_channel"] is True
    assert layers_of("BN, eps 0.001, momentum 0.01, affine false")[0] == ir.BatchNorm(
        eps=0.001, momentum=0.01, affine=False
    ).model_dump(exclude={"pos"})
    assert layers_of("Avg pool 2, exclude pad")[0]["count_include_pad"] is False
    assert layers_of("global avg pool")[0]["output"] == (1, 1)
    assert layers_of("adaptive avg pool 3x2")[0]["output"] == (3, 2)


def test_filter_shape_folds_into_the_primary_layer() -> None:
    spec = spec_of(
        "| Conv | 3x3x3x4 | | |\n| Max pool | 2x2x4x4 | | |\n| Avg pool | 2x2 | | |\n"
        "| BN | 4 | | |\n| Flatten | | | |\n| FC | 196x10 | | |\n"
    )
    conv, mp, ap, bn, _, fc = (r.layers[0] for r in spec.rows)
    assert isinstance(conv, ir.Conv) and (conv.kernel, conv.in_channels, conv.out_channels) == (
        (3, 3),
        3,
        4,
    )
    assert isinstance(mp, ir.MaxPool) and (mp.kernel, mp.channels) == ((2, 2), 4)
    assert isinstance(ap, ir.AvgPool) and (ap.kernel, ap.channels) == ((2, 2), None)
    assert isinstance(bn, ir.BatchNorm) and bn.num_features == 4
    assert isinstance(fc, ir.Linear) and (fc.in_features, fc.out_features) == (196, 10)
    assert spec.rows[0].filter is not None and spec.rows[0].filter.values == (3, 3, 3, 4)


def test_output_shape_is_stored_as_c_h_w_and_parameters_as_terms() -> None:
    spec = spec_of(
        "| Conv, BN | 3x3x3x4 | 30 × 30 × 4 | 112+8 |\n| Flatten | | 3600 | 0 |\n"
        "| Total | | | 1,120 |\n"
    )
    r1, r2 = spec.rows
    assert r1.output is not None and r1.output.values == (4, 30, 30)
    assert r1.params is not None and r1.params.terms == (112, 8) and r1.params.total == 120
    assert r2.output is not None and r2.output.values == (3600,)
    assert spec.total is not None and spec.total.terms == (1120,)
    assert spec.total_pos is not None and spec.total_pos.line == FIRST_ROW + 2
    # positions: the cell's line and column, for diagnostics
    assert (r1.output.pos.line, r1.output.pos.column) == (FIRST_ROW, 24)
    assert (r1.params.pos.line, r1.params.pos.column) == (FIRST_ROW, 38)
    assert r1.type.text == "Conv, BN" and r1.pos.line == FIRST_ROW


def test_empty_cells_and_dashes_declare_nothing() -> None:
    spec = spec_of("| Conv | 3x3x3x4 | - | — |\n| ReLU | | | |\n")
    assert all(r.output is None and r.params is None for r in spec.rows)


def test_table_without_output_and_parameters_columns() -> None:
    spec = parse(HEADER + "| Type | Filter Shape |\n|---|---|\n| Conv + ReLU | 3x3x3x4 |\n")
    assert spec.rows[0].output is None and spec.rows[0].params is None
    assert [x.kind for x in spec.rows[0].layers] == ["conv", "relu"]


@pytest.mark.parametrize(
    "columns",
    [
        "| Layer | Kernel | Output | Params |",
        "| layer type | filter size | output size | parameter count |",
        "| TYPE | FILTER SHAPE | OUTPUT SHAPE | PARAMETERS |",
        "| Parameters | Output Shape | Filter Shape | Type |",
    ],
)
def test_column_names_and_order(columns: str) -> None:
    names = [c.strip() for c in columns.strip("|").split("|")]
    cells = {"type": "Conv", "filter": "3x3x3x4", "output": "30x30x4", "params": "112"}
    keys = {
        "layer": "type",
        "layer type": "type",
        "type": "type",
        "kernel": "filter",
        "filter size": "filter",
        "filter shape": "filter",
        "output": "output",
        "output size": "output",
        "output shape": "output",
        "params": "params",
        "parameter count": "params",
        "parameters": "params",
    }
    row = "| " + " | ".join(cells[keys[n.lower()]] for n in names) + " |\n"
    spec = parse(HEADER + columns + "\n|---|---|---|---|\n" + row)
    r = spec.rows[0]
    assert r.filter is not None and r.filter.values == (3, 3, 3, 4)
    assert r.output is not None and r.output.values == (4, 30, 30)
    assert r.params is not None and r.params.terms == (112,)


# --- headers ------------------------------------------------------------------------------


def test_default_activation_goes_after_conv_and_linear_rows_that_name_none() -> None:
    spec = spec_of(
        "| Conv, BN | 3x3x3x4 | | |\n"
        "| Conv + Tanh | 3x3x4x4 | | |\n"
        "| Max pool | 2x2 | | |\n"
        "| Conv, dropout 0.1 | 3x3x4x4 | | |\n"
        "| Conv, BN, avg pool 2 | 3x3x4x4 | | |\n"
        "| Conv, max pool 2, dropout 0.1 | 3x3x4x4 | | |\n"
        "| Conv, max pool 2, BN | 3x3x4x4 | | |\n"
        "| Conv, avg pool 2, gelu | 3x3x4x4 | | |\n"
        "| Flatten | | | |\n"
        "| FC 8 | | | |\n",
        HEADER + "activation: leaky relu 0.2\n",
    )
    kinds = [[x.kind for x in r.layers] for r in spec.rows]
    assert kinds == [
        ["conv", "batchnorm", "leakyrelu"],
        ["conv", "tanh"],
        ["maxpool"],
        ["conv", "leakyrelu", "dropout"],  # before a trailing dropout
        ["conv", "batchnorm", "leakyrelu", "avgpool"],  # after the norm, before the pooling
        ["conv", "leakyrelu", "maxpool", "dropout"],
        ["conv", "leakyrelu", "maxpool", "batchnorm"],  # only a norm right after the conv
        ["conv", "avgpool", "gelu"],  # a row that names its activation keeps its order
        ["flatten"],
        ["linear", "leakyrelu"],
    ]
    added = spec.rows[0].layers[2]
    assert isinstance(added, ir.LeakyReLU) and added.negative_slope == 0.2 and added.pos is None
    assert spec.activation is not None and spec.activation.kind == "leakyrelu"
    # the head is written out in full: the default does not touch it
    assert [x.kind for x in spec.head] == ["flatten", "linear"]


def test_head_transform_sampler_and_name_headers() -> None:
    spec = spec_of(
        "| Conv | 3x3x3x4 | | |\n",
        "name: My net (v2)\n"
        "input size: 64 x 48 x 1\n"
        "head: flatten → FC 32 → ReLU → FC 4\n"
        "transform: similarity, scale 0.5..2, translation 0.5\n"
        "sampler: nearest, padding border, align corners true\n",
    )
    assert spec.name == "My net (v2)"
    assert spec.input == ir.InputSize(height=64, width=48, channels=1, pos=spec.input.pos)
    assert spec.input.shape == (1, 64, 48)
    assert [x.kind for x in spec.head] == ["flatten", "linear", "relu", "linear"]
    assert spec.head_text == "flatten → FC 32 → ReLU → FC 4"
    assert spec.head_pos is not None and (spec.head_pos.line, spec.head_pos.column) == (3, 7)
    assert spec.transform.kind == "similarity" and spec.transform.scale == (0.5, 2.0)
    assert spec.transform.translation == 0.5 and spec.transform.dof == 4
    assert spec.sampler == ir.Sampler(
        mode="nearest", padding_mode="border", align_corners=True, pos=spec.sampler.pos
    )


@pytest.mark.parametrize(("written", "shape"), [("224", (3, 224, 224)), ("32x48", (3, 32, 48))])
def test_input_size_forms(written: str, shape: tuple[int, ...]) -> None:
    spec = spec_of("| ReLU | | | |\n", f"input: {written}\nhead: flatten -> fc 6\n")
    assert spec.input.shape == shape


def test_name_from_caption_then_file_stem() -> None:
    body = HEADER + TABLE + "| ReLU | | | |\n"
    assert parse("Table 1. Regular STN\n" + body, "a/b.spec").name == "Regular STN"
    assert parse(body, "nets/my-net.spec").name == "my-net"


# --- errors: all collected, each at its item ----------------------------------------------


def test_unknown_layer_word_has_did_you_mean() -> None:
    # one error: the options after an unknown layer word do not cascade
    d = one_error(HEADER + TABLE + "| Conv, BN |  |  |  |\n| Max pol, stride 2 | 2x2 | | |\n")
    assert (d.line, d.column, d.code) == (FIRST_ROW + 1, 3, "unknown-word")
    assert d.message == "unknown layer word 'Max pol'"
    assert d.hint == "did you mean 'Max pool' or 'max pooling' or 'mean pool'?"


def test_unknown_option_word_has_did_you_mean() -> None:
    d = one_error(HEADER + TABLE + "| Conv, stridee 2 | 3x3x3x4 | | |\n")
    assert (d.line, d.column, d.code) == (FIRST_ROW, 9, "unknown-word")
    assert d.hint == "did you mean 'stride'?"


def test_every_problem_is_reported_in_one_pass() -> None:
    text = (
        "inptu: 32x32x3\n"  # 1: unknown header (and no "no input" cascade)
        "head: flatten -> fc 6\n"
        "activation: rleu\n" + TABLE + "| Cnv | 3x3x3x4 | | |\n"  # 3  # 6
        "| Conv, groups 0 | 3x3x3x4 | | |\n"  # 7
        "| Conv | 3x3x4 | | |\n"  # 8
        "| Max pool, bias | 2x2 | | |\n"  # 9
        "| Conv | 3x3x4x4 | abc | |\n"  # 10
        "| Conv | 3x3x4x4 | | 1.5 |\n"  # 11
    )
    assert errors_of(text) == [
        (1, 1, "bad-header"),
        (3, 13, "unknown-word"),
        (6, 3, "unknown-word"),
        (7, 9, "bad-value"),
        (8, 10, "bad-cell"),
        (9, 13, "bad-option"),
        (10, 20, "bad-cell"),
        (11, 22, "bad-cell"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "column", "code", "message"),
    [
        (
            "head: flatten -> fc 6\n" + TABLE + "| ReLU | | | |\n",
            1,
            1,
            "bad-header",
            "the spec has no 'input:' header",
        ),
        (
            "input: 32x32x3\n" + TABLE + "| ReLU | | | |\n",
            1,
            1,
            "bad-header",
            "the spec has no 'head:' header",
        ),
        (HEADER + "head: fc 6\n" + TABLE, 3, 1, "bad-header", "header 'head' appears twice"),
        ("input: 32x32x3\nhead:\n" + TABLE, 2, 6, "bad-header", "the head is empty"),
        (HEADER, 2, 1, "bad-table", "the spec has no layer table"),
        ("", 1, 1, "empty", "the spec is empty: no header lines and no table"),
        ("# only a comment\n", 1, 1, "empty", "the spec is empty: no header lines and no table"),
        (
            "input: 0x32x3\nhead: fc 6\n" + TABLE,
            1,
            8,
            "bad-header",
            "input size '0x32x3' has a zero dimension",
        ),
        (
            "input: 1x2x3x4\nhead: fc 6\n" + TABLE,
            1,
            8,
            "bad-header",
            "cannot read input size '1x2x3x4'",
        ),
        (
            HEADER + "activation: relu, bn\n" + TABLE,
            3,
            13,
            "bad-header",
            "'relu, bn' is not one activation",
        ),
        (
            HEADER + "transform: afine\n" + TABLE,
            3,
            12,
            "unknown-word",
            "unknown transform setting 'afine'",
        ),
        (
            HEADER + "| Type | Filtr Shape |\n|---|---|\n",
            3,
            10,
            "bad-table",
            "unknown column 'Filtr Shape'",
        ),
        (
            HEADER + "| Type | Type |\n|---|---|\n",
            3,
            10,
            "bad-table",
            "column 'Type' appears twice",
        ),
        (
            HEADER + "| Filter Shape | Parameters |\n|---|---|\n",
            3,
            3,
            "bad-table",
            "the table has no Type column",
        ),
        (
            HEADER + TABLE + "| stride 2 | | | |\n",
            5,
            3,
            "bad-option",
            "'stride 2' is an option, but no layer is named",
        ),
        (
            HEADER + "| Type |\n| ReLU |\n",
            3,
            1,
            "bad-table",
            "the table's header row must be followed by a delimiter row",
        ),
        (
            HEADER + TABLE + "| ReLU | | | |\n\n| ReLU | | | |\n",
            7,
            1,
            "bad-table",
            "the table is interrupted before this row; a spec has one table",
        ),
        (
            HEADER + TABLE + "| ReLU | | | |\n|---|---|---|---|\n",
            6,
            1,
            "bad-table",
            "a second delimiter row; a spec has one table",
        ),
        (
            HEADER + TABLE + "| ReLU | | | | 3 |\n",
            5,
            16,
            "bad-table",
            "this row has 5 cells, the header has 4",
        ),
        (HEADER + TABLE + "| | 3x3x3x4 | | |\n", 5, 2, "bad-table", "this row has no Type"),
        (
            HEADER + TABLE + "| Total | | | 0 |\n| ReLU | | | |\n",
            6,
            3,
            "bad-table",
            "a row after the Total row",
        ),
        (
            HEADER + TABLE + "| Conv | 3x3x3 | | |\n",
            5,
            10,
            "bad-cell",
            "a Conv row cannot take the Filter Shape '3×3×3'",
        ),
        (
            HEADER + TABLE + "| FC 3 | 3x3x3x3 | | |\n",
            5,
            10,
            "bad-cell",
            "a FC row cannot take the Filter Shape '3×3×3×3'",
        ),
        (
            HEADER + TABLE + "| ReLU | 3x3 | | |\n",
            5,
            10,
            "bad-cell",
            "a ReLU row cannot take the Filter Shape '3×3'",
        ),
        (
            HEADER + TABLE + "| Max pool | 2x2x3x4 | | |\n",
            5,
            14,
            "bad-cell",
            "pooling keeps the channels, but the Filter Shape goes from 3 to 4",
        ),
        (
            HEADER + TABLE + "| Conv 5 | 3x3x3x4 | | |\n",
            5,
            12,
            "bad-cell",
            "the Type cell and the Filter Shape disagree on kernel",
        ),
        (
            HEADER + TABLE + "| Conv | 3x3x3x0 | | |\n",
            5,
            10,
            "bad-cell",
            "the Filter Shape '3x3x3x0' has a zero dimension",
        ),
        (
            HEADER + TABLE + "| Conv | 3x3x3x4 | 30x30 | |\n",
            5,
            20,
            "bad-cell",
            "cannot read the Output Shape '30x30'",
        ),
        (
            HEADER + TABLE + "| Conv | 3x3x3x4 | | 112+x |\n",
            5,
            22,
            "bad-cell",
            "cannot read parameters '112+x'",
        ),
        (
            HEADER + TABLE + "| Conv, stride 0 | 3x3x3x4 | | |\n",
            5,
            9,
            "bad-value",
            "'stride 0': stride must be at least 1",
        ),
        (
            HEADER + TABLE + "| Conv, stride 2.5 | 3x3x3x4 | | |\n",
            5,
            9,
            "bad-value",
            "'stride 2.5': stride must be a number (a whole one)",
        ),
        (
            HEADER + TABLE + "| Conv + Dropout 1.5 | 3x3x3x4 | | |\n",
            5,
            10,
            "bad-value",
            "'Dropout 1.5': p must be at most 1.0",
        ),
        (
            HEADER + TABLE + "| Conv + ReLU 3 | 3x3x3x4 | | |\n",
            5,
            10,
            "bad-value",
            "'ReLU' takes no value, not '3'",
        ),
        (
            HEADER + TABLE + "| Conv, stride 2, stride 1 | 3x3x3x4 | | |\n",
            5,
            19,
            "duplicate-option",
            "'stride 1' sets stride again",
        ),
        (
            HEADER + TABLE + "| Max pool, groups 2 | 2x2 | | |\n",
            5,
            13,
            "bad-option",
            "'groups 2' does not apply to Max pool",
        ),
        (
            HEADER + TABLE + "| Conv relu | 3x3x3x4 | | |\n",
            5,
            3,
            "missing-separator",
            "'Conv relu' runs two items together",
        ),
        (
            HEADER + TABLE + "| Conv, Conv | 3x3x3x4 | | |\n",
            5,
            9,
            "bad-row",
            "'Conv' cannot follow another layer in the same row",
        ),
    ],
)
def test_interpretation_errors(text: str, line: int, column: int, code: str, message: str) -> None:
    d = one_error(text)
    assert (d.path, d.line, d.column, d.code) == ("t.spec", line, column, code)
    assert d.message == message


def test_hints_say_what_would_fit() -> None:
    d = one_error(HEADER + TABLE + "| Max pool stride 2 | 2x2 | | |\n")
    assert d.hint == "separate them with ',' or '+': 'Max pool, stride 2'"
    d = one_error(HEADER + TABLE + "| Max pool | 2x2x3x4 | | |\n")
    assert d.hint == "write 2×2×3×3"
    d = one_error(HEADER + TABLE + "| Conv 5 | 3x3x3x4 | | |\n")
    assert d.hint == "the Type cell says 5×5, the Filter Shape 3×3"
    d = one_error(HEADER + TABLE + "| Max pool, groups 2 | 2x2 | | |\n")
    assert d.hint == "it is an option of Conv, Group norm"
    d = one_error(HEADER.replace("flatten", "flaten") + TABLE)
    assert d.hint == "did you mean 'Flatten'?"
    d = one_error("inptu: 3\nhead: fc 6\n" + TABLE)
    assert d.hint == "did you mean 'input'?"
    d = one_error(HEADER + "| Type | Filtr Shape |\n|---|---|\n")
    assert d.hint is not None and d.hint.startswith("did you mean 'Filter Shape'")


def test_errors_carry_the_source_for_the_caret() -> None:
    text = HEADER + TABLE + "| Cnv | | | |\n"
    with pytest.raises(SpecInputError) as info:
        parse(text, "t.spec")
    assert info.value.source == text
    shown = info.value.diagnostics[0].format(info.value.source)
    assert shown.splitlines() == [
        "t.spec:5:3: error: unknown layer word 'Cnv'; did you mean 'Conv' or 'conv2d'?",
        "    5 | | Cnv | | | |",
        "      |   ^~~",
    ]


# --- placement (`at:`) and the rotation and tps transform kinds --------------------------


@pytest.mark.parametrize(
    ("written", "at"),
    [
        ("input", "input"),
        ("Input", "input"),
        ("layer2", "layer2"),
        ("features.3", "features.3"),
        ("stages.1", "stages.1"),
        ("blocks.2.1", "blocks.2.1"),
    ],
)
def test_at_header_names_the_place(written: str, at: str) -> None:
    spec = spec_of("| ReLU | | | |\n", HEADER + f"at: {written}\n")
    assert spec.at == at
    assert spec.at_pos is not None and (spec.at_pos.line, spec.at_pos.column) == (3, 5)


def test_at_defaults_to_the_input() -> None:
    spec = spec_of("| ReLU | | | |\n")
    assert spec.at == "input" and spec.at_pos is None


@pytest.mark.parametrize("written", ["layer 2", "layer2, layer3", "3x3"])
def test_at_header_that_names_no_module_is_an_error_at_its_value(written: str) -> None:
    d = one_error(HEADER + f"at: {written}\n" + TABLE + "| ReLU | | | |\n")
    assert (d.line, d.column, d.code) == (3, 5, "bad-header")
    assert "at: layer2" in d.hint


@pytest.mark.parametrize(
    ("written", "points", "dof"),
    [
        ("tps 20", (2, 10), 40),
        ("TPS 4", (2, 2), 8),
        ("tps 4x4", (4, 4), 32),
        ("thin plate spline 3x5", (3, 5), 30),
        ("tps 20, translation 0.5", (2, 10), 40),
    ],
)
def test_tps_control_points(written: str, points: tuple[int, int], dof: int) -> None:
    spec = spec_of("| ReLU | | | |\n", HEADER + f"transform: {written}\n")
    assert spec.transform.kind == "tps" and spec.transform.points == points
    assert spec.transform.dof == dof


def test_rotation_with_and_without_an_angle_bound() -> None:
    spec = spec_of("| ReLU | | | |\n", HEADER + "transform: rotation\n")
    assert spec.transform.kind == "rotation" and spec.transform.dof == 1
    assert spec.transform.angle is None
    bounded = spec_of("| ReLU | | | |\n", HEADER + "transform: rotation, angle 45\n")
    assert bounded.transform.angle == 45.0


@pytest.mark.parametrize(
    ("written", "column", "message", "hint"),
    [
        ("tps 21", 12, "must be even", "'tps 20' or 'tps 22'"),
        ("tps 2", 12, "at least 4 control points", "'tps 4'"),
        ("tps 4x1", 12, "at least 2 control points per side", "'tps 4x2'"),
        ("tps", 12, "tps takes its control points", "'tps 20'"),
        ("tps 20, scale 0.5..2", 20, "does not apply to a tps transform", "translation B"),
        ("rotation, scale 0.5..2", 22, "does not apply to a rotation transform", "remove it"),
        ("rotation, translation 0.5", 22, "does not apply to a rotation", "similarity"),
        ("affine, angle 30", 20, "does not apply to an affine transform", "rotation, angle 45"),
        ("similarity, affine", 24, "sets the kind again", "it was set by 'similarity'"),
    ],
)
def test_transform_errors_at_the_cell_with_the_fix(
    written: str, column: int, message: str, hint: str
) -> None:
    d = one_error(HEADER + f"transform: {written}\n" + TABLE + "| ReLU | | | |\n")
    assert (d.line, d.column) == (3, column)
    assert message in d.message and hint in d.hint


def test_transform_did_you_mean_has_one_spelling_per_kind_and_lists_kinds_once() -> None:
    d = one_error(HEADER + "transform: rotaton\n" + TABLE + "| ReLU | | | |\n")
    assert d.hint == "did you mean 'rotation'?"
    d = one_error(HEADER + "transform: zzz\n" + TABLE + "| ReLU | | | |\n")
    kinds = d.hint.split(";")[0]
    assert kinds == (
        "expected one of: transform kinds affine, translation, similarity, projective,"
        " rotation, tps N"
    )
    assert "scale" not in kinds


# --- conflicts, numbers torch cannot hold, torch layers without a kind ----------------------


@pytest.mark.parametrize(
    ("header", "column", "message", "first"),
    [
        ("transform: similarity, affine", 24, "sets the kind again", "'similarity' at column 12"),
        ("transform: affine, scale 0.5..2, scale 0.6..3", 34, "sets the scale again", "column 20"),
        ("sampler: bilinear, nearest", 20, "sets the mode again", "'bilinear' at column 10"),
        ("sampler: padding zeros, padding border", 25, "padding mode again", "'padding zeros'"),
        ("transform: affine, translation 0.5, shift 0.2", 37, "translation again", "column 20"),
    ],
)
def test_a_setting_given_twice_is_an_error_at_the_second_naming_the_first(
    header: str, column: int, message: str, first: str
) -> None:
    d = one_error(HEADER + header + "\n" + TABLE + "| ReLU | | | |\n")
    assert (d.line, d.column, d.code) == (3, column, "conflict")
    assert message in d.message and first in d.hint


def test_two_paddings_in_one_cell_is_an_error_at_the_second() -> None:
    d = one_error(HEADER + TABLE + "| Conv, padding 1, pad 2 | 3x3x3x4 | | |\n")
    assert (d.line, d.column, d.code) == (FIRST_ROW, 20, "duplicate-option")
    assert d.hint == "it was set by 'padding 1'"


@pytest.mark.parametrize(
    ("header", "row", "line", "column", "words"),
    [
        ("transform: affine, translation 1e999", "ReLU", 3, 32, "become infinity"),
        ("transform: affine, translation 3.5e38", "ReLU", 3, 32, "become infinity"),
        ("transform: affine, translation 1e-300", "ReLU", 3, 32, "would become 0"),
        ("transform: affine, scale 0.5..1e999", "ReLU", 3, 26, "become infinity"),
        ("activation: leaky relu 1e999", "ReLU", 3, 24, "become infinity"),
        ("activation: ELU 1e999", "ReLU", 3, 17, "become infinity"),
        ("activation: relu", "Leaky ReLU 1e999", FIRST_ROW + 1, 14, "become infinity"),
        ("activation: relu", "Conv, stride 1e20", FIRST_ROW + 1, 16, "too large for a size"),
        ("activation: relu", "Conv, stride 99999999999", FIRST_ROW + 1, 16, "too large"),
    ],
)
def test_numbers_torch_cannot_hold_are_errors_at_their_cell(
    header: str, row: str, line: int, column: int, words: str
) -> None:
    d = one_error(HEADER + header + "\n" + TABLE + f"| {row} | 3x3x3x4 | | |\n")
    assert (d.line, d.column, d.code) == (line, column, "bad-number")
    assert words in d.message


def test_head_number_beyond_float32_is_an_error_at_it() -> None:
    d = one_error("input: 32x32x3\nhead: flatten -> elu 1e308 -> fc 6\n" + TABLE + "| ReLU |\n")
    assert (d.line, d.column, d.code) == (2, 22, "bad-number")


def test_a_hundred_thousand_digit_number_is_an_error_at_its_cell() -> None:
    big = "9" * 100_000
    d = one_error(HEADER + TABLE + f"| Conv | 3x3x3x{big} | | |\n")
    assert (d.line, d.column, d.code) == (FIRST_ROW, 10, "bad-number")
    assert "100000 characters" in d.message and len(d.message) < 200
    d = one_error(HEADER + TABLE + f"| Conv | 3x3x3x4 | | {big} |\n")
    assert (d.line, d.column) == (FIRST_ROW, 22) and "more than 18 digits" in d.message


@pytest.mark.parametrize(
    ("header", "column", "message"),
    [
        ("transform: affine, scale 2..0.5", 20, "inverted: write 'scale 0.5..2'"),
        ("transform: affine, translation 0", 20, "must be more than 0"),
        ("transform: rotation, angle 0", 22, "must be more than 0"),
    ],
)
def test_bounds_that_make_no_sense_are_errors_at_their_cell(
    header: str, column: int, message: str
) -> None:
    d = one_error(HEADER + header + "\n" + TABLE + "| ReLU | | | |\n")
    assert (d.line, d.column, d.code) == (3, column, "bad-value")
    assert message in d.message


@pytest.mark.parametrize("word", ["Dropout1d", "BatchNorm3d", "conv1d", "LocalResponseNorm"])
def test_a_torch_layer_without_a_kind_is_not_offered_as_another_layer(word: str) -> None:
    d = one_error(HEADER + TABLE + f"| {word} | | | |\n")
    assert (d.line, d.column, d.code) == (FIRST_ROW, 3, "unknown-word")
    assert "has no layer kind" in d.message and "did you mean" not in (d.hint or "")
