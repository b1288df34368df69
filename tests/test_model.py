"""The compiled model: `compiler.build` with and without a backbone, identity at init, and the
liveness check (θ reaches the output; every localization and head parameter learns), through
every backbone family, and against a deliberately broken model like the authors' ResNet-50
notebook. Small inputs (64×64, batch 2) keep it fast.

This file does not test parameter totals per backbone (test_backbones.py) or costs
(test_cost.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from compiler import liveness
from compiler.build import analyze_for_build, build
from compiler.stn import SpatialTransformer, STNModel
from lstndsl import parser
from lstndsl.errors import CompileError

SPECS = Path(__file__).resolve().parents[1] / "specs"
SIZE = 64


def lstn() -> Any:
    return parser.parse_file(SPECS / "lstn.spec")


def test_without_a_backbone_the_transformer_alone_returns_its_input() -> None:
    stn = build(lstn(), input_size=SIZE)
    assert isinstance(stn, SpatialTransformer)
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(stn(x), x, atol=1e-4, rtol=0)
    torch.testing.assert_close(stn.theta(x), torch.eye(3)[:2].expand(2, 2, 3))
    last = stn.head.linear2
    assert float(last.weight.detach().abs().max()) == 0.0
    assert last.bias.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_with_a_backbone_the_forward_is_backbone_of_stn() -> None:
    model = build(lstn(), backbone="resnet18", num_classes=5, input_size=SIZE)
    assert isinstance(model, STNModel)
    stn = model.transformers["input"]
    assert isinstance(stn, SpatialTransformer) and model.sites == {"input": "input"}
    assert {"localization", "head", "grid_sampler"} <= dict(stn.named_children()).keys()
    model.eval()
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.backbone(stn(x))
        assert model(x).shape == (2, 5)
        torch.testing.assert_close(model(x), want)
        # at init the transformer is the identity, so the model is the backbone (up to sampling)
        torch.testing.assert_close(model(x), model.backbone(x), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("backbone", ["resnet18", "densenet121", "efficientnet_b0"])
def test_gradient_reaches_the_localization_net_through_every_family(backbone: str) -> None:
    spec = lstn()
    model = build(spec, backbone=backbone, num_classes=4, input_size=SIZE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    live = liveness.check(model, analyze_for_build(spec, SIZE))
    assert live.output_change > 0
    assert live.smallest_gradient > 0
    assert live.parameters == len(list(model.stn_parameters()))  # 17 rows × 4 + head's 4
    # the check works on a copy: the caller's model is untouched
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_biases_before_batch_norm_are_dead_by_construction() -> None:
    """All 17 L-STN convolutions have a bias followed by a batch norm: in training mode the
    batch norm subtracts the batch mean, so those biases get (numerically) no gradient."""
    spec = lstn()
    stn = build(spec, input_size=SIZE)
    live = liveness.check(stn, analyze_for_build(spec, SIZE))
    assert len(live.dead_by_construction) == 17
    assert all(name.endswith(".conv.bias") for name in live.dead_by_construction)
    # and it is true: after one step their gradient is ~0 next to their conv's weight gradient
    stn.train()
    opt = torch.optim.Adam(stn.parameters(), lr=1e-2)
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    for step in range(2):
        opt.zero_grad()
        (stn(x) * torch.linspace(-1, 1, x.numel()).view_as(x)).mean().backward()
        if step == 0:
            opt.step()
    for row in stn.localization.children():
        assert row.conv.bias.grad.norm() < 1e-4 * row.conv.weight.grad.norm()
    # the STN spec has no batch norm: nothing is dead there
    stn_spec = parser.parse_file(SPECS / "stn.spec")
    plain = build(stn_spec, input_size=SIZE)
    assert liveness.check(plain, analyze_for_build(stn_spec, SIZE)).dead_by_construction == []


class DiscardsTheTransformer(STNModel):
    """The authors' ResNet-50 notebook: forward computes stn(x) and throws it away."""

    def forward(self, x: torch.Tensor, **kwargs: Any) -> Any:
        _ = self.transformers["input"](x)
        assert self.backbone is not None
        return self.backbone(x)


def test_a_transformer_that_does_not_reach_the_output_is_an_error() -> None:
    spec = lstn()
    model = build(spec, backbone="resnet18", num_classes=4, input_size=SIZE)
    assert isinstance(model, STNModel)
    broken = DiscardsTheTransformer(list(model.transformers.values()), model.backbone)
    with pytest.raises(CompileError) as info:
        liveness.check(broken, analyze_for_build(spec, SIZE))
    (diag,) = info.value.diagnostics
    assert "the spatial transformer does not reach the output" in diag.message
    line = spec.source.splitlines().index("transform: affine")  # at the transform header's value
    assert (diag.line, diag.column) == (line + 1, len("transform: ") + 1)


class Detached(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        return out.detach()


def test_a_row_without_gradient_is_an_error_at_that_row() -> None:
    spec = parser.parse_file(SPECS / "stn.spec")
    stn = build(spec, input_size=SIZE)
    assert isinstance(stn, SpatialTransformer)
    first = next(iter(stn.localization.named_children()))[0]
    setattr(stn.localization, first, Detached(getattr(stn.localization, first)))
    with pytest.raises(CompileError) as info:
        liveness.check(stn, analyze_for_build(spec, SIZE))
    diags = info.value.diagnostics
    assert len(diags) == 2  # the conv's weight and bias
    row = analyze_for_build(spec, SIZE).rows[0].row
    assert {(d.line, d.column) for d in diags} == {(row.type.pos.line, row.type.pos.column)}
    assert all("gets no gradient" in d.message for d in diags)


def test_compile_with_a_backbone_runs_the_liveness_check(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "model.pt"
    args = [SPECS / "lstn.spec", "--backbone", "resnet18", "--num-classes", "3"]
    r = cli("compile", *args, "--input-size", "32", "--json", "-o", out)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["backbone"]["name"] == "resnet18" and data["backbone"]["num_classes"] == 3
    assert data["model_params"] == data["params"]["total"] + data["backbone"]["params"]
    assert len(data["liveness"]["dead_by_construction"]) == 17
    model = torch.load(out, weights_only=False)
    assert isinstance(model, STNModel)
    r = cli("compile", *args, "--input-size", "32")
    assert r.code == 0
    assert "liveness: moving θ changes the output" in r.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-classes", "3"], "--num-classes needs --backbone"),
        (["--backbone", "resnt18"], "did you mean 'resnet18'"),
    ],
)
def test_compile_backbone_usage_errors(
    cli: Callable[..., Any], argv: list[str], message: str
) -> None:
    r = cli("compile", SPECS / "stn.spec", *argv)
    assert r.code == 2
    assert message in r.err


def test_a_backbone_that_cannot_take_the_images_is_an_error_at_the_input_header() -> None:
    spec = parser.parse_file(SPECS / "stn.spec")
    model = build(spec, backbone="resnet18", num_classes=3, input_size=SIZE)
    assert isinstance(model, STNModel)
    model.backbone = nn.Linear(5, 3)  # takes 5 features, not an image
    with pytest.raises(CompileError) as info:
        liveness.check(model, analyze_for_build(spec, SIZE))
    (diag,) = info.value.diagnostics
    assert diag.message.startswith(f"the model cannot run a batch of 2 {SIZE}×{SIZE}×3 images")
    assert spec.input.pos is not None
    assert (diag.line, diag.column) == (spec.input.pos.line, spec.input.pos.column)
