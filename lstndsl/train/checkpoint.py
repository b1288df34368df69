"""Checkpoints: written atomically, loadable with `weights_only=True`, enough to rebuild the model.

What it is: `save_atomic` (write to a temporary file in the same directory, fsync, `os.replace`,
fsync the directory: a reader, or a run killed with SIGKILL at any instant, sees the old file
or the new one, never half of one), `load`, the RNG snapshot a resumed run needs to continue
exactly (torch, CUDA, numpy and Python generators), and `rebuild_model` (checkpoint -> module).

A checkpoint is a dict of plain types and tensors only (no pickled classes), so it loads with
`torch.load(..., weights_only=True)`:
    format, config (TrainConfig.to_json()), spec_text, num_classes, image_size, class_names,
    model (state_dict of what `compiler.build` returned, without any DDP wrapper),
    and in `last` only: optimizer, scheduler (None for a constant lr), scaler, epoch,
    batch_in_epoch, step, history, partial, best, rng.
What it is not: the decision of when to write one (the loop).
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lstndsl.errors import UsageError

FORMAT = "lstndsl-checkpoint/1"
LAST, BEST = "last.pt", "best.pt"


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file beside `path`, fsync, then rename over it.

    A write that fails (a full disk, a read-only place) leaves the previous file as it was and
    raises UsageError (exit 2) saying what was kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        raise _write_error(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _write_error(path: Path, exc: BaseException) -> UsageError:
    # torch's zip writer reports the OSError under it (a full disk) as a RuntimeError
    under: BaseException | None = exc
    while under is not None and not isinstance(under, OSError):
        under = under.__cause__ or under.__context__
    if isinstance(under, OSError):
        reason = under.strerror or str(under)
    else:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    kept = (
        f"the previous {path.name} is kept as it was"
        if path.exists()
        else f"no {path.name} had been written yet"
    )
    return UsageError(f"cannot write {path}: {reason}; {kept}")


def save_json(path: Path, data: Any) -> None:
    """Write JSON (indented) atomically, the same way."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems refuse to open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU (weights_only: it holds no code); every way the file can
    be unusable is a UsageError (exit 2) naming it."""
    data = read_torch(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{path} is not a {FORMAT} checkpoint (it holds {_what(data)})")
    return data


def read_torch(path: str | Path) -> Any:
    """`torch.load(path, weights_only=True)` onto the CPU, or UsageError saying what is wrong.

    torch's own message for a file holding code advises loading it with the unsafe unpickler;
    for a hostile file that would run its payload, so that advice is never passed on."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a checkpoint file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise UsageError(f"{path} is empty (0 bytes): not a checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises anything from EOFError to RuntimeError on bad bytes
        raise UsageError(f"{path} cannot be read as a checkpoint: {_reason(exc)}") from None


#: what torch says when the weights-only unpickler meets a class it will not build
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _reason(exc: BaseException) -> str:
    text = str(exc)
    found = _GLOBAL.search(text)
    if found:
        return (
            f"it holds pickled Python objects ({found.group(1)}), not only tensors; lstndsl "
            "reads state_dicts and its own checkpoints and never unpickles code"
        )
    if "Weights only load failed" in text or "weights_only" in text:
        return "it is not a torch.save file of tensors (truncated, or another format)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"truncated or not a torch.save file ({first})"


def _what(data: Any) -> str:
    if isinstance(data, dict):
        keys = ", ".join(sorted(map(str, data))[:4])
        return f"a dict with {keys}" if keys else "an empty dict"
    return f"a {type(data).__name__}"


# --- random number generators ------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every global generator's state, as tensors and plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's and Python's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- rebuilding ----------------------------------------------------------------------------------


def rebuild_model(path: str | Path) -> nn.Module:
    """The trained model from a checkpoint (`best.pt` or `last.pt`), in eval mode, on the CPU."""
    from lstndsl.train.config import TrainConfig
    from lstndsl.train.model import build_model

    data = load(Path(path))
    config = TrainConfig.from_json(data["config"])
    more = data.get("more_spec_texts") or []
    model = build_model(
        config, data.get("spec_text"), data["num_classes"], data["image_size"], more
    )
    try:
        model.load_state_dict(data["model"])
    except (RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"{path}: its weights do not fit the model its config builds ({first})"
        ) from None
    return model.eval()
