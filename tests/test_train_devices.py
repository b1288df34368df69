"""Device choice, AMP, determinism and torchrun's environment, tested without a GPU: the decisions
are pure functions of their arguments, and bf16/fp16 autocast (with fp16's GradScaler) run on the
CPU too, so the loop's mixed-precision path is exercised here for real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from train_helpers import write_folder

from lstndsl.errors import UsageError
from lstndsl.train.config import TrainConfig
from lstndsl.train.device import (
    autocast,
    check_amp,
    grad_scaler,
    select_device,
    set_determinism,
    use_channels_last,
)
from lstndsl.train.distributed import DistContext, from_environment
from lstndsl.train.loop import main
from lstndsl.train.progress import Console

REPO = Path(__file__).resolve().parents[1]
CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_auto_picks_cuda_only_when_there_is_one() -> None:
    assert select_device("auto", cuda_available=False) == CPU
    assert select_device("auto", cuda_available=True) == CUDA
    assert select_device("cpu", cuda_available=True) == CPU
    assert select_device("cuda", cuda_available=True) == CUDA


def test_each_torchrun_process_takes_its_local_gpu() -> None:
    got = select_device("auto", cuda_available=True, local_rank=3, distributed=True)
    assert got == torch.device("cuda", 3)
    assert select_device("auto", cuda_available=False, local_rank=3, distributed=True) == CPU


def test_cuda_without_a_gpu_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no CUDA device is available here; use --device cpu"):
        select_device("cuda", cuda_available=False)


def test_amp_is_a_no_op_unless_asked() -> None:
    assert autocast(CPU, None)().__class__ is contextlib.nullcontext
    layer = torch.nn.Linear(4, 4)
    with autocast(CPU, "bf16")():
        assert layer(torch.ones(2, 4)).dtype == torch.bfloat16
    with autocast(CPU, None)():
        assert layer(torch.ones(2, 4)).dtype == torch.float32


def test_only_fp16_gets_a_gradient_scaler() -> None:
    assert grad_scaler(CPU, "fp16").is_enabled()
    assert not grad_scaler(CPU, "bf16").is_enabled()
    assert not grad_scaler(CPU, None).is_enabled()
    assert check_amp("fp16", CPU) == [
        "fp16 autocast on the CPU is slow and gains nothing; bf16 is the CPU's format"
    ]
    assert check_amp("bf16", CPU) == [] and check_amp(None, CUDA) == []


def test_channels_last_only_on_cuda() -> None:
    assert use_channels_last(CUDA) and not use_channels_last(CPU)


@pytest.fixture
def restore_determinism() -> Iterator[None]:
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@pytest.mark.usefixtures("restore_determinism")
def test_determinism_is_strict_on_the_cpu_and_warn_only_on_cuda() -> None:
    assert set_determinism(False, CPU) is None
    assert not torch.are_deterministic_algorithms_enabled()
    assert "every CPU kernel" in (set_determinism(True, CPU) or "")
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    note = set_determinism(True, CUDA) or ""
    assert "grid_sample's backward" in note
    assert torch.is_deterministic_algorithms_warn_only_enabled()


def test_torchrun_environment() -> None:
    assert from_environment({}) == DistContext()
    ctx = from_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (2, 4, 0, False)
    assert from_environment({"WORLD_SIZE": "1", "RANK": "0"}) == DistContext()


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_runs_on_the_cpu(tmp_path: Path, amp: str) -> None:
    config = TrainConfig(
        spec=str(REPO / "specs" / "stn.spec"),
        backbone="test_resnet",
        dataset=f"folder:{write_folder(tmp_path / 'data')}",
        image_size=32,
        max_epochs=1,
        pictures=0,
        amp=amp,
        out=str(tmp_path / amp),
    )
    result = main(config, console=Console(echo=False))
    assert result.exit_code == 0
    assert result.summary["amp"] == amp and result.summary["test_top1"] is not None
    assert result.summary["steps"] == 2  # 26 training images in batches of 16
