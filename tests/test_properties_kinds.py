"""Hypothesis property tests for the layer kinds of issue 9 against torch: layer norm (over a
row's C×H×W and after a flatten), group norm G, instance norm (affine or not), Dropout2d and
`padding same`. For random shapes and options, lstndsl's inferred shape and parameter count,
the compiled module's output and the catalog's cost under every convention equal what a
hand-written torch module and the torch-side counter give.

Not here: the older kinds (test_properties.py), emitting (test_emit.py).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import compiler
from compiler.cost import count
from lstndsl import analyze, cost, parse

HEADER = "input: {h}x{w}x{c}\nhead: flatten -> fc 6\n| Type | Filter Shape |\n|---|---|\n"


def _one_row(text: str, c: int, h: int, w: int) -> Any:
    spec = parse(HEADER.format(h=h, w=w, c=c) + text, "gen.spec")
    analysis = analyze(spec)
    assert analysis.ok, analysis.diagnostics
    return spec, analysis


def _same_module(stn: nn.Module, ref: nn.Module) -> None:
    """Copy the compiled row's state into the reference (they must have the same keys)."""
    row = next(iter(stn.localization.children()))
    ref.load_state_dict(row.state_dict(), strict=True)


@st.composite
def norm_rows(draw: st.DrawFn) -> tuple[str, nn.Module, int, int, int]:
    c = draw(st.sampled_from([1, 2, 3, 4, 6, 8]))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    affine = draw(st.booleans())
    eps = draw(st.sampled_from([1e-5, 1e-3]))
    kind = draw(st.sampled_from(["layer", "group", "instance"]))
    opts = ("" if affine else ", no affine") + ("" if eps == 1e-5 else f", eps {eps}")
    if kind == "instance":
        h, w = max(h, 2), max(w, 2)  # InstanceNorm2d needs more than one value per channel
        opts = (", affine" if affine else "") + ("" if eps == 1e-5 else f", eps {eps}")
        ref: nn.Module = nn.InstanceNorm2d(c, eps=eps, affine=affine)
        text = f"| Instance norm{opts} | |\n"
    elif kind == "group":
        g = draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]))
        ref = nn.GroupNorm(g, c, eps=eps, affine=affine)
        text = f"| Group norm {g}{opts} | |\n"
    else:
        ref = nn.LayerNorm([c, h, w], eps=eps, elementwise_affine=affine)
        text = f"| Layer norm{opts} | |\n"
    return text, nn.Sequential(ref), c, h, w


@settings(max_examples=40, deadline=None)
@given(norm_rows(), st.integers(0, 2**16))
def test_norms_agree_with_torch(case: tuple[str, nn.Module, int, int, int], seed: int) -> None:
    text, ref, c, h, w = case
    spec = parse(HEADER.format(h=h, w=w, c=c) + text, "gen.spec")
    analysis = analyze(spec)
    groups = getattr(ref[0], "num_groups", None)
    if groups is not None and c // groups * h * w == 1:  # torch refuses it; so does lstndsl
        (d,) = analysis.errors
        assert (d.line, d.code) == (5, "infer") and "one value per image" in d.message
        return
    assert analysis.ok, analysis.diagnostics
    (row,) = analysis.rows
    assert row.output == (c, h, w)
    assert row.params == sum(p.numel() for p in ref.parameters())
    torch.manual_seed(seed)
    stn = compiler.build(spec)
    module = next(iter(stn.localization.children()))
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-1, 1)  # affine parameters that do something
    ref[0].load_state_dict(module[0].state_dict(), strict=True)
    x = torch.randn(2, c, h, w)
    with torch.no_grad():
        assert torch.equal(stn.eval().localization(x), ref.eval()(x))
    _costs_agree(module, analysis, (c, h, w))


def _costs_agree(module: nn.Module, analysis: Any, shape: tuple[int, int, int]) -> None:
    """The catalog's price of the row equals the torch-side counter's, under every convention."""
    catalog_ops = cost.spec_ops(analysis).localization
    torch_ops = [op for op in count(module, shape) if op.kind != "tensor"]
    for convention in cost.CONVENTIONS:
        assert cost.macs(catalog_ops, convention) == cost.macs(torch_ops, convention), convention


def test_layer_norm_after_a_flatten_normalizes_the_features() -> None:
    spec, analysis = _one_row("| Flatten + Layer norm | |\n", 3, 4, 5)
    assert analysis.rows[0].params == 2 * 60
    stn = compiler.build(spec)
    ln = next(iter(stn.localization.children())).layernorm
    assert isinstance(ln, nn.LayerNorm) and ln.normalized_shape == (60,)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(3, 12),
    st.integers(3, 12),
    st.sampled_from([1, 3, 5, 7]),
    st.sampled_from([1, 3, 5]),
    st.integers(1, 3),
    st.integers(1, 2),
)
def test_padding_same_is_torchs_same_for_odd_kernels(
    c: int, h: int, w: int, kh: int, kw: int, stride: int, dilation: int
) -> None:
    text = f"| Conv, padding same, stride {stride}, dilation {dilation} | {kh}x{kw}x{c}x4 |\n"
    spec = parse(HEADER.format(h=h, w=w, c=c) + text, "gen.spec")
    analysis = analyze(spec)
    pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
    ref = nn.Conv2d(c, 4, (kh, kw), stride=stride, padding=pad, dilation=dilation)
    x = torch.randn(1, c, h, w)
    try:
        expected = tuple(ref(x).shape[1:])
    except RuntimeError:  # the dilated kernel does not fit: lstndsl says so too
        assert not analysis.ok
        return
    assert analysis.ok and analysis.rows[0].output == expected
    assert expected[1:] == (math.ceil(h / stride), math.ceil(w / stride))
    if stride == 1:  # torch's own padding='same' agrees
        same = nn.Conv2d(c, 4, (kh, kw), padding="same", dilation=dilation)
        assert tuple(same(x).shape[1:]) == expected
    stn = compiler.build(spec)
    conv = next(iter(stn.localization.children())).conv
    assert conv.padding == pad


def test_padding_same_with_an_even_kernel_is_an_error_that_says_why() -> None:
    spec = parse(HEADER.format(h=8, w=8, c=3) + "| Conv, padding same | 2x2x3x4 |\n", "t.spec")
    (d,) = analyze(spec).errors
    assert (d.line, d.column, d.code) == (5, 3, "infer")
    assert "needs an odd kernel" in d.message and "uneven padding" in d.message


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
    st.integers(0, 2**16),
)
def test_dropout2d_drops_whole_channels_and_is_the_identity_in_eval(
    c: int, hw: int, p: float, seed: int
) -> None:
    spec, analysis = _one_row(f"| Dropout2d {p} | |\n", c, hw, hw)
    assert analysis.rows[0].params == 0 and analysis.rows[0].output == (c, hw, hw)
    stn = compiler.build(spec)
    (drop,) = next(iter(stn.localization.children())).children()
    assert isinstance(drop, nn.Dropout2d) and drop.p == p
    x = torch.rand(3, c, hw, hw) + 1
    assert torch.equal(stn.eval().localization(x), x)
    torch.manual_seed(seed)
    y = stn.train().localization(x)
    zeroed = (y == 0).flatten(2).all(dim=2)
    kept = (y != 0).flatten(2).all(dim=2)
    assert bool((zeroed | kept).all())  # every channel is dropped whole or kept whole


def test_dropout2d_needs_a_feature_map() -> None:
    spec = parse(HEADER.format(h=4, w=4, c=3) + "| Flatten + Dropout2d | |\n", "t.spec")
    (d,) = analyze(spec).errors
    assert (d.line, d.column, d.code) == (5, 13, "infer")
    assert "feature map" in d.message
