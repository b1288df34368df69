"""θ geometry, once: the sampling grid of every transform kind, the thin-plate-spline
interpolant, grid distances in pixels, inverses and the affine summary of any θ.

What θ is, per kind (see compiler/transforms.py for how the head's raw outputs become θ):
- affine, translation, similarity, rotation: B×2×3 matrices, as `F.affine_grid` takes them;
- projective: B×3×3 homographies (h33 = 1);
- tps: B×N×2 control points (x then y for each point), N = rows·cols of the spec's grid.

Everything is in `affine_grid`'s normalized coordinates: [-1, 1] spans the image; θ maps
output coordinates to input coordinates (grid_sample reads the input there). One normalized
unit is W/2 pixels in x and H/2 in y with `align_corners=False` ((W-1)/2 and (H-1)/2 with
True). Functions work on any device and dtype: every tensor they make follows an argument's.

Thin-plate splines follow RARE (Shi et al., CVPR 2016; clovaai/deep-text-recognition-benchmark
`modules/transformation.py`, `GridGenerator`): base control points C (N×2), kernel
U(r) = r² log r (RARE's; r² log r² is the same interpolant, with weights halved), the system
Δ_C = [[1, C, U(C, C)], [0, Cᵀ], [0, 1ᵀ]] of size (N+3)×(N+3), and for output pixel centers P the
row P̂ = [1, P, U(P, C)]. RARE computes T = Δ_C⁻¹ [C'; 0] and then P' = P̂ T per image; since only
the first N columns of Δ_C⁻¹ meet C', we precompute M = P̂ Δ_C⁻¹[:, :N] ((H·W)×N, in float64,
kept as a float32 buffer) and compute P' = P + M (C' - C) per image (`tps_grid`): the same grid,
one (H·W)×N by N×2 product.

This module is not: the parameterizations (transforms.py), the modules (stn.py) or statistics
over a run (lstndsl/train/thetastats.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lstndsl.ir import Transform

Size = tuple[int, int]


def pixel_scale(size: Size, like: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """Pixels per normalized unit, (x, y), on `like`'s device and dtype."""
    h, w = size
    if align_corners:
        return torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=like.dtype, device=like.device)
    return torch.tensor([w / 2.0, h / 2.0], dtype=like.dtype, device=like.device)


def pixel_centers(size: Size, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """(H·W)×2 normalized (x, y) of the output pixels, row-major: `affine_grid`'s identity grid."""
    h, w = size
    eye = torch.eye(2, 3, dtype=like.dtype, device=like.device).unsqueeze(0)
    return F.affine_grid(eye, [1, 1, h, w], align_corners=align_corners).view(h * w, 2)


def projective_grid(
    h: torch.Tensor, size: torch.Size | list[int], align_corners: bool
) -> torch.Tensor:
    """Like affine_grid, for B×3×3 homographies: sampling coordinates B×H×W×2."""
    b, _, height, width = size
    eye = torch.eye(2, 3, dtype=h.dtype, device=h.device).expand(b, 2, 3)
    base = F.affine_grid(eye, [b, 1, height, width], align_corners=align_corners)
    ones = torch.ones(b, height, width, 1, dtype=h.dtype, device=h.device)
    homog = torch.cat([base, ones], dim=3).view(b, -1, 3) @ h.transpose(1, 2)
    z = homog[..., 2:]
    z = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
    return (homog[..., :2] / z).view(b, height, width, 2)


# --- thin-plate splines --------------------------------------------------------------------


def tps_base_raw(points: tuple[int, int]) -> list[float]:
    """The base control points flattened (x0, y0, x1, y1, …): a rows×cols grid over [-1, 1]²,
    row-major. For rows = 2 this is RARE's layout: N/2 points along the top edge (y = -1), then
    N/2 along the bottom (y = +1), x from -1 to 1. Plain floats: the head's identity bias."""
    rows, cols = points

    def space(n: int) -> list[float]:
        return [-1.0 + 2.0 * i / (n - 1) for i in range(n)]

    return [v for y in space(rows) for x in space(cols) for v in (x, y)]


def tps_base_points(points: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """The base control points as an N×2 tensor (x, y) on `like`'s device and dtype."""
    base = torch.tensor(tps_base_raw(points), dtype=like.dtype, device=like.device)
    return base.view(-1, 2)


def _tps_u(d: torch.Tensor) -> torch.Tensor:
    """U(r) = r² log r of a difference tensor (…×2), with U(0) = 0."""
    r = torch.linalg.vector_norm(d, dim=-1)
    safe = torch.where(r > 0, r, torch.ones_like(r))
    return torch.where(r > 0, r * r * torch.log(safe), torch.zeros_like(r))


def tps_kernel(points: tuple[int, int], size: Size, align_corners: bool) -> torch.Tensor:
    """M, (H·W)×N float32 on the CPU: the TPS grid of control points C' is `M @ C'`."""
    like = torch.empty(0, dtype=torch.float64)  # cpu-ok: solved in float64 on the CPU, once
    c = tps_base_points(points, like)
    n = c.shape[0]
    system = torch.zeros(n + 3, n + 3, dtype=torch.float64)  # cpu-ok: float64 solve, once
    system[:n, 0] = 1.0
    system[:n, 1:3] = c
    system[:n, 3:] = _tps_u(c[:, None, :] - c[None, :, :])
    system[n : n + 2, 3:] = c.T
    system[n + 2, 3:] = 1.0
    inverse = torch.linalg.inv(system)
    p = pixel_centers(size, align_corners, like)
    p_hat = torch.cat([torch.ones_like(p[:, :1]), p, _tps_u(p[:, None, :] - c[None, :, :])], 1)
    return (p_hat @ inverse[:, :n]).float()


def tps_grid(
    control: torch.Tensor,
    kernel: torch.Tensor,
    points: tuple[int, int],
    size: Size,
    align_corners: bool,
) -> torch.Tensor:
    """Sampling coordinates B×H×W×2 of control points B×N×2 through a `tps_kernel` M.

    Computed as P + M (C' - C), which equals M C' (M C = P: the spline through the base points
    is the identity) but is exactly `affine_grid`'s identity grid when C' = C, so a fresh TPS
    transformer samples exactly where a fresh affine one does."""
    h, w = size
    base = tps_base_points(points, control)
    offset = kernel.to(control) @ (control - base)
    return (pixel_centers(size, align_corners, control) + offset).view(-1, h, w, 2)


# --- any kind ------------------------------------------------------------------------------


def grid(
    theta: torch.Tensor,
    transform: Transform,
    size: Size,
    align_corners: bool,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sampling coordinates B×H×W×2 of θ for an output of `size` (H, W). For tps, `kernel`
    (a `tps_kernel` for this size) saves solving the spline again."""
    b = theta.shape[0]
    h, w = size
    if transform.kind == "tps":
        assert transform.points is not None
        if kernel is None:
            kernel = tps_kernel(transform.points, size, align_corners)
        return tps_grid(theta, kernel, transform.points, size, align_corners)
    if theta.shape[-2:] == (3, 3):
        return projective_grid(theta, [b, 1, h, w], align_corners)
    return F.affine_grid(theta, [b, 1, h, w], align_corners=align_corners)


def grid_distance(
    grid_a: torch.Tensor, grid_b: torch.Tensor, size: Size, align_corners: bool = False
) -> torch.Tensor:
    """Per-image mean distance in pixels between two sampling grids B×H×W×2 (B)."""
    diff = (grid_a - grid_b.to(grid_a)) * pixel_scale(size, grid_a, align_corners)
    return torch.linalg.vector_norm(diff, dim=-1).mean(dim=(1, 2))


def theta_distance(
    theta: torch.Tensor,
    transform: Transform,
    target: torch.Tensor,
    size: Size,
    align_corners: bool = False,
    target_transform: Transform | None = None,
) -> torch.Tensor:
    """Per-image mean distance in pixels between the grids of θ (of `transform`) and a target
    θ (affine unless `target_transform` says otherwise): the θ-recovery error, and the θ loss.
    Differentiable in θ."""
    target_kind = target_transform or Transform()
    a = grid(theta.float(), transform, size, align_corners)
    b = grid(target.to(a), target_kind, size, align_corners)
    return grid_distance(a, b, size, align_corners)


def inverse(theta: torch.Tensor) -> torch.Tensor:
    """The inverse of B×2×3 affine maps (top two rows) or of B×3×3 homographies."""
    if theta.shape[-2:] == (3, 3):
        return torch.linalg.inv(theta)
    bottom = torch.zeros_like(theta[..., :1, :])
    bottom[..., 0, 2] = 1.0
    return torch.linalg.inv(torch.cat([theta, bottom], dim=-2))[..., :2, :]


def affine_part(theta: torch.Tensor, transform: Transform) -> torch.Tensor:
    """B×2×3: θ's affine summary for statistics. Matrices: their top two rows (a homography's
    linear part and translation); tps: the least-squares affine map of the base control points
    onto the predicted ones (exact when the spline is affine)."""
    if transform.kind != "tps":
        return theta[:, :2, :]
    assert transform.points is not None
    base = tps_base_points(transform.points, theta)
    design = torch.cat([base, torch.ones_like(base[:, :1])], dim=1)  # N×3
    fit = torch.linalg.pinv(design) @ theta  # B×3×2: rows x, y, 1 -> (x', y')
    return fit.transpose(1, 2)
