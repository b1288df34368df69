"""torch's FlopCounterMode as a witness (compiler/flops.py, `lstndsl profile`): on the three
specs (224×224, the spatial transformer alone) its forward count equals `full` less exactly the
categories it has no formula for, each difference pinned with its reason; its training count is
three forwards less the gradients nobody asks for; `profile --json` carries `macs.torch` and
`train_macs.torch`, and the text explains every difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from compiler import flops
from compiler.build import build
from compiler.cost import model_profile
from lstndsl import parser

SPECS = Path(__file__).resolve().parents[1] / "specs"

#: per spec, at 224×224 alone: (thop, full, ptflops, torch forward, torch training) MACs, and
#: full's MACs in the categories FlopCounterMode prices 0: bias, norm, act, pool
PINNED = {
    "stn.spec": (
        (79_294_138, 81_209_224, 81_211_314, 80_108_272, 183_132_016),
        {"bias": 490_480, "norm": 0, "act": 122_120, "pool": 488_352},
    ),
    "vstn.spec": (
        (86_315_224, 88_230_310, 88_232_400, 86_233_396, 246_750_268),
        {"bias": 1_386_442, "norm": 0, "act": 122_120, "pool": 488_352},
    ),
    "lstn.spec": (
        (25_721_072, 27_827_654, 27_827_654, 24_619_840, 71_200_192),
        {"bias": 801_974, "norm": 1_603_872, "act": 801_968, "pool": 0},
    ),
}
#: every spec's grid and sampler at 224×224×3, full's rules: affine_grid 6 per pixel,
#: bilinear grid_sample 8 per pixel + 4 per element
AFFINE_GRID, GRID_SAMPLE = 6 * 224 * 224, 8 * 224 * 224 + 4 * 224 * 224 * 3


@pytest.fixture(scope="module")
def profiles() -> dict[str, Any]:
    return {name: model_profile(build([parser.parse_file(SPECS / name)])) for name in PINNED}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_torch_count_is_full_less_what_flopcountermode_ignores(
    name: str, profiles: dict[str, Any]
) -> None:
    (thop, full, ptflops, forward, train), ignored = PINNED[name]
    prof = profiles[name]
    assert prof.macs == {"thop": thop, "full": full, "ptflops": ptflops, "torch": forward}
    assert prof.train_macs == {"torch": train}
    count = prof.torch
    # the same weight MACs and (our formulas) the same grid and sampler as full ...
    for same in ("weights", "sampler"):
        assert count.categories[same] == prof.categories["full"][same]
    assert count.ops["aten.affine_grid_generator"] == AFFINE_GRID
    assert count.ops["aten.grid_sampler_2d"] == GRID_SAMPLE
    # ... and nothing for bias, normalization, activations, pooling (no tensor ops in a spec)
    for category, macs in ignored.items():
        assert prof.categories["full"][category] == macs
        assert count.categories[category] == 0
    assert full - forward == sum(ignored.values())
    assert count.parts["sampler"] == AFFINE_GRID + GRID_SAMPLE
    assert count.parts["backbone"] == 0


@pytest.mark.parametrize("name", sorted(PINNED))
def test_training_is_three_forwards_less_the_unasked_gradients(
    name: str, profiles: dict[str, Any]
) -> None:
    """Backward: each convolution and matrix product twice (the gradients of its input and of
    its weights), except that the first convolution's input is the image (no gradient), and the
    sampler's input too (only the grid's gradient: one sampler forward, and affine_grid's
    backward bmm, the same 6 per pixel)."""
    count = profiles[name].torch
    first_conv = profiles[name].torch.train_ops["aten.convolution_backward"]
    first_conv = 2 * count.ops["aten.convolution"] - first_conv  # the image's gradient, not asked
    model = build([parser.parse_file(SPECS / name)])
    conv1 = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        conv1(torch.zeros(1, 3, 224, 224))
    assert first_conv == fc.get_total_flops() // 2
    assert count.train_ops["aten.grid_sampler_2d_backward"] == GRID_SAMPLE
    assert count.train_ops["aten.bmm"] == AFFINE_GRID
    assert count.train == 3 * count.forward - first_conv - (AFFINE_GRID + GRID_SAMPLE)


def test_formulas_follow_the_sampler_mode_and_the_gradients_asked() -> None:
    size = [2, 3, 8, 10]
    assert flops.affine_grid_flops(None, size, False) == 2 * 2 * 6 * 80
    out = (2, 3, 8, 10)
    assert flops.grid_sample_flops(None, None, 0, out_shape=out) == 2 * 2 * (8 * 80 + 4 * 240)
    assert flops.grid_sample_flops(None, None, 1, out_shape=out) == 2 * 2 * 2 * 80
    assert flops.grid_sample_flops(None, None, 2, out_shape=out) == 2 * 2 * (26 * 80 + 16 * 240)
    one = flops.grid_sample_flops(None, None, 0, out_shape=out)
    both = flops.grid_sample_backward_flops(out, None, None, 0, 0, False, [True, True])
    assert both == 2 * one
    assert flops.grid_sample_backward_flops(out, None, None, 0, 0, False, [False, True]) == one


def test_profile_json_and_text_explain_torch(cli: Callable[..., Any]) -> None:
    r = cli("profile", SPECS / "lstn.spec", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["macs"] == {
        "thop": 25_721_072,
        "full": 27_827_654,
        "ptflops": 27_827_654,
        "torch": 24_619_840,
    }
    assert data["train_macs"] == {"torch": 71_200_192}
    r = cli("profile", SPECS / "lstn.spec")
    assert r.code == 0, r.err
    assert "FlopCounterMode (FLOPs / 2" in r.out and "counts 24,619,840 MACs" in r.out
    assert "forward + backward" in r.out and "71,200,192 MACs (2.89 × the forward)" in r.out
    where = r.out.split("where torch differs from full:")[1].splitlines()[1:]
    assert where == [
        "  bias additions: -801,974 — FlopCounterMode ignores bias (a convolution's, addmm's)",
        "  normalization: -1,603,872 — FlopCounterMode has no formula for normalization"
        " (batch, layer, group norm): 0",
        "  activations: -801,968 — FlopCounterMode has no formula for activations (ReLU …): 0",
    ]


def test_behind_a_backbone_torch_also_ignores_pooling_and_tensor_arithmetic() -> None:
    """L-STN + ResNet-18 at 64×64: the backbone adds max pooling, the global average pool and
    the residual additions, all 0 to FlopCounterMode; weights and sampler still agree."""
    model = build(
        [parser.parse_file(SPECS / "lstn.spec")],
        backbone="resnet18",
        num_classes=10,
        input_size=(64, 64),
    )
    prof = model_profile(model, "resnet18", 10)
    full, count = prof.categories["full"], prof.torch
    assert count.categories["weights"] == full["weights"]
    assert count.categories["sampler"] == full["sampler"]
    assert full["pool"] > 0 and full["tensor"] > 0
    ignored = ("bias", "norm", "act", "pool", "tensor")
    assert prof.macs["torch"] == prof.macs["full"] - sum(full[k] for k in ignored)
    assert sum(count.parts.values()) == count.forward


def test_a_tps_grid_is_its_matrix_product_plus_the_identity_grid_it_starts_from() -> None:
    """RARE's TPS: torch sees the (H·W)×N by N×2 product (full's price exactly) and the
    `affine_grid` identity grid the TPS grid is added to (6 per pixel by our formula, which full
    does not charge): the one difference on the sampler, explained in the profile."""
    spec = parser.parse_file(SPECS / "rare-tps.spec")
    prof = model_profile(build([spec]))
    _, h, w = prof.input
    assert spec.transform.points is not None
    n = spec.transform.points[0] * spec.transform.points[1]
    assert prof.torch.ops["aten.bmm"] == h * w * n * 2
    assert prof.torch.ops["aten.affine_grid_generator"] == 6 * h * w
    assert prof.torch.categories["sampler"] - prof.categories["full"]["sampler"] == 6 * h * w
    assert prof.torch.categories["weights"] == prof.categories["full"]["weights"]
