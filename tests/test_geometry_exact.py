"""compiler/geometry.py against formulas written out here: a homography's grid computed point by
point in float64, both `align_corners` conventions (for homographies, thin-plate splines and the
pixel scale of grid distances), and what a mutation pass (`make mutate`) found untested.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compiler import geometry
from lstndsl.ir import Transform


def centers(n: int, align_corners: bool) -> np.ndarray:
    """Normalized coordinates of n pixels: their centres, or their corners' span."""
    i = np.arange(n, dtype=np.float64)
    return -1.0 + 2.0 * i / (n - 1) if align_corners else (2.0 * i + 1.0) / n - 1.0


def homography_grid(h: np.ndarray, height: int, width: int, align_corners: bool) -> np.ndarray:
    """For each output pixel (x, y): (x', y') = (H·(x, y, 1))[:2] / (H·(x, y, 1))[2]."""
    out = np.empty((h.shape[0], height, width, 2))
    for b in range(h.shape[0]):
        for r, y in enumerate(centers(height, align_corners)):
            for c, x in enumerate(centers(width, align_corners)):
                u, v, z = h[b] @ np.array([x, y, 1.0])
                out[b, r, c] = (u / z, v / z)
    return out


HOMOGRAPHIES = np.array(
    [
        [[1.1, 0.2, 0.1], [-0.1, 0.9, -0.2], [0.15, -0.1, 1.0]],
        [[0.8, -0.3, 0.0], [0.25, 1.2, 0.1], [-0.2, 0.3, 1.1]],
    ]
)


@pytest.mark.parametrize("align_corners", [False, True])
def test_a_homography_grid_divides_by_the_third_coordinate(align_corners: bool) -> None:
    h = torch.tensor(HOMOGRAPHIES, dtype=torch.float32)
    got = geometry.grid(h, Transform(kind="projective"), (5, 7), align_corners)
    want = homography_grid(HOMOGRAPHIES, 5, 7, align_corners)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-6, rtol=0)
    assert got.dtype == torch.float32
    double = geometry.projective_grid(h.double(), [2, 1, 5, 7], align_corners)
    assert double.dtype == torch.float64
    np.testing.assert_allclose(double.numpy(), want, atol=2e-6, rtol=0)


@pytest.mark.parametrize("align_corners", [False, True])
def test_a_tps_of_affinely_moved_points_is_that_affine_map_in_both_conventions(
    align_corners: bool,
) -> None:
    theta = torch.tensor([[[0.9, -0.2, 0.1], [0.3, 1.1, -0.05]]])
    tps = Transform(kind="tps", points=(3, 4))
    base = geometry.tps_base_points((3, 4), theta)
    moved = base @ theta[0, :, :2].T + theta[0, :, 2]
    got = geometry.grid(moved[None], tps, (6, 9), align_corners)
    want = F.affine_grid(theta, [1, 1, 6, 9], align_corners=align_corners)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_pixel_centers_are_the_identity_grid_of_either_convention() -> None:
    like = torch.empty(0, dtype=torch.float64)
    for align_corners in (False, True):
        got = geometry.pixel_centers((3, 4), align_corners, like)
        assert got.dtype == torch.float64 and got.shape == (12, 2)
        ys, xs = np.meshgrid(centers(3, align_corners), centers(4, align_corners), indexing="ij")
        want = np.stack([xs.ravel(), ys.ravel()], axis=1)
        np.testing.assert_allclose(got.numpy(), want, atol=1e-15, rtol=0)


@pytest.mark.parametrize(("align_corners", "pixels"), [(False, 6.4), (True, 6.35)])
def test_a_shift_in_pixels_follows_the_convention(align_corners: bool, pixels: float) -> None:
    """0.1 normalized units are 0.1·W/2 pixels, or 0.1·(W-1)/2 with align_corners."""
    eye = torch.eye(2, 3).expand(2, 2, 3)
    shifted = eye.clone()
    shifted[:, 0, 2] = 0.1
    a = geometry.grid(shifted, Transform(), (32, 128), align_corners)
    b = geometry.grid(eye, Transform(), (32, 128), align_corners)
    got = geometry.grid_distance(a, b, (32, 128), align_corners)
    torch.testing.assert_close(got, torch.full((2,), pixels), atol=1e-4, rtol=0)
    down = eye.clone()
    down[:, 1, 2] = 0.1  # y: 0.1·H/2, or 0.1·(H-1)/2
    d = geometry.theta_distance(down, Transform(), eye, (32, 128), align_corners)
    torch.testing.assert_close(
        d, torch.full((2,), 1.55 if align_corners else 1.6), atol=1e-4, rtol=0
    )


def test_distances_default_to_pixel_centres_and_keep_the_first_grids_dtype() -> None:
    eye = torch.eye(2, 3).unsqueeze(0)
    shifted = eye.clone()
    shifted[:, 0, 2] = 0.1
    a = geometry.grid(shifted, Transform(), (32, 128), False)
    b = geometry.grid(eye.double(), Transform(), (32, 128), False)
    d = geometry.grid_distance(a, b, (32, 128))  # align_corners False: 0.1·W/2 pixels
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, torch.tensor([6.4]), atol=1e-4, rtol=0)
    t = geometry.theta_distance(shifted, Transform(), eye.double(), (32, 128))
    assert t.dtype == torch.float32
    torch.testing.assert_close(t, torch.tensor([6.4]), atol=1e-4, rtol=0)


def test_a_tps_grid_in_float64_stays_in_float64() -> None:
    tps = Transform(kind="tps", points=(2, 3))
    base = geometry.tps_base_points((2, 3), torch.empty(0, dtype=torch.float64))[None]
    got = geometry.grid(base + 0.01, tps, (4, 6), align_corners=False)
    assert got.dtype == torch.float64
    want = F.affine_grid(torch.eye(2, 3, dtype=torch.float64)[None], [1, 1, 4, 6], False) + 0.01
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)  # the kernel is float32


def test_the_affine_part_of_a_homography_is_its_top_two_rows() -> None:
    h = torch.tensor(HOMOGRAPHIES, dtype=torch.float32)
    got = geometry.affine_part(h, Transform(kind="projective"))
    assert got.shape == (2, 2, 3) and torch.equal(got, h[:, :2, :])
