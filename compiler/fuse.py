"""The inference path: a copy of a compiled model with batch norm folded into the convolutions
and the weights in channels-last memory layout.

`fuse(module, fold=True, channels_last=True) -> module` returns a deep copy in eval mode:

- fold: every BatchNorm that directly follows a Conv2d (BatchNorm2d) or a Linear (BatchNorm1d)
  in a chain of Sequentials (the localization net's rows, the head) is folded into it, in
  float64, and replaced by `nn.Identity()`. A backbone (`STNModel.backbone`), whose blocks
  are not Sequentials, is folded through torch.fx when it traces; if it does not, it is
  left unfolded (`count_batchnorms` tells what is left).
- channels_last: 4-D weights are stored NHWC. Inputs may stay NCHW: oneDNN convolutions take
  the layout from a channels-last weight, so activations are channels-last from the first
  convolution on (bench/fuse.py measures what this buys on this CPU; see BENCHMARKS.md).

Outputs equal the unfused module's within float rounding (1e-5 on the three paper specs with
randomized batch-norm statistics; tests/test_fuse.py). The fused copy is for inference only:
its batch norms no longer learn. This module is not quantization and not torch.compile.
"""

from __future__ import annotations

import copy
import itertools
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

from compiler.stn import INPUT, STNModel

M = TypeVar("M", bound=nn.Module)

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _leaves(seq: nn.Sequential) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, name, module) of a Sequential's layers in execution order, nested
    Sequentials flattened."""
    out: list[tuple[nn.Module, str, nn.Module]] = []
    for name, child in seq.named_children():
        if isinstance(child, nn.Sequential):
            out += _leaves(child)
        else:
            out.append((seq, name, child))
    return out


def _chains(module: nn.Module) -> list[nn.Sequential]:
    """The outermost Sequentials in `module` (a Sequential inside one is part of its chain)."""
    if isinstance(module, nn.Sequential):
        return [module]
    found: list[nn.Sequential] = []
    for child in module.children():
        found += _chains(child)
    return found


def _foldable(first: nn.Module, bn: nn.Module) -> bool:
    if not isinstance(bn, _BATCHNORMS) or bn.running_mean is None or bn.running_var is None:
        return False
    if isinstance(first, nn.Conv2d):
        return isinstance(bn, nn.BatchNorm2d) and first.out_channels == bn.num_features
    if isinstance(first, nn.Linear):
        return isinstance(bn, nn.BatchNorm1d) and first.out_features == bn.num_features
    return False


def _fold(first: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    """A new conv or linear computing bn(first(x)) in eval mode; the arithmetic in float64."""
    assert bn.running_mean is not None and bn.running_var is not None
    dtype = first.weight.dtype
    w = first.weight.detach().double()
    b = None if first.bias is None else first.bias.detach().double()
    gamma = None if bn.weight is None else bn.weight.detach().double()
    beta = None if bn.bias is None else bn.bias.detach().double()
    mean, var = bn.running_mean.double(), bn.running_var.double()
    if isinstance(first, nn.Conv2d):
        weight, bias = fuse_conv_bn_weights(w, b, mean, var, bn.eps, gamma, beta)
        fused: nn.Conv2d | nn.Linear = copy.deepcopy(first)
    else:
        if gamma is None or beta is None:
            gamma, beta = torch.ones_like(mean), torch.zeros_like(mean)
        if b is None:
            b = torch.zeros_like(mean)
        weight, bias = fuse_linear_bn_weights(w, b, mean, var, bn.eps, gamma, beta)
        fused = copy.deepcopy(first)
    fused.weight = nn.Parameter(weight.detach().to(dtype), requires_grad=False)
    fused.bias = nn.Parameter(bias.detach().to(dtype), requires_grad=False)
    return fused


def fold_batchnorm(module: nn.Module) -> int:
    """In place (module must be in eval mode): fold each BatchNorm that directly follows a
    Conv2d or Linear in a Sequential chain into it. Returns how many were folded."""
    folded = 0
    for chain in _chains(module):
        leaves = _leaves(chain)
        for (parent, name, first), (bn_parent, bn_name, bn) in itertools.pairwise(leaves):
            if isinstance(first, nn.Conv2d | nn.Linear) and _foldable(first, bn):
                assert isinstance(bn, _BATCHNORMS)
                setattr(parent, name, _fold(first, bn))
                setattr(bn_parent, bn_name, nn.Identity())
                folded += 1
    return folded


def _fold_traced(module: nn.Module) -> nn.Module:
    """Fold a module that is not a Sequential chain (a backbone) through torch.fx; unchanged
    if it does not trace."""
    from torch.fx.experimental.optimization import fuse as fx_fuse

    if count_batchnorms(module) == 0:
        return module
    try:
        return fx_fuse(module, inplace=True)
    except Exception:  # symbolic tracing fails on data-dependent control flow
        return module


def count_batchnorms(module: nn.Module) -> int:
    """Batch norms left in a module (0 after a complete fold)."""
    return sum(isinstance(m, _BATCHNORMS) for m in module.modules())


def fuse(module: M, *, fold: bool = True, channels_last: bool = True) -> M:
    """A copy of `module` for inference: eval mode, batch norm folded (`fold`), 4-D weights
    in channels-last layout (`channels_last`). The original is left untouched."""
    fused = copy.deepcopy(module).eval()
    if fold:
        if isinstance(fused, STNModel):
            for stn in fused.transformers.values():
                fold_batchnorm(stn)
            # fx tracing drops forward hooks: a backbone carrying transformers stays unfolded
            placed = any(site != INPUT for site in fused.sites.values())
            if fused.backbone is not None and not placed:
                fused.backbone = _fold_traced(fused.backbone)
        else:
            fold_batchnorm(fused)
    if channels_last:
        fused.to(memory_format=torch.channels_last)
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
