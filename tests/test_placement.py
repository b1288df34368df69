"""Transformers anywhere: on a backbone module's output (`at:`), several in one model, and the
model object's API. The placed forward is checked against torchvision's ResNet-18 forward
written out by hand, the errors at their line and column."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from compiler import liveness
from compiler.build import build
from compiler.cost import model_profile
from compiler.stn import SpatialTransformer, STNModel
from lstndsl import ir, parser
from lstndsl.errors import SpecCheckError, SpecInputError
from tests.conftest import SPECS

STAGE = """name: stage2
input: 8x8x128
head: flatten -> fc 6
transform: affine

| Type      | Filter Shape | Output Shape | Parameters |
|-----------|--------------|--------------|------------|
| Conv + BN | 3×3×128×8    | 6×6×8        | 9224+16    |
"""
#: where `input:` stands in STAGE (line 2, its value at column 8)
INPUT_POS = ir.Pos(line=2, column=8)
AT_POS = ir.Pos(line=3, column=5)


def placed(text: str, at: str, path: str = "stage2.spec") -> ir.Spec:
    """A spec at `at` (the IR as the `at:` header makes it)."""
    spec = parser.parse(text, path)
    return spec.model_copy(update={"at": at, "at_pos": AT_POS})


def lstn() -> ir.Spec:
    return parser.parse_file(SPECS / "lstn.spec")


def nudge(stn: Any, theta: list[float]) -> None:
    """Move a transformer's θ away from the identity (its head's last bias)."""
    last = list(stn.head.children())[-1]
    with torch.no_grad():
        last.bias.copy_(torch.tensor(theta))


@pytest.fixture(scope="module")
def model() -> STNModel:
    torch.manual_seed(0)
    m = build([lstn(), placed(STAGE, "layer2")], "torchvision/resnet18", 10, 64)
    assert isinstance(m, STNModel)
    nudge(m.transformers["input"], [0.9, 0.1, 0.05, -0.1, 0.9, 0.0])
    nudge(m.transformers["layer2"], [0.8, 0.0, 0.1, 0.0, 0.8, -0.1])
    return m.eval()


def test_a_transformer_on_layer2_resamples_that_map_and_the_backbone_goes_on(
    model: STNModel,
) -> None:
    net: Any = model.backbone
    first, second = model.transformers["input"], model.transformers["layer2"]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, thetas = model(x, return_theta=True)
        with model.without_transformers():  # torchvision's ResNet.forward, by hand
            f = net.maxpool(net.relu(net.bn1(net.conv1(first(x)))))
            f = second(net.layer2(net.layer1(f)))
            f = net.layer4(net.layer3(f))
            want = net.fc(torch.flatten(net.avgpool(f), 1))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert list(thetas) == ["input", "layer2"]
    assert model.sites == {"input": "input", "layer2": "layer2"}
    assert second.analysis.input == (128, 8, 8)  # the real map, not the 64×64 image


def test_the_model_owns_counts_groups_and_resampling(model: STNModel) -> None:
    counts = model.num_params()
    backbone = sum(p.numel() for p in model.backbone.parameters())  # type: ignore[union-attr]
    assert counts["backbone"] == backbone
    # L-STN at 64 px (its net ends in 12×12×10 = 1440 features) and stage2 on the 8×8×128 map
    lstn_total = 3690 + (1440 * 32 + 32) + (32 * 6 + 6)
    stage_total = (9 * 128 * 8 + 8 + 16) + (6 * 6 * 8 * 6 + 6)
    assert counts["stn"] == lstn_total + stage_total
    assert counts["total"] == backbone + counts["stn"]
    ids = {id(p) for p in model.stn_parameters()}
    assert len(ids) == len(list(model.transformers.parameters()))
    x = torch.rand(1, 3, 64, 64)
    eye = torch.eye(2, 3).unsqueeze(0)
    torch.testing.assert_close(model.resample(x, eye, "layer2"), x, atol=1e-5, rtol=0)


def test_liveness_checks_every_transformer(model: STNModel) -> None:
    live = liveness.check(model)
    assert live.parameters == len(list(model.stn_parameters()))
    broken = copy.deepcopy(model)
    stage = broken.transformers["layer2"]
    bn = next(m for m in stage.localization.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():  # a zero γ makes the stage's conv unreachable by any gradient
        bn.weight.zero_()
    bn.weight.requires_grad_(False)
    with pytest.raises(Exception, match="gets no gradient"):
        liveness.check(broken)


def test_each_transformer_is_priced_at_its_own_input(model: STNModel) -> None:
    prof = model_profile(model, "torchvision/resnet18", 10)
    first, second = prof.transformers
    assert (first["site"], second["site"]) == ("input", "layer2")
    assert second["input"] == [128, 8, 8]
    assert second["macs"]["thop"]["localization"] == 6 * 6 * 8 * (128 * 9 + 1) + 6 * 6 * 8 * 2
    assert prof.params["stn"] == first["params"]["stn"] + second["params"]["stn"]
    assert prof.parts["thop"]["localization"] == sum(
        t["macs"]["thop"]["localization"] for t in prof.transformers
    )


def test_two_transformers_at_one_site_apply_in_the_order_given() -> None:
    torch.manual_seed(0)
    m = build([placed(STAGE, "layer2"), placed(STAGE, "layer2")], "torchvision/resnet18", 10, 64)
    assert isinstance(m, STNModel)
    assert list(m.sites) == ["layer2", "layer2_2"]
    a, b = m.transformers["layer2"], m.transformers["layer2_2"]
    nudge(a, [0.7, 0.0, 0.2, 0.0, 0.7, 0.0])
    nudge(b, [1.0, 0.3, 0.0, 0.0, 1.0, 0.0])
    m.eval()
    net: Any = m.backbone
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        got = m(x)
        with m.without_transformers():
            f = net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))
            f = b(a(net.layer2(f)))
            want = net.fc(torch.flatten(net.avgpool(net.layer4(net.layer3(f))), 1))
            swapped = a(b(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))))
            other = net.fc(torch.flatten(net.avgpool(net.layer4(net.layer3(swapped))), 1))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert not torch.allclose(got, other, atol=1e-4)  # the order matters, and is kept


def test_an_unknown_site_is_an_error_at_the_at_header_with_real_names() -> None:
    with pytest.raises(SpecInputError) as info:
        build([placed(STAGE, "layer9")], "torchvision/resnet18", 10, 64)
    (d,) = info.value.diagnostics
    assert (d.line, d.column) == (AT_POS.line, AT_POS.column)
    assert "no module named 'layer9'" in d.message
    assert d.hint is not None and "'layer2'" in d.hint and "layer2 (8×8×128)" in d.hint


def test_channels_that_differ_from_the_real_map_are_an_error_at_input() -> None:
    wrong = STAGE.replace("input: 8x8x128", "input: 8x8x64").replace("3×3×128×8", "3×3×64×8")
    wrong = wrong.replace("9224+16", "4616+16")
    with pytest.raises(SpecCheckError) as info:
        build([placed(wrong, "layer2")], "torchvision/resnet18", 10, 64)
    (d,) = info.value.diagnostics
    assert (d.line, d.column) == (INPUT_POS.line, INPUT_POS.column)
    assert "8×8×128" in d.message and d.hint == "declare 'input: 8x8x128'"


def test_a_module_that_is_not_one_feature_map_is_refused_with_the_reason() -> None:
    with pytest.raises(SpecInputError, match="not a C×H×W feature map"):
        build([placed(STAGE, "fc")], "torchvision/resnet18", 10, 64)
    with pytest.raises(SpecInputError, match="runs 2 times per forward"):
        build([placed(STAGE, "layer1.0.relu")], "torchvision/resnet18", 10, 64)


def test_without_a_backbone_a_placed_spec_compiles_standalone_at_its_input() -> None:
    stn = build(placed(STAGE, "layer2"))
    assert isinstance(stn, SpatialTransformer) and stn.analysis.input == (128, 8, 8)
    assert stn.sites == {"layer2": "layer2"}


def test_checkpoints_of_the_one_transformer_model_still_load() -> None:
    torch.manual_seed(0)
    m = build(lstn(), "test_resnet", 10, 32)
    old = {(k.replace("transformers.input.", "stn.", 1)): v for k, v in m.state_dict().items()}
    assert any(k.startswith("stn.") for k in old)
    fresh = build(lstn(), "test_resnet", 10, 32)
    fresh.load_state_dict(old, strict=True)
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.state_dict().values(), m.state_dict().values(), strict=True)
    )


def test_a_deep_copy_keeps_its_transformers_in_its_own_backbone(model: STNModel) -> None:
    twin = copy.deepcopy(model)
    nudge(twin.transformers["layer2"], [1.2, 0.0, 0.0, 0.0, 1.2, 0.0])
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        _, mine = model(x, return_theta=True)
        _, theirs = twin(x, return_theta=True)
    assert not torch.equal(mine["layer2"], theirs["layer2"])
    assert float(theirs["layer2"][0, 0, 0]) == pytest.approx(1.2)
