"""Backbones: names (timm first, torchvision fallback, did-you-mean), default resolutions, and
parameter totals of every paper backbone behind a spec equal to `sum(p.numel())` of the real
module.

resnet152 and efficientnet_b5 are only built and counted (and run once on a 64×64 image for
the output shape); no test here runs a backbone at its full resolution.
This file does not test liveness (test_model.py) or MACs (test_cost.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from compiler import backbones
from compiler.build import analyze_for_build, build
from compiler.cost import params
from compiler.stn import STNModel
from lstndsl import parser
from lstndsl.errors import UsageError

SPECS = Path(__file__).resolve().parents[1] / "specs"
PAPER_RESOLUTIONS = {
    "resnet18": 224,
    "resnet50": 224,
    "resnet152": 224,
    "densenet121": 224,
    "efficientnet_b0": 224,
    "efficientnet_b1": 240,
    "efficientnet_b2": 260,
    "efficientnet_b3": 300,
    "efficientnet_b4": 380,
    "efficientnet_b5": 456,
}


def test_paper_backbones_and_their_resolutions() -> None:
    assert set(backbones.PAPER_BACKBONES) == set(PAPER_RESOLUTIONS)
    for name, res in PAPER_RESOLUTIONS.items():
        assert backbones.default_resolution(name) == res
        assert backbones.resolve(name) == ("timm", name)


def test_names_and_spellings_resolve() -> None:
    assert backbones.resolve("ResNet-50") == ("timm", "resnet50")
    assert backbones.resolve("torchvision/resnet50") == ("torchvision", "resnet50")
    assert backbones.resolve("alexnet") == ("torchvision", "alexnet")  # timm has none
    assert backbones.default_resolution("torchvision/inception_v3") == 299
    assert "resnet18" in backbones.names() and "alexnet" in backbones.names()


@pytest.mark.parametrize(
    ("name", "hint"),
    [("resnt50", "did you mean 'resnet50'"), ("efficientnet-b9", "'efficientnet_b8'")],
)
def test_unknown_backbone_is_a_usage_error_with_a_hint(name: str, hint: str) -> None:
    with pytest.raises(UsageError) as info:
        backbones.create(name, num_classes=10)
    assert f"unknown backbone '{name}'" in str(info.value)
    assert hint in str(info.value)
    assert info.value.exit_code == 2


def test_torchvision_fallback_and_its_limits() -> None:
    net = backbones.create("squeezenet1_1", num_classes=7)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
    with pytest.raises(UsageError, match="3 input channels"):
        backbones.create("squeezenet1_1", num_classes=7, in_chans=1)
    with pytest.raises(UsageError, match="from scratch"):
        backbones.create("resnet18", pretrained=True)
    with pytest.raises(UsageError, match="at least 1"):
        backbones.create("resnet18", num_classes=0)


@pytest.mark.parametrize("name", list(PAPER_RESOLUTIONS))
def test_parameter_totals_equal_the_real_module(name: str) -> None:
    """Catalog (localization + head at the backbone's resolution) + backbone == torch's count.
    The STN is compiled at the real resolution; the forward only checks shapes, at 64×64."""
    spec = parser.parse_file(SPECS / "lstn.spec")
    res = PAPER_RESOLUTIONS[name]
    model = build(spec, backbone=name, num_classes=101)
    assert isinstance(model, STNModel)
    analysis = analyze_for_build(spec, res)
    total = sum(p.numel() for p in model.parameters())
    assert analysis.params_total + params(model.backbone) == total
    assert sum(p.numel() for p in model.stn_parameters()) == analysis.params_total
    flat = math.prod(analysis.localization_output)  # 10·52·52 at 224, 10·110·110 at 456
    assert model.transformers["input"].head.linear.in_features == flat
    model.eval()
    with torch.no_grad():
        assert model.backbone(torch.zeros(1, 3, 64, 64)).shape == (1, 101)


def test_known_parameter_counts() -> None:
    """Numbers printed elsewhere: the authors' notebook (torchsummary) prints 12,050,842 for
    L-STN + ResNet-18 with 10 classes; timm's EfficientNet-B0 (1000 classes) has 5,288,548,
    not the ~3× of the notebooks' hand port."""
    spec = parser.parse_file(SPECS / "lstn.spec")
    model = build(spec, backbone="torchvision/resnet18", num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == 12_050_842
    assert params(backbones.create("efficientnet_b0")) == 5_288_548


GRAY = """input: 32x32x1
head: flatten -> fc 8 -> relu -> fc 6

| Type                  | Filter Shape | Output Shape | Parameters |
|-----------------------|--------------|--------------|------------|
| Conv, stride 2 + ReLU | 3×3×1×4      | 15×15×4      | 40         |
"""


def test_backbone_takes_the_spec_channels(write_spec: Callable[..., Path]) -> None:
    spec = parser.parse_file(write_spec(GRAY))
    model = build(spec, backbone="resnet18", num_classes=10, input_size=64)
    assert isinstance(model, STNModel)
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 10)


def test_num_classes_without_a_backbone_is_a_usage_error() -> None:
    spec = parser.parse_file(SPECS / "stn.spec")
    with pytest.raises(UsageError, match="need a backbone"):
        build(spec, num_classes=10)


def test_fixed_size_timm_models_are_built_for_the_compiled_resolution() -> None:
    """ViT and Swin take one image size (timm's `img_size`); build passes the STN's."""
    spec = parser.parse_file(SPECS / "stn.spec")
    model = build(spec, backbone="vit_tiny_patch16_224", num_classes=3, input_size=64)
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
