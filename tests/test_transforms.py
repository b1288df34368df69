"""θ parameterizations and the sampler: identity at init for every transform kind, the bounds
a spec declares hold whatever the head outputs, the sampler settings reach torch, and bounds
that cannot hold the identity are spec errors at their header item.

Specs are tiny (32×32 input, one conv row) and written to tmp_path with the `transform:` and
`sampler:` headers. This file does not test backbones (test_model.py) or costs (test_cost.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from compiler import transforms
from compiler.build import build
from compiler.stn import SpatialTransformer
from lstndsl import parser
from lstndsl.errors import SpecInputError
from lstndsl.ir import Transform
from lstndsl.transforms import KINDS

TINY = """name: tiny
input: 32x32x3
head: flatten -> fc 8 -> relu -> fc {dof}
transform: {transform}
sampler: {sampler}

| Type                  | Filter Shape | Output Shape | Parameters |
|-----------------------|--------------|--------------|------------|
| Conv, stride 2 + ReLU | 3×3×3×4      | 15×15×4      | 112        |
"""
TRANSFORM_LINE = 4


def tiny_stn(
    write_spec: Callable[..., Path],
    transform: str,
    sampler: str = "bilinear, padding zeros, align corners false",
) -> SpatialTransformer:
    dof = KINDS[transform.split(",")[0].strip()].dof
    path = write_spec(TINY.format(dof=dof, transform=transform, sampler=sampler))
    stn = build(parser.parse_file(path))
    assert isinstance(stn, SpatialTransformer)
    return stn


TRANSFORMS = [
    "affine",
    "affine, scale 0.5..2, translation 0.25",
    "translation",
    "translation, translation 0.3",
    "similarity",
    "similarity, scale 0.5..2, translation 0.5",
    "projective",
    "projective, scale 0.8..1.25, translation 0.1",
]


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_fresh_transformer_is_the_identity(write_spec: Callable[..., Path], transform: str) -> None:
    stn = tiny_stn(write_spec, transform)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    theta = stn.theta(x)
    rows = 3 if transform.startswith("projective") else 2
    eye = torch.eye(3)[:rows].expand(2, rows, 3)
    torch.testing.assert_close(theta, eye, atol=1e-6, rtol=0)
    torch.testing.assert_close(stn(x), x, atol=1e-4, rtol=0)


def test_translation_bound_holds_for_any_head_output() -> None:
    t = Transform(kind="translation", translation=0.3)
    for raw in (-1.0, 0.01, 0.5, 2.0):
        theta = transforms.to_matrix(torch.tensor([[raw, -raw]]), t)
        assert float(theta[0, :, 2].abs().max()) < 0.3
    for huge in (-100.0, 1e6):  # tanh saturates to exactly 1 in float32: |t| reaches the bound
        theta = transforms.to_matrix(torch.tensor([[huge, -huge]]), t)
        assert float(theta[0, :, 2].abs().max()) <= 0.3 + 1e-7
    # near zero the bound is the identity map to first order: small shifts pass unchanged
    small = transforms.to_matrix(torch.tensor([[0.001, -0.002]]), t)
    torch.testing.assert_close(small[0, :, 2], torch.tensor([0.001, -0.002]), atol=1e-8, rtol=1e-4)


@pytest.mark.parametrize("raw_scale", [-50.0, -2.0, 0.0, 2.0, 50.0])
def test_similarity_scale_stays_within_its_range(raw_scale: float) -> None:
    t = Transform(kind="similarity", scale=(0.5, 2.0), translation=0.5)
    theta = transforms.to_matrix(torch.tensor([[raw_scale, 0.7, 1.5, -1.5]]), t)
    scale = float(torch.linalg.det(theta[0, :, :2]).abs().sqrt())
    assert 0.5 <= scale <= 2.0
    assert float(theta[0, :, 2].abs().max()) < 0.5
    # the rotation part is a rotation: the two columns are orthogonal and of equal length
    a = theta[0, :, :2]
    assert abs(float(a[:, 0] @ a[:, 1])) < 1e-5


@pytest.mark.parametrize("kind", ["affine", "projective"])
def test_scale_bound_clamps_the_linear_part(kind: str) -> None:
    t = Transform(kind=kind, scale=(0.8, 1.25))
    for factor in (0.1, 0.9, 1.0, 1.2, 10.0):
        raw = transforms.identity_raw(t)
        raw[0] *= factor
        raw[4] *= factor
        theta = transforms.to_matrix(torch.tensor([raw]), t)
        scale = float(torch.linalg.det(theta[0, :2, :2]).abs().sqrt())
        expected = min(max(factor, 0.8), 1.25)
        assert math.isclose(scale, expected, rel_tol=1e-5)


def test_sampler_settings_reach_grid_and_sampler(write_spec: Callable[..., Path]) -> None:
    stn = tiny_stn(write_spec, "affine", "bilinear, padding border, align corners true")
    assert stn.grid_sampler.sampler.align_corners is True
    assert stn.grid_sampler.sampler.padding_mode == "border"
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    theta = torch.tensor([[[0.8, 0.1, 0.3], [-0.1, 0.9, -0.2]]])
    grid = F.affine_grid(theta, [1, 3, 32, 32], align_corners=True)
    want = F.grid_sample(x, grid, padding_mode="border", align_corners=True)
    torch.testing.assert_close(stn.sample(x, theta), want)
    zeros = tiny_stn(write_spec, "affine", "bilinear, padding zeros, align corners true")
    assert not torch.allclose(zeros.sample(x, theta), want)


@pytest.mark.parametrize(
    ("transform", "word", "message"),
    [
        ("similarity, scale 2..3", "scale", "must hold 1 strictly inside"),
        ("projective, scale 1..2", "scale", "must hold 1 strictly inside"),
        ("affine, scale 0..2", "scale", "must start above 0"),
        ("translation, scale 0.5..2", "scale", "does not apply to a translation transform"),
        ("affine, translation 0", "translation", "must be more than 0"),
    ],
)
def test_bounds_that_miss_the_identity_are_errors_at_their_item(
    write_spec: Callable[..., Path], transform: str, word: str, message: str
) -> None:
    kind = transform.split(",")[0]
    text = TINY.format(dof=KINDS[kind].dof, transform=transform, sampler="bilinear")
    path = write_spec(text)
    with pytest.raises(SpecInputError) as info:
        parser.parse_file(path)
    (diag,) = info.value.diagnostics
    line = text.splitlines()[TRANSFORM_LINE - 1]
    assert (diag.line, diag.column) == (TRANSFORM_LINE, line.index(word, len("transform:")) + 1)
    assert message in diag.message
    assert info.value.exit_code == 2
