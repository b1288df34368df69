"""What the spatial transformer does, in numbers: θ's scale, rotation, translation, the share of
its sampling grid outside the image, and the verdict "collapsed" or not.

What it is: `theta_sums` (per-batch sums a `Meter` accumulates), `collapse_reason` (a per-epoch
verdict with a message), and `grid_distance` (mean distance in pixels between two sampling
grids; for affine θ it is the data layer's `theta_recovery_error`, for projective θ the grids
are computed). What it is not: the θ loss (`thetaloss.py`) or any picture (`pictures.py`).

Conventions: θ maps output coordinates to input coordinates in `affine_grid`'s normalized
units (the image spans [-1, 1]). So for θ = [A | t]:
- scale = sqrt|det A|: > 1 samples a larger area (the content shrinks, "zooms out"), < 1 zooms in;
- rotation = the angle of A's nearest rotation, atan2(a21 − a12, a11 + a22), in degrees (its
  absolute value is averaged: distortions turn both ways);
- translation = |t| converted to pixels (x × W/2, y × H/2);
- outside = the share of output pixels whose sampling point falls outside the input image
  (they read the zero padding): 0 for the identity, → 1 when the image zooms out to nothing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from compiler.stn import projective_grid
from lstndsl.train.data import theta_recovery_error

#: the outside share is measured on a grid of at most this many points a side
_OUTSIDE_GRID = 32


def sampling_grid(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B×H×W×2 sampling coordinates for 2×3 (affine) or 3×3 (projective) θ, align_corners=False."""
    h, w = size
    theta = theta.float()
    if theta.shape[-2:] == (3, 3):
        return projective_grid(theta, torch.Size([theta.shape[0], 1, h, w]), False)
    return F.affine_grid(theta, [theta.shape[0], 1, h, w], align_corners=False)


def grid_distance(
    theta_pred: torch.Tensor, theta_ideal: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Per-image mean distance in pixels between the sampling grids of θ_pred and θ_ideal (B)."""
    if theta_pred.shape[-2:] == (2, 3):
        return theta_recovery_error(theta_pred.float(), theta_ideal, size, reduction="none")
    h, w = size
    diff = sampling_grid(theta_pred, size) - sampling_grid(theta_ideal.to(theta_pred), size)
    pixels = diff * torch.tensor([w / 2.0, h / 2.0], dtype=diff.dtype, device=diff.device)
    return torch.linalg.vector_norm(pixels, dim=-1).mean(dim=(1, 2))


def per_image(theta: torch.Tensor, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """scale, |rotation| (degrees), translation (pixels) and outside share, one value per image."""
    theta = theta.detach().float()
    h, w = size
    a = theta[:, :2, :2]
    t = theta[:, :2, 2]
    scale = torch.linalg.det(a).abs().sqrt()
    rotation = torch.rad2deg(torch.atan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1])).abs()
    translation = torch.linalg.vector_norm(
        t * torch.tensor([w / 2.0, h / 2.0], device=t.device), dim=1
    )
    gh, gw = min(h, _OUTSIDE_GRID), min(w, _OUTSIDE_GRID)
    grid = sampling_grid(theta, (gh, gw))
    outside = (grid.abs() > 1.0).any(dim=-1).float().mean(dim=(1, 2))
    return {"scale": scale, "rotation": rotation, "translation": translation, "outside": outside}


def theta_sums(theta: torch.Tensor, size: tuple[int, int]) -> dict[str, float]:
    """Sums over the batch of `per_image`, plus the count `theta_n`, for a `Meter`."""
    values = per_image(theta, size)
    sums = {k: float(v.double().sum()) for k, v in values.items()}
    sums["theta_n"] = float(theta.shape[0])
    return sums


def collapse_reason(
    stats: dict[str, float | None], *, max_outside: float, min_scale: float
) -> str | None:
    """A message when mean θ statistics say the transformer collapsed, else None: its grid
    lies (almost) entirely outside the image, zoomed out (scale > 1) or shifted away, so the
    backbone sees only padding and the sampler passes no gradient back; or it zooms in to a
    point."""
    outside, scale = stats.get("outside"), stats.get("scale")
    shift = stats.get("translation")
    if outside is not None and not math.isfinite(outside):
        return "θ is not finite"
    if outside is not None and outside > max_outside:
        how = (
            "zooms out to nothing" if scale is not None and scale > 1 else "looks beside the image"
        )
        return (
            f"θ collapsed: the transformer {how} ({100 * outside:.0f}% of its sampling grid "
            f"lies outside the image; mean scale {scale:.3g}, mean shift {shift:.1f}px)"
        )
    if scale is not None and (not math.isfinite(scale) or scale < min_scale):
        return (
            f"θ collapsed: the transformer zooms in to a point (mean scale {scale:.3g} < "
            f"{min_scale:g}: its output shows a sliver of the image)"
        )
    return None
