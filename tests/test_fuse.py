"""The inference path (compiler/fuse.py): batch norm folded into the layer before it,
channels-last weights, on the three paper specs with batch-norm statistics and γ, β that make
the folding non-trivial; the original is untouched.

What "equal" means here: θ, the localization path's output, agrees within 1e-5. The L-STN's
features cannot be held to 1e-5: its unfused float32 forward is itself that far from exact
(float64) arithmetic, so the test asserts that the fused features are no further from the
float64 result than twice the unfused ones' distance. The resampled image is compared through
the sampler, which fusing does not touch: a θ off by 1e-6 moves a sample at the image border
(where bilinear weights meet the zero padding) by ~1e-4, whatever produced it.

Not tested here: speed (bench/fuse.py measures it; timing never goes in a unit test).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import net_helpers
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lstndsl
from compiler.build import build
from compiler.fuse import count_batchnorms, fold_batchnorm, fuse
from compiler.stn import SpatialTransformer, STNModel

SPECS = Path(__file__).resolve().parents[1] / "specs"
#: the paper's three nets (specs/ also holds a TPS spec and a feature-map spec)
PAPER_SPECS = [SPECS / f"{name}.spec" for name in ("lstn", "stn", "vstn")]
ATOL = 1e-5

SMALL = """\
name: Small
input: 32x32x3
head: flatten -> fc 16 -> batchnorm -> relu -> fc 6

| Type                                     | Filter Shape |
|------------------------------------------|--------------|
| Conv, stride 2, padding 1, no bias + BN  | 3×3×3×6      |
| ReLU                                     |              |
| Conv                                     | 3×3×6×8      |
| BN + ReLU                                |              |
| Max pool, stride 2 + BN                  | 2×2          |
"""


def images(batch: int, shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    """Smooth random images in [0, 1): 8×8 noise, bilinearly upsampled. Not raw pixel noise:
    there a θ that differs in its last bits (float rounding) moves a bilinear sample by up to
    a whole pixel step × the shift, so the image compared would measure the sampler's
    conditioning, not the fusion (θ and the features are compared directly below)."""
    c, h, w = shape
    noise = torch.rand(batch, c, 8, 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)  # the compiled models' initial weights


def make_realistic(model: nn.Module, x: torch.Tensor, seed: int = 0) -> None:
    """net_helpers.make_realistic, with statistics from smooth and raw-noise images and
    smaller perturbations (the fused path is compared within 1e-5)."""
    stats = stats_batch(tuple(x.shape[1:]))
    net_helpers.make_realistic(model, x, stats=stats, seed=seed, shift=0.05, var=(0.9, 1.1))


def stats_batch(shape: tuple[int, ...]) -> torch.Tensor:
    """What the running statistics are computed on: smooth and raw-noise images."""
    noise = torch.rand(2, *shape, generator=torch.Generator().manual_seed(7))
    return torch.cat([images(2, shape, seed=5), noise])


def outputs(stn: SpatialTransformer, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {"localization": stn.localization(x), "theta": stn.theta(x), "output": stn(x)}


def assert_agree(stn: Any, fused: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """θ within 1e-5; features as close to float64 as the unfused ones (×2); the same
    sampler. Returns the unfused outputs."""
    ref, got = outputs(stn, x), outputs(fused, x)
    assert (got["theta"] - ref["theta"]).abs().max().item() <= ATOL
    unfused_err, fused_err = float64_errors(stn, fused, x)
    assert fused_err <= 2 * unfused_err + 1e-6 * ref["localization"].abs().max().item()
    with torch.no_grad():  # the sampler itself is untouched by fusing
        assert torch.equal(fused.sample(x, ref["theta"]), stn.sample(x, ref["theta"]))
    return ref


def float64_errors(stn: nn.Module, fused: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """How far the unfused and the fused float32 features are from the float64 features."""
    exact = copy.deepcopy(stn).double()
    with torch.no_grad():
        truth = exact.localization(x.double())
        unfused = (stn.localization(x).double() - truth).abs().max().item()
        fused_err = (fused.localization(x).double() - truth).abs().max().item()
    return unfused, fused_err


@pytest.mark.parametrize("path", PAPER_SPECS, ids=lambda p: p.stem)
def test_fused_paper_specs_agree_within_1e_5(path: Path) -> None:
    spec = lstndsl.load(path)
    x = images(2, spec.input.shape)
    stn = build(spec)
    assert isinstance(stn, SpatialTransformer)
    make_realistic(stn, x)
    before = {k: v.clone() for k, v in stn.state_dict().items()}
    fused = fuse(stn)
    assert isinstance(fused, SpatialTransformer)
    assert count_batchnorms(fused) == 0
    assert not fused.training
    ref = assert_agree(stn, fused, x)
    # not vacuous: θ differs per image and the output is the image resampled
    assert not torch.allclose(ref["theta"][0], ref["theta"][1], atol=1e-3)
    assert ref["output"].abs().mean() > 0.1 and not torch.allclose(ref["output"], x, atol=1e-2)
    # the original is untouched: same batch norms, same tensors, still trainable
    assert count_batchnorms(stn) == (17 if path.stem == "lstn" else 0)
    after = stn.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in stn.parameters())


def test_folding_changes_the_lstn_weights_and_drops_the_batch_norm_tensors() -> None:
    spec = lstndsl.load(SPECS / "lstn.spec")
    stn = build(spec, input_size=64)
    make_realistic(stn, images(2, (3, 64, 64)))
    fused = fuse(stn, channels_last=False)
    layers = {k.split(".")[-2] for k in fused.state_dict()}
    assert "conv" in layers and "batchnorm" not in layers
    conv, fused_conv = stn.localization[0].conv, fused.localization[0].conv
    assert not torch.allclose(conv.weight, fused_conv.weight)
    assert fused.localization[0].batchnorm.__class__ is nn.Identity


def test_channels_last_is_a_separate_choice() -> None:
    stn = build(lstndsl.load(SPECS / "lstn.spec"), input_size=64)
    cl = fuse(stn)
    plain = fuse(stn, channels_last=False)
    unfolded = fuse(stn, fold=False)
    weight = "localization.row01_conv_batchnorm_relu.conv.weight"
    assert cl.state_dict()[weight].is_contiguous(memory_format=torch.channels_last)
    assert not cl.state_dict()[weight].is_contiguous()
    assert plain.state_dict()[weight].is_contiguous()
    assert count_batchnorms(unfolded) == 17
    assert count_batchnorms(plain) == count_batchnorms(cl) == 0


def test_folds_only_a_batch_norm_right_after_a_conv_or_linear_across_rows() -> None:
    spec = lstndsl.parse(SMALL, "small.spec")
    x = images(3, (3, 32, 32))
    stn = build(spec)
    assert isinstance(stn, SpatialTransformer)
    make_realistic(stn, x)
    # row 1: conv (no bias) + BN; row 3 -> row 4: conv, then BN in the next row; head:
    # linear + BatchNorm1d. Not foldable: the BN after the max pool (row 5).
    assert count_batchnorms(stn) == 4
    fused = fuse(stn)
    assert count_batchnorms(fused) == 1
    assert isinstance(fused.localization[4].batchnorm, nn.BatchNorm2d)
    assert fused.localization[0].conv.bias is not None  # the fold adds one
    assert_agree(stn, fused, x)


def test_fold_batchnorm_counts_in_place() -> None:
    stn = build(lstndsl.parse(SMALL, "small.spec")).eval()
    assert fold_batchnorm(stn) == 3
    assert fold_batchnorm(stn) == 0


def test_fuse_works_on_the_emitted_module(tmp_path: Path) -> None:
    import importlib.util

    from compiler.emit import emit_python

    spec = lstndsl.load(SPECS / "lstn.spec")
    path = tmp_path / "net.py"
    path.write_text(emit_python(spec, 64), encoding="utf-8")
    module_spec = importlib.util.spec_from_file_location("emitted_lstn", path)
    assert module_spec is not None and module_spec.loader is not None
    module: Any = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    x = images(2, (3, 64, 64))
    emitted = module.SpatialTransformer()
    make_realistic(emitted, x)
    fused = fuse(emitted)
    assert count_batchnorms(fused) == 0
    assert_agree(emitted, fused, x)


def test_fuse_folds_a_backbone_through_fx() -> None:
    spec = lstndsl.load(SPECS / "stn.spec")
    model = build(spec, backbone="resnet18", num_classes=5, input_size=64)
    assert isinstance(model, STNModel)
    x = images(2, (3, 64, 64))
    make_realistic(model, x)
    fused = fuse(model)
    assert count_batchnorms(model) == 20 and count_batchnorms(fused) == 0
    with torch.no_grad():
        ref, got = model(x), fused(x)
    assert (ref - got).abs().max().item() <= ATOL * max(1.0, ref.abs().max().item())
