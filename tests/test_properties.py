"""Property tests: random layer stacks, written as spec text, against real PyTorch.

Hypothesis draws a stack (convolutions with random kernel/stride/padding/dilation/groups/bias,
max and average pooling with ceil mode, adaptive pooling, batch norm, activations, dropout,
flatten, linear) at a random small input size and renders it as a spec in one of the paper's
surface styles (×, x, \\times, $…$, case, option order). The test then builds the same stack
in torch *from the description, not from the IR*, and runs it:

- where torch runs, lstndsl must agree on every row's output shape, parameter count and
  conv/linear MACs (an own forward-hook count, and ptflops with its bias adds accounted for);
  `compiler.build` must build and verify the same numbers;
- where torch fails (a map shrinks below 1, channels disagree, pooling padding too large),
  `lstndsl check` must report an error at exactly that row, and nothing may raise but
  `LstnError`.

This file does not test messages (test_check.py) or the CLI (test_cli.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import compiler
from lstndsl import analyze, parse
from lstndsl.errors import LstnError, SpecCheckError

ACTIVATIONS: dict[str, tuple[str, Any]] = {
    # kind: (spec word, torch factory taking the current tensor)
    "relu": ("ReLU", lambda x: nn.ReLU()),
    "relu6": ("relu6", lambda x: nn.ReLU6()),
    "gelu": ("GELU", lambda x: nn.GELU()),
    "silu": ("swish", lambda x: nn.SiLU()),
    "tanh": ("tanh", lambda x: nn.Tanh()),
    "sigmoid": ("Sigmoid", lambda x: nn.Sigmoid()),
    "hardswish": ("hard swish", lambda x: nn.Hardswish()),
    "leakyrelu": ("Leaky ReLU 0.2", lambda x: nn.LeakyReLU(0.2)),
    "elu": ("ELU", lambda x: nn.ELU()),
    "prelu": ("PReLU", lambda x: nn.PReLU()),
    "prelu_c": ("PReLU, per channel", lambda x: nn.PReLU(x.shape[1])),
}

TIMES = ["x", "×", " × ", "\\times", " \\times ", "X", "*"]


@dataclass
class RowDesc:
    """One table row: the spec text of its Type cell and how to build it in torch."""

    type_text: str
    factories: list[Any]
    """One per layer: current tensor -> module (so BatchNorm picks 1d/2d, PReLU its channels)."""
    filter_cells: Any = None
    """Current input tensor -> the Filter Shape as dims, or None for an empty cell."""
    primary: str = ""
    names_activation: bool = False


@dataclass
class Stack:
    channels: int
    height: int
    width: int
    rows: list[RowDesc]
    times: str
    dollars: bool
    declare: bool
    """Write Output Shape / Parameters (from torch) for the rows torch could run."""
    default_act: bool
    """Header `activation: relu`: conv and linear rows naming no activation get a ReLU."""
    perturb: int | None = None
    """Index of a row whose declared Parameters get +1 (one misprint -> one error)."""


def _case(draw: st.DrawFn, word: str) -> str:
    style = draw(st.sampled_from(["as is", "lower", "upper"]))
    return {"as is": word, "lower": word.lower(), "upper": word.upper()}[style]


def _options(draw: st.DrawFn, options: list[str]) -> list[str]:
    return list(draw(st.permutations(options))) if options else []


@st.composite
def conv_row(draw: st.DrawFn, c: int) -> tuple[RowDesc, int]:
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
    cout = groups * draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2))
    dilation = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    cin = c + 1 if draw(st.integers(0, 24)) == 0 else c  # rarely, a channel mismatch
    opts = []
    if stride != 1 or draw(st.booleans()):
        opts.append(f"stride {stride}")
    if padding or draw(st.booleans()):
        opts.append(f"padding {padding}")
    if dilation != 1:
        opts.append(f"dilation {dilation}")
    if groups != 1:
        opts.append(f"groups {groups}")
    if not bias:
        opts.append("no bias")
    opts = _options(draw, opts)
    bn, act = draw(st.booleans()), draw(st.sampled_from([None, *ACTIVATIONS]))
    attached = (["BN"] if bn else []) + ([ACTIVATIONS[act][0]] if act else [])

    def conv(x: torch.Tensor) -> nn.Module:
        return nn.Conv2d(cin, cout, (kh, kw), stride, padding, dilation, groups, bias)

    factories = [conv]
    if bn:
        factories.append(lambda x: nn.BatchNorm2d(x.shape[1]))
    if act:
        factories.append(ACTIVATIONS[act][1])
    in_type = draw(st.booleans()) and kh == kw and cin == c
    if in_type:  # "Conv 3, out 8": kernel and channels in the Type cell, no Filter Shape
        head = f"{_case(draw, 'Conv')} {kh}, out {cout}"
        filter_cells = None
    else:
        head = _case(draw, draw(st.sampled_from(["Conv", "conv2d", "Convolution"])))
        filter_cells = (kh, kw, cin, cout)
    text = ", ".join([head, *opts])
    if attached:
        text += "".join(f" {draw(st.sampled_from(['+', ',']))} {a}" for a in attached)
    row = RowDesc(
        text,
        factories,
        (lambda x, f=filter_cells: f) if filter_cells else None,
        "conv",
        bool(act),
    )
    return row, cout


@st.composite
def pool_row(draw: st.DrawFn, c: int) -> RowDesc:
    kind = draw(st.sampled_from(["maxpool", "avgpool"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    # mostly legal padding (<= half the window); sometimes more, which torch refuses
    padding = draw(st.integers(0, min(kh, kw) // 2 + (draw(st.integers(0, 9)) == 0)))
    dilation = draw(st.integers(1, 2)) if kind == "maxpool" else 1
    ceil = draw(st.booleans())
    opts = []
    if stride is not None:
        opts.append(f"stride {stride}")
    if padding:
        opts.append(f"padding {padding}")
    if dilation != 1:
        opts.append(f"dilation {dilation}")
    if ceil:
        opts.append("ceil mode")
    word = "Max pool" if kind == "maxpool" else draw(st.sampled_from(["Avg pool", "average pool"]))
    s = stride or (kh, kw)

    def pool(x: torch.Tensor) -> nn.Module:
        if kind == "maxpool":
            return nn.MaxPool2d((kh, kw), s, padding, dilation, ceil_mode=ceil)
        return nn.AvgPool2d((kh, kw), s, padding, ceil_mode=ceil)

    relu = draw(st.booleans())
    text = ", ".join([_case(draw, word), *_options(draw, opts)]) + (" + ReLU" if relu else "")
    factories = [pool] + ([lambda x: nn.ReLU()] if relu else [])
    four = draw(st.booleans())
    dims = (kh, kw, c, c) if four else (kh, kw)
    return RowDesc(text, factories, lambda x, d=dims: d, kind, relu)


@st.composite
def spatial_row(draw: st.DrawFn, c: int) -> tuple[RowDesc, int]:
    what = draw(
        st.sampled_from(["conv", "conv", "conv", "pool", "pool", "adaptive", "bn", "act", "drop"])
    )
    if what == "conv":
        return draw(conv_row(c))
    if what == "pool":
        return draw(pool_row(c)), c
    if what == "adaptive":
        oh, ow = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        text = f"Adaptive avg pool {oh}x{ow}" if oh != ow else f"adaptive avg pool {oh}"
        return RowDesc(text, [lambda x: nn.AdaptiveAvgPool2d((oh, ow))], None, "adaptive"), c
    if what == "bn":
        declared = draw(st.booleans())
        return RowDesc(
            _case(draw, draw(st.sampled_from(["BN", "batch norm"]))),
            [lambda x: nn.BatchNorm2d(x.shape[1])],
            (lambda x: (x.shape[1],)) if declared else None,
            "bn",
        ), c
    if what == "act":
        kind = draw(st.sampled_from(list(ACTIVATIONS)))
        word, make = ACTIVATIONS[kind]
        return RowDesc(word, [make], None, kind, True), c
    p = draw(st.sampled_from([0.0, 0.25, 0.5]))
    return RowDesc(f"Dropout {p}", [lambda x: nn.Dropout(p)], None, "dropout"), c


@st.composite
def flat_row(draw: st.DrawFn) -> RowDesc:
    what = draw(st.sampled_from(["linear", "linear", "bn", "act", "drop"]))
    if what == "linear":
        out = draw(st.integers(1, 12))
        bias = draw(st.booleans())
        declared = draw(st.booleans())
        text = f"{_case(draw, 'FC')} {out}" if not declared else _case(draw, "Linear")
        if not bias:
            text += ", no bias"
        act = draw(st.sampled_from([None, "relu", "tanh"]))
        factories = [lambda x: nn.Linear(x.shape[1], out, bias=bias)]
        if act:
            text += f" + {ACTIVATIONS[act][0]}"
            factories.append(ACTIVATIONS[act][1])
        cells = (lambda x: (x.shape[1], out)) if declared else None
        return RowDesc(text, factories, cells, "linear", bool(act))
    if what == "bn":
        return RowDesc("BN", [lambda x: nn.BatchNorm1d(x.shape[1])], None, "bn")
    if what == "act":
        kind = draw(st.sampled_from(["relu", "gelu", "prelu", "prelu_c", "leakyrelu"]))
        word, make = ACTIVATIONS[kind]
        return RowDesc(word, [make], None, kind, True)
    return RowDesc("Dropout", [lambda x: nn.Dropout()], None, "dropout")


@st.composite
def stacks(draw: st.DrawFn) -> Stack:
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    rows: list[RowDesc] = []
    channels = c
    for _ in range(draw(st.integers(1, 5))):
        row, channels = draw(spatial_row(channels))
        rows.append(row)
    if draw(st.booleans()):
        rows.append(RowDesc("Flatten", [lambda x: nn.Flatten()], None, "flatten"))
        rows.extend(draw(st.lists(flat_row(), max_size=3)))
    declare = draw(st.booleans())
    return Stack(
        c,
        h,
        w,
        rows,
        times=draw(st.sampled_from(TIMES)),
        dollars=draw(st.booleans()),
        declare=declare,
        default_act=draw(st.integers(0, 4)) == 0,
        perturb=draw(st.one_of(st.none(), st.integers(0, len(rows) - 1))) if declare else None,
    )


# --- the independent torch witness ---------------------------------------------------------


@dataclass
class TorchRow:
    inp: tuple[int, ...]
    out: tuple[int, ...]
    param_terms: tuple[int, ...]
    macs: int
    modules: list[nn.Module]


def _macs(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        return y.numel() * (m.in_channels // m.groups) * kh * kw
    if isinstance(m, nn.Linear):
        return m.in_features * m.out_features
    return 0


def run_torch(stack: Stack) -> tuple[list[TorchRow], int | None]:
    """Build and run the stack row by row. Returns the rows torch ran and the failing row."""
    torch.manual_seed(0)
    x = torch.zeros(1, stack.channels, stack.height, stack.width)
    done: list[TorchRow] = []
    for i, row in enumerate(stack.rows):
        inp = x
        modules: list[nn.Module] = []
        macs = 0
        factories = list(row.factories)
        if stack.default_act and row.primary in {"conv", "linear"} and not row.names_activation:
            factories.append(lambda t: nn.ReLU())
        try:
            for make in factories:
                m = make(x).eval()
                with torch.no_grad():
                    y = m(x)
                macs += _macs(m, x, y)
                modules.append(m)
                x = y
            if 0 in x.shape:
                raise RuntimeError("empty output")
        except (RuntimeError, ValueError):
            return done, i
        terms = tuple(n for m in modules if (n := sum(p.numel() for p in m.parameters())))
        done.append(TorchRow(tuple(inp.shape[1:]), tuple(x.shape[1:]), terms, macs, modules))
    return done, None


# --- rendering the spec text ---------------------------------------------------------------


def _dims(values: tuple[int, ...], stack: Stack) -> str:
    text = stack.times.join(str(v) for v in values)
    return f"${text}$" if stack.dollars and "\\" in stack.times else text


def _shape_cell(shape: tuple[int, ...], stack: Stack) -> str:
    if len(shape) == 3:
        c, h, w = shape
        return _dims((h, w, c), stack)
    return str(shape[0])


def render(stack: Stack, ran: list[TorchRow]) -> tuple[str, list[int]]:
    """The spec text and each row's line number."""
    lines = [
        "# generated by test_properties.py",
        f"input: {stack.height}x{stack.width}x{stack.channels}",
        "head: flatten -> fc 6",
    ]
    if stack.default_act:
        lines.append("activation: relu")
    lines += ["", "| Type | Filter Shape | Output Shape | Parameters |", "|---|---|---|---|"]
    row_lines = []
    for i, row in enumerate(stack.rows):
        seen = ran[i] if i < len(ran) else None
        filt = ""
        if row.filter_cells is not None:
            if row.primary == "linear" or (row.primary == "bn" and row.filter_cells):
                if seen is not None:  # the input width is only known once torch ran it
                    filt = _dims(row.filter_cells(torch.zeros(1, *seen.inp)), stack)
            else:
                filt = _dims(row.filter_cells(None), stack)
        out = params = ""
        if stack.declare and seen is not None:
            out = _shape_cell(seen.out, stack)
            terms = list(seen.param_terms) or [0]
            if stack.perturb == i and len(ran) == len(stack.rows):
                terms[-1] += 1
            params = "+".join(map(str, terms))
        row_lines.append(len(lines) + 1)
        lines.append(f"| {row.type_text} | {filt} | {out} | {params} |")
    return "\n".join(lines) + "\n", row_lines


# --- the properties ----------------------------------------------------------------------


def _ptflops_conv_linear(model: nn.Module, shape: tuple[int, ...]) -> int:
    """ptflops' count for conv and linear modules only (every other module ignored). ptflops
    counts a bias add per output element on top of the multiply-accumulates."""
    from ptflops import get_model_complexity_info

    ignore = list(
        {type(m) for m in model.modules() if not isinstance(m, nn.Conv2d | nn.Linear)}
        - {nn.Sequential}
    )
    macs, _ = get_model_complexity_info(
        model,
        shape,
        as_strings=False,
        print_per_layer_stat=False,
        ignore_modules=ignore,
        backend="pytorch",
        backend_specific_config={"count_functional": False},
    )
    assert isinstance(macs, int | float)
    return int(macs)


@settings(max_examples=60, deadline=None)
@given(stacks())
def test_random_stacks_agree_with_torch(stack: Stack) -> None:
    ran, failed_at = run_torch(stack)
    text, row_lines = render(stack, ran)
    try:
        spec = parse(text, "gen.spec")
        analysis = analyze(spec)
    except LstnError as err:  # the parser must accept every stack we generate
        pytest.fail(f"{err}\n---\n{text}")
    errors = analysis.errors

    if failed_at is not None:
        assert errors, f"torch fails at row {failed_at + 1}, lstndsl reports nothing\n{text}"
        assert errors[0].line == row_lines[failed_at], f"{errors}\n{text}"
        assert errors[0].code in {"infer", "channels"}, errors[0]
        with pytest.raises(SpecCheckError) as info:
            compiler.build(spec)
        assert info.value.errors[0].line == row_lines[failed_at]
        return

    if stack.perturb is not None:
        # one misprinted Parameters cell: exactly one error, at that row
        assert [(e.line, e.code) for e in errors] == [(row_lines[stack.perturb], "params")], text
        return
    assert not errors, f"{errors}\n{text}"
    assert analysis.complete

    # every row: shape, parameter terms and MACs
    for i, (rr, tr) in enumerate(zip(analysis.rows, ran, strict=True)):
        assert rr.input == tr.inp, (i, text)
        assert rr.output == tr.out, (i, text)
        assert rr.param_terms == tr.param_terms, (i, text)
        assert rr.macs == tr.macs, (i, text)
    flat = ran[-1].out
    features = math.prod(flat)
    assert analysis.params_head == features * 6 + 6
    assert analysis.macs_head == features * 6

    # ptflops on the independent model: conv/linear MACs plus one add per biased output
    modules = [m for tr in ran for m in tr.modules]
    model = nn.Sequential(*modules, nn.Flatten(), nn.Linear(features, 6))
    catalog_count = sum(
        r.cost.get("mac", 0) + r.cost.get("bias", 0)
        for r in analysis.layer_results()
        if r.layer.kind in {"conv", "linear"}
    )
    assert _ptflops_conv_linear(model, (stack.channels, stack.height, stack.width)) == catalog_count

    # the compiler builds the same numbers and verifies them itself
    stn = compiler.build(spec)
    children = list(stn.localization.named_children())
    assert [name.split("_")[0] for name, _ in children] == [
        f"row{i:02d}" for i in range(1, len(stack.rows) + 1)
    ]
    for (_, module), tr in zip(children, ran, strict=True):
        assert sum(p.numel() for p in module.parameters()) == sum(tr.param_terms)
    with torch.no_grad():
        out = stn.eval().localization(torch.zeros(1, stack.channels, stack.height, stack.width))
    assert tuple(out.shape[1:]) == flat


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 48),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 3),
    ceil=st.booleans(),
)
def test_window_arithmetic_matches_torch_pooling(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool
) -> None:
    """catalog.window_out is torch's formula, ceil-mode corner case included."""
    from lstndsl.catalog import window_out

    expected = window_out(size, kernel, stride, padding, dilation, ceil)
    pool = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil)
    try:
        got = pool(torch.zeros(1, 1, size, size)).shape[-1]
    except RuntimeError:
        assert expected < 1 or padding > kernel // 2
        return
    assert padding <= kernel // 2
    assert got == expected
