"""Test helper (not a test module): give a freshly compiled model realistic, non-trivial
weights, so that emitted code, fused modules and exports are compared on more than the
identity transform (a fresh head outputs exactly the identity θ)."""

from __future__ import annotations

import torch
from torch import nn


def make_realistic(
    model: nn.Module,
    x: torch.Tensor,
    *,
    stats: torch.Tensor | None = None,
    seed: int = 0,
    shift: float = 0.2,
    var: tuple[float, float] = (0.8, 1.2),
) -> None:
    """Batch-norm statistics from a real batch (`stats`, else x), then perturbed (means moved
    by up to `shift` standard deviations, variances scaled within `var`), and random γ, β (so
    that folding changes every weight); the head's last layer set so that θ = identity + up to
    ±0.15, differently for each image of x."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = 1.0  # one training-mode batch sets the running statistics
    model.train()
    with torch.no_grad():
        model(x if stats is None else stats)
    model.eval()
    stn = getattr(model, "stn", model)
    last = [m for m in stn.modules() if isinstance(m, nn.Linear)][-1]
    identity = last.bias.detach().clone()
    seen: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        for bn in bns:
            assert bn.running_mean is not None and bn.running_var is not None
            n = bn.num_features
            bn.running_mean.add_(shift * torch.randn(n, generator=g) * bn.running_var.sqrt())
            bn.running_var.mul_(var[0] + (var[1] - var[0]) * torch.rand(n, generator=g))
            if bn.affine:
                bn.weight.copy_(0.5 + torch.rand(n, generator=g))
                bn.bias.copy_(0.2 * torch.randn(n, generator=g))
        model(x)
        h = seen[-1]
        w = torch.randn(last.weight.shape, generator=g)
        w *= 0.15 / ((h - h.mean(0)) @ w.T).abs().max().clamp_min(1e-12)
        last.weight.copy_(w)
        last.bias.copy_(identity - w @ h.mean(0))
    hook.remove()
