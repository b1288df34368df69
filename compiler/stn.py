"""The spatial transformer and the full model, as torch modules.

`SpatialTransformer`: localization net -> regression head -> θ -> grid -> sampler. Its
`forward(x)` returns the resampled image (same size as x); `theta(x)` returns the transform.
The grid and the sampler share one `align_corners` and run in float32 even under autocast
(half-precision sampling coordinates are visibly wrong at 224 px and above). They live in one
parameter-free leaf module, `GridSampler` (`stn.resample`), so that cost counters that work by
module hooks (ours in compiler/cost.py, ptflops) can price `affine_grid` and `grid_sample`.

`STNModel`: `backbone(stn(x))`, the one forward the compiler writes, so the spatial
transformer always reaches the output (the reference code's ResNet and EfficientNet notebooks
computed it and threw it away).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compiler import transforms
from lstndsl.ir import Sampler, Transform


def projective_grid(h: torch.Tensor, size: torch.Size, align_corners: bool) -> torch.Tensor:
    """Like affine_grid, for B×3×3 homographies: sampling coordinates B×H×W×2."""
    b, _, height, width = size
    eye = torch.eye(2, 3, dtype=h.dtype, device=h.device).expand(b, 2, 3)
    base = F.affine_grid(eye, [b, 1, height, width], align_corners=align_corners)
    ones = torch.ones(b, height, width, 1, dtype=h.dtype, device=h.device)
    homog = torch.cat([base, ones], dim=3).view(b, -1, 3) @ h.transpose(1, 2)
    z = homog[..., 2:]
    z = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
    return (homog[..., :2] / z).view(b, height, width, 2)


class GridSampler(nn.Module):
    """(x, θ) -> x resampled on θ's grid: `affine_grid` (or `projective_grid`) then
    `grid_sample`, in float32 whatever autocast says; returns x's dtype. No parameters."""

    def __init__(self, sampler: Sampler) -> None:
        super().__init__()
        self.sampler = sampler

    def grid(self, theta: torch.Tensor, size: torch.Size) -> torch.Tensor:
        align = self.sampler.align_corners
        if theta.shape[1] == 3:
            return projective_grid(theta, size, align)
        return F.affine_grid(theta, list(size), align_corners=align)

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            grid = self.grid(theta.float(), x.shape)
            out = F.grid_sample(
                x.float(),
                grid,
                mode=self.sampler.mode,
                padding_mode=self.sampler.padding_mode,
                align_corners=self.sampler.align_corners,
            )
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        s = self.sampler
        return f"mode={s.mode}, padding_mode={s.padding_mode}, align_corners={s.align_corners}"


class SpatialTransformer(nn.Module):
    """Image in, resampled image out. Submodules: `localization` (one child per spec row),
    `head` (flatten → … → the raw transform parameters) and `resample` (grid and sampler)."""

    def __init__(
        self,
        localization: nn.Sequential,
        head: nn.Sequential,
        transform: Transform,
        sampler: Sampler,
    ) -> None:
        super().__init__()
        self.localization = localization
        self.head = head
        self.resample = GridSampler(sampler)
        self.transform = transform
        self.sampler = sampler

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The head's outputs (B×dof), before the parameterization."""
        return self.head(self.localization(x))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """θ for each image: B×2×3 (B×3×3 for a projective transform), in float32."""
        return transforms.to_matrix(self.raw(x).float(), self.transform)

    def grid(self, theta: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """Sampling coordinates B×H×W×2 for θ and an output of `size` (B, C, H, W)."""
        return self.resample.grid(theta, size)

    def sample(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Resample x with θ, in float32 whatever autocast says; returns x's dtype."""
        out: torch.Tensor = self.resample(x, theta)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sample(x, self.theta(x))

    def extra_repr(self) -> str:
        s = self.sampler
        return (
            f"transform={self.transform.kind}, mode={s.mode}, padding_mode={s.padding_mode},"
            f" align_corners={s.align_corners}"
        )


class STNModel(nn.Module):
    """`backbone(stn(x))`: a spatial transformer in front of a classifier."""

    def __init__(self, stn: SpatialTransformer, backbone: nn.Module) -> None:
        super().__init__()
        self.stn = stn
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.stn(x))
