"""compiler/geometry.py: the thin-plate spline against RARE's formulas (written out below in
numpy, as clovaai/deep-text-recognition-benchmark `modules/transformation.py` GridGenerator
computes them), and the geometry every transform kind shares: grids, distances, inverses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compiler import geometry, transforms
from lstndsl.ir import Transform


def rare_grid(c_prime: np.ndarray, fiducials: int, height: int, width: int) -> np.ndarray:
    """RARE's GridGenerator.build_P_prime for a batch of control points (B×F×2): float64
    numpy for the fixed matrices, cast to float32 as its buffers are, products in float32."""
    f = fiducials
    xs = np.linspace(-1.0, 1.0, f // 2)
    c = np.concatenate([np.stack([xs, -np.ones(f // 2)], 1), np.stack([xs, np.ones(f // 2)], 1)])
    hat_c = np.linalg.norm(c[:, None, :] - c[None, :, :], axis=2)
    np.fill_diagonal(hat_c, 1)
    hat_c = (hat_c**2) * np.log(hat_c)
    delta_c = np.concatenate(
        [
            np.concatenate([np.ones((f, 1)), c, hat_c], axis=1),
            np.concatenate([np.zeros((2, 3)), c.T], axis=1),
            np.concatenate([np.zeros((1, 3)), np.ones((1, f))], axis=1),
        ],
        axis=0,
    )
    inv_delta_c = np.linalg.inv(delta_c).astype(np.float32)
    grid_x = (np.arange(-width, width, 2) + 1.0) / width
    grid_y = (np.arange(-height, height, 2) + 1.0) / height
    p = np.stack(np.meshgrid(grid_x, grid_y), axis=2).reshape(-1, 2)
    rbf_norm = np.linalg.norm(p[:, None, :] - c[None, :, :], ord=2, axis=2)
    rbf = np.square(rbf_norm) * np.log(rbf_norm + 1e-6)
    p_hat = np.concatenate([np.ones((p.shape[0], 1)), p, rbf], axis=1).astype(np.float32)
    b = c_prime.shape[0]
    with_zeros = np.concatenate([c_prime, np.zeros((b, 3, 2), np.float32)], axis=1)
    t = inv_delta_c[None] @ with_zeros
    return (p_hat[None] @ t).reshape(b, height, width, 2)


TPS20 = Transform(kind="tps", points=(2, 10))


def test_the_base_points_are_rares_fiducials() -> None:
    base = geometry.tps_base_points((2, 10), torch.empty(0, dtype=torch.float64)).numpy()
    xs = np.linspace(-1.0, 1.0, 10)
    np.testing.assert_allclose(base[:10], np.stack([xs, -np.ones(10)], 1), atol=1e-15)
    np.testing.assert_allclose(base[10:], np.stack([xs, np.ones(10)], 1), atol=1e-15)
    assert transforms.identity_raw(TPS20) == base.reshape(-1).tolist()


@pytest.mark.parametrize(("height", "width"), [(32, 100), (17, 9)])
def test_the_tps_grid_is_rares_for_the_same_control_points(height: int, width: int) -> None:
    gen = torch.Generator().manual_seed(0)
    base = geometry.tps_base_points((2, 10), torch.empty(0))
    c_prime = base + 0.2 * torch.randn(4, 20, 2, generator=gen)
    ours = geometry.grid(c_prime, TPS20, (height, width), align_corners=False)
    theirs = rare_grid(c_prime.numpy(), 20, height, width)
    # float32 rounding: the products are of O(1) numbers over 23 terms
    np.testing.assert_allclose(ours.numpy(), theirs, atol=2e-5, rtol=0)
    assert float(np.abs(ours.numpy() - theirs).max()) > 0  # two computations, not one copied


def test_a_tps_of_affinely_moved_points_is_that_affine_map() -> None:
    """A thin-plate spline reproduces affine maps exactly: its bending part is zero."""
    theta = torch.tensor([[[0.9, -0.2, 0.1], [0.3, 1.1, -0.05]]])
    tps = Transform(kind="tps", points=(3, 4))
    base = geometry.tps_base_points((3, 4), theta)
    moved = base @ theta[0, :, :2].T + theta[0, :, 2]
    got = geometry.grid(moved[None], tps, (12, 16), align_corners=False)
    want = F.affine_grid(theta, [1, 1, 12, 16], align_corners=False)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(geometry.affine_part(moved[None], tps), theta, atol=1e-5, rtol=0)


@pytest.mark.parametrize("align_corners", [False, True])
def test_at_its_base_points_a_tps_grid_is_exactly_the_identity(align_corners: bool) -> None:
    base = torch.tensor(transforms.identity_raw(TPS20)).view(1, 20, 2)
    got = geometry.grid(base, TPS20, (32, 100), align_corners)
    eye = torch.eye(2, 3).unsqueeze(0)
    assert torch.equal(got, F.affine_grid(eye, [1, 1, 32, 100], align_corners=align_corners))


def test_a_tps_translation_bound_keeps_each_point_near_its_base() -> None:
    bounded = Transform(kind="tps", points=(2, 10), translation=0.25)
    raw = torch.tensor(transforms.identity_raw(bounded)).view(1, -1)
    points = transforms.to_matrix(raw + 0.5, bounded)
    base = raw.view(1, 20, 2)
    # each coordinate moves by b·tanh(d / b): 0.25·tanh(2), never the raw 0.5
    want = torch.full_like(points, 0.25 * float(np.tanh(2.0)))
    torch.testing.assert_close(points - base, want, atol=1e-6, rtol=0)
    far = transforms.to_matrix(raw + 100.0, bounded)
    assert float((far - base).abs().max()) <= 0.25 + 1e-6  # float32 rounding of base + b


def test_grid_distance_of_a_shift_is_the_shift_in_pixels() -> None:
    eye = torch.eye(2, 3).expand(3, 2, 3)
    shifted = eye.clone()
    shifted[:, 0, 2] = 0.1  # 0.1 normalized units = 0.1 × W/2 pixels
    d = geometry.theta_distance(shifted, Transform(), eye, (32, 128))
    torch.testing.assert_close(d, torch.full((3,), 6.4), atol=1e-4, rtol=0)
    tps = torch.tensor(transforms.identity_raw(TPS20)).view(1, 20, 2)
    assert float(geometry.theta_distance(tps, TPS20, eye[:1], (32, 100))) < 1e-5


def test_inverse_of_affine_and_projective() -> None:
    gen = torch.Generator().manual_seed(1)
    a = torch.eye(2, 3) + 0.1 * torch.randn(5, 2, 3, generator=gen)
    back = geometry.inverse(geometry.inverse(a))
    torch.testing.assert_close(back, a, atol=1e-5, rtol=0)
    h = torch.eye(3) + 0.05 * torch.randn(5, 3, 3, generator=gen)
    torch.testing.assert_close(
        geometry.inverse(h) @ h, torch.eye(3).expand(5, 3, 3), atol=1e-5, rtol=0
    )


def test_rotation_is_a_rotation_by_its_angle_and_its_bound_holds() -> None:
    rot = Transform(kind="rotation")
    theta = transforms.to_matrix(torch.tensor([[torch.pi / 6]]), rot)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    torch.testing.assert_close(theta, torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]]).float())
    bounded = Transform(kind="rotation", angle=45)
    b = np.pi / 4
    moved = transforms.to_matrix(torch.tensor([[1.0]]), bounded)
    angle = float(torch.atan2(moved[0, 1, 0], moved[0, 0, 0]))
    assert angle == pytest.approx(b * np.tanh(1.0 / b), abs=1e-6)
