"""What the spatial transformer does, in numbers: θ's scale, rotation, translation, the share of
its sampling grid outside the image, and the verdict "collapsed" or not.

What it is: `theta_sums` (per-batch sums a `Meter` accumulates), `collapse_reason` (a per-epoch
verdict with a message), and `grid_distance` (mean distance in pixels between two sampling
grids, any transform kind against an affine target). The geometry itself is
`compiler.geometry`'s. What it is not: the θ loss (`thetaloss.py`) or any picture.

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

from compiler import geometry
from lstndsl.ir import Transform

#: the outside share is measured on a grid of at most this many points a side
_OUTSIDE_GRID = 32
#: θ of the digits' ideal transforms (and of any matrix θ without a spec at hand)
AFFINE = Transform()


def grid_distance(
    theta_pred: torch.Tensor,
    theta_ideal: torch.Tensor,
    size: tuple[int, int],
    transform: Transform = AFFINE,
) -> torch.Tensor:
    """Per-image mean distance in pixels between the sampling grids of θ_pred (of `transform`)
    and θ_ideal (affine) (B): `compiler.geometry.theta_distance`."""
    return geometry.theta_distance(theta_pred, transform, theta_ideal, size)


def per_image(
    theta: torch.Tensor, size: tuple[int, int], transform: Transform = AFFINE
) -> dict[str, torch.Tensor]:
    """scale, |rotation| (degrees), translation (pixels) and outside share, one value per image
    (a tps θ through its least-squares affine summary, `geometry.affine_part`)."""
    theta = theta.detach().float()
    h, w = size
    affine = geometry.affine_part(theta, transform)
    a = affine[:, :, :2]
    t = affine[:, :, 2]
    scale = torch.linalg.det(a).abs().sqrt()
    rotation = torch.rad2deg(torch.atan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1])).abs()
    translation = torch.linalg.vector_norm(t * geometry.pixel_scale(size, t), dim=1)
    gh, gw = min(h, _OUTSIDE_GRID), min(w, _OUTSIDE_GRID)
    grid = geometry.grid(theta, transform, (gh, gw), align_corners=False)
    outside = (grid.abs() > 1.0).any(dim=-1).float().mean(dim=(1, 2))
    return {"scale": scale, "rotation": rotation, "translation": translation, "outside": outside}


def theta_sums(
    theta: torch.Tensor, size: tuple[int, int], transform: Transform = AFFINE
) -> dict[str, float]:
    """Sums over the batch of `per_image`, plus the count `theta_n`, for a `Meter`."""
    values = per_image(theta, size, transform)
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
