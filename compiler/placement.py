"""Where a transformer sits: the input, or the output of a named backbone module.

A site is `input` or a name from the backbone's `named_modules()` (`layer2`, `features.3`,
`stages.1`). `feature_shapes` runs the backbone once on a zero image (batch 1, eval mode, no
gradient) with forward hooks on the named modules and records each one's output shape: the
real feature map a transformer there resamples. `placeable` lists the modules a transformer can
sit on (4-D outputs, at most two levels deep), for did-you-means and `profile --sites`.

Nothing here is per architecture: any timm or torchvision backbone whose module tree has the
name works; a module whose output is not a B×C×H×W tensor, or that runs more than once per
forward (its output is then not one feature map), is refused with the reason.

This module is not: the hooks that do the resampling (stn.STNModel owns them) or building.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: how deep `placeable` looks: `layer2` and `layer2.1` (not `layer2.1.conv1`)
MAX_DEPTH = 2


@dataclass(frozen=True)
class Probe:
    """What a module's output was on one forward: its shape (without the batch) and how many
    times the module ran."""

    shape: tuple[int, ...]
    calls: int

    @property
    def feature_map(self) -> bool:
        return len(self.shape) == 3 and self.calls == 1


def _probe(
    backbone: nn.Module, image: tuple[int, int, int], names: Iterable[str]
) -> dict[str, Probe]:
    modules = dict(backbone.named_modules())
    seen: dict[str, list[tuple[int, ...]]] = {n: [] for n in names if n in modules}

    def recorder(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else ()
            seen[name].append(shape)

        return hook

    handles = [modules[n].register_forward_hook(recorder(n)) for n in seen]
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, *image))  # cpu-ok: build-time probe, fresh CPU module
    finally:
        backbone.train(was_training)
        for h in handles:
            h.remove()
    return {n: Probe(s[0] if s else (), len(s)) for n, s in seen.items()}


def feature_shapes(
    backbone: nn.Module, image: tuple[int, int, int], sites: Iterable[str]
) -> dict[str, Probe]:
    """The output of each named module (only names the backbone has) on a C×H×W image."""
    return _probe(backbone, image, sites)


def placeable(backbone: nn.Module, image: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """Module name -> its output shape (C, H, W), for every module at most MAX_DEPTH levels
    deep whose output is one feature map, in the order the forward runs them."""
    names = [n for n, _ in backbone.named_modules() if n and n.count(".") < MAX_DEPTH]
    probes = _probe(backbone, image, names)
    return {n: p.shape for n, p in probes.items() if p.feature_map}


def why_not(probe: Probe | None, site: str) -> str | None:
    """Why a transformer cannot sit on `site` (None: it can)."""
    if probe is None:
        return f"the backbone has no module named '{site}'"
    if probe.calls == 0:
        return f"'{site}' does not run in the backbone's forward"
    if probe.calls > 1:
        return f"'{site}' runs {probe.calls} times per forward: its output is not one feature map"
    if len(probe.shape) != 3:
        shown = "×".join(str(d) for d in probe.shape) or "not a tensor"
        return (
            f"'{site}' outputs {shown} per image, not a C×H×W feature map (a spatial"
            " transformer resamples a feature map)"
        )
    return None
