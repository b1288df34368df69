"""θ parameterizations: how the head's raw outputs become a transform, always identity + residual.

The head's last linear layer starts with zero weights and its bias at `identity_raw()`, so a
fresh spatial transformer returns its input. Each kind maps raw outputs to a matrix:

- `affine` (6, the paper's): θ is the 2×3 matrix itself; identity [1, 0, 0, 0, 1, 0].
- `translation` (2): [[1, 0, tx], [0, 1, ty]]; identity [0, 0].
- `similarity` (4: scale, angle, tx, ty): s·R(α) | t. The scale is exp(raw) (identity 0), or
  with bounds lo..hi, lo + (hi - lo)·sigmoid(raw) (identity at the raw value giving 1).
- `projective` (8): a homography with h33 = 1; identity [1, 0, 0, 0, 1, 0, 0, 0].
- `tps` (2·N): N control points, x then y for each, in the spec's rows×cols layout
  (`geometry.tps_base_points`); identity: the base points themselves. A translation bound b
  keeps every point within b of its base point (per coordinate, b·tanh(d / b)).
- `rotation` (1): the angle α in radians, R(α) | 0; identity 0; a bound
  `angle b` (degrees) keeps |α| < b by b·tanh(α / b).

Bounds: a translation bound b maps t to b·tanh(t / b) (≈ t near 0, |t| < b always). A scale
bound on affine and projective rescales the linear part so that sqrt|det| lies in lo..hi
(clamped: the identity, and anything already inside, is unchanged).

Matrices are in the normalized coordinates of `affine_grid` ([-1, 1] spans the image).
"""

from __future__ import annotations

import math

import torch

from compiler.geometry import tps_base_raw
from lstndsl.ir import Transform


def identity_raw(t: Transform) -> list[float]:
    if t.kind == "tps":
        assert t.points is not None
        return tps_base_raw(t.points)
    if t.kind == "affine":
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    if t.kind == "translation":
        return [0.0, 0.0]
    if t.kind == "rotation":
        return [0.0]
    if t.kind == "similarity":
        if t.scale is None:
            s0 = 0.0
        else:
            lo, hi = t.scale
            p = (1.0 - lo) / (hi - lo)
            s0 = math.log(p / (1.0 - p))
        return [s0, 0.0, 0.0, 0.0]
    if t.kind == "projective":
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    raise ValueError(f"no parameterization for transform kind {t.kind!r}")


def _bound_translation(t: torch.Tensor, bound: float | None) -> torch.Tensor:
    return t if bound is None else bound * torch.tanh(t / bound)


def _bound_linear(a: torch.Tensor, scale: tuple[float, float] | None) -> torch.Tensor:
    """Rescale B×2×2 linear parts so that sqrt|det| lies within `scale`."""
    if scale is None:
        return a
    s = torch.linalg.det(a).abs().clamp_min(1e-12).sqrt()
    target = s.clamp(scale[0], scale[1])
    return a * (target / s)[:, None, None]


def to_matrix(raw: torch.Tensor, t: Transform) -> torch.Tensor:
    """Raw head outputs (B×dof) -> θ: B×2×3, B×3×3 for a projective transform, B×N×2 control
    points for tps."""
    b = raw.shape[0]
    if t.kind == "tps":
        points = raw.view(b, -1, 2)
        if t.translation is None:
            return points
        assert t.points is not None
        base = torch.tensor(tps_base_raw(t.points), dtype=raw.dtype, device=raw.device)
        base = base.view(1, -1, 2)
        return base + _bound_translation(points - base, t.translation)
    if t.kind == "affine":
        theta = raw.view(b, 2, 3)
        lin = _bound_linear(theta[:, :, :2], t.scale)
        trans = _bound_translation(theta[:, :, 2:], t.translation)
        return torch.cat([lin, trans], dim=2)
    if t.kind == "translation":
        eye = torch.eye(2, dtype=raw.dtype, device=raw.device).expand(b, 2, 2)
        trans = _bound_translation(raw.view(b, 2, 1), t.translation)
        return torch.cat([eye, trans], dim=2)
    if t.kind == "similarity":
        if t.scale is None:
            s = raw[:, 0].exp()
        else:
            lo, hi = t.scale
            s = lo + (hi - lo) * torch.sigmoid(raw[:, 0])
        cos, sin = torch.cos(raw[:, 1]) * s, torch.sin(raw[:, 1]) * s
        trans = _bound_translation(raw[:, 2:4], t.translation)
        row0 = torch.stack([cos, -sin, trans[:, 0]], dim=1)
        row1 = torch.stack([sin, cos, trans[:, 1]], dim=1)
        return torch.stack([row0, row1], dim=1)
    if t.kind == "rotation":
        # one number, the angle in radians; a bound of b degrees keeps |angle| < b
        bound = None if t.angle is None else math.radians(t.angle)
        angle = _bound_translation(raw[:, 0], bound)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(cos)
        row0 = torch.stack([cos, -sin, zero], dim=1)
        row1 = torch.stack([sin, cos, zero], dim=1)
        return torch.stack([row0, row1], dim=1)
    if t.kind != "projective":
        raise ValueError(f"no parameterization for transform kind {t.kind!r}")
    ones = torch.ones(b, 1, dtype=raw.dtype, device=raw.device)
    h = torch.cat([raw, ones], dim=1).view(b, 3, 3)
    lin = _bound_linear(h[:, :2, :2], t.scale)
    trans = _bound_translation(h[:, :2, 2:], t.translation)
    top = torch.cat([lin, trans], dim=2)
    return torch.cat([top, h[:, 2:, :]], dim=1)
