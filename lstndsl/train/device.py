"""Where and in what precision a run computes: device choice, AMP, channels-last, the Adam
kernel, compilation, determinism.

What it is: small functions the loop calls once (`select_device`, `set_determinism`) or per
step (`autocast`), each a pure decision from its arguments where possible so it can be tested
without a GPU. AMP is a no-op context unless asked: bf16 autocast needs no scaler; fp16 gets a
`GradScaler` (disabled otherwise, so `scaler.scale(loss)` is then the loss itself). The spatial
transformer's grid and sampler run in fp32 whatever autocast says (compiler/stn.py).
What it is not: process groups (`distributed.py`).

Determinism (`--deterministic`): on the CPU every op the trainer uses has a deterministic
kernel, so `torch.use_deterministic_algorithms(True)` is set strictly. On CUDA it is set with
`warn_only=True`, because some backward kernels have no deterministic version and would
otherwise raise: `grid_sample`'s backward (the sampler: it scatters gradients with atomic
adds) and `adaptive_avg_pool2d`'s backward (every ResNet/EfficientNet head). Torch then warns
once per such op and results can differ in the last bits between identical CUDA runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import torch

from lstndsl.errors import UsageError

#: what --amp names map to
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def select_device(
    requested: str,
    *,
    cuda_available: bool | None = None,
    local_rank: int = 0,
    distributed: bool = False,
) -> torch.device:
    """auto -> cuda when available (cuda:LOCAL_RANK under DDP) else cpu; cuda without one is a
    UsageError."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if requested not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device is auto, cpu or cuda, not {requested!r}")
    if requested == "cpu" or (requested == "auto" and not cuda_available):
        return torch.device("cpu")
    if not cuda_available:
        raise UsageError("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device("cuda", local_rank if distributed else 0)


def check_amp(amp: str | None, device: torch.device) -> list[str]:
    """Notes about an AMP choice on this device (empty when unremarkable)."""
    if amp is None:
        return []
    if amp not in AMP_DTYPES:
        raise UsageError(f"--amp is bf16 or fp16, not {amp!r}")
    if device.type == "cpu" and amp == "fp16":
        return ["fp16 autocast on the CPU is slow and gains nothing; bf16 is the CPU's format"]
    if device.type == "cuda" and amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise UsageError("--amp bf16: this GPU has no bfloat16 support; use --amp fp16")
    return []


def autocast(device: torch.device, amp: str | None) -> Callable[[], Any]:
    """A factory of the per-step autocast context: nullcontext without --amp."""
    if amp is None:
        return contextlib.nullcontext
    dtype = AMP_DTYPES[amp]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str | None) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")


#: on the CPU, channels-last pays off from this image side on (bench/train_speed.py: a loss at
#: 64 px, a gain at 128 px and 224 px, more so under bf16)
CPU_CHANNELS_LAST_FROM = 128


def use_channels_last(
    device: torch.device, requested: bool | None = None, image_size: int | None = None
) -> bool:
    """`--channels-last`/`--no-channels-last` when given; otherwise on CUDA (tensor cores) and on
    the CPU for images of at least `CPU_CHANNELS_LAST_FROM` pixels a side."""
    if requested is not None:
        return requested
    if device.type == "cuda":
        return True
    return device.type == "cpu" and (image_size or 0) >= CPU_CHANNELS_LAST_FROM


def adam_options(device: torch.device) -> dict[str, Any]:
    """Adam's implementation: the fused kernel where torch has one (CUDA and the CPU: one kernel
    for all parameters, 3× faster than the per-parameter loop for a ResNet-18 here), else torch's
    default. Same update rule, same state_dict."""
    return {"fused": True} if device.type in ("cuda", "cpu") else {}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a clock read after it measures work done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_mode(compile: bool) -> str:
    """What the plan line says about compilation."""
    return "torch.compile (inductor, default mode)" if compile else "eager"


def set_determinism(enabled: bool, device: torch.device) -> str | None:
    """Turn deterministic algorithms on (or leave torch's defaults); returns a note for the log."""
    if not enabled:
        return None
    torch.backends.cudnn.benchmark = False
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        return (
            "deterministic algorithms on, warn-only: on CUDA grid_sample's backward (the "
            "sampler) and adaptive_avg_pool2d's backward have no deterministic kernel"
        )
    torch.use_deterministic_algorithms(True)
    return "deterministic algorithms on (every CPU kernel used has one)"
