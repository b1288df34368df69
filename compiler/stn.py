"""The spatial transformer and the model object, as torch modules.

`SpatialTransformer`: localization net -> regression head -> θ -> grid -> sampler. Its
`forward(x)` returns the resampled input (same size as x); `theta(x)` returns the transform.
The grid and the sampler share one `align_corners` and run in float32 even under autocast
(half-precision sampling coordinates are visibly wrong at 224 px and above). They live in one
leaf module, `GridSampler` (`stn.grid_sampler`), so that cost counters that work by module hooks
(ours in compiler/cost.py, ptflops) can price the grid and `grid_sample`.

`STNModel`: the model object, several transformers and an optional backbone. Each transformer
sits at a *site*: `input` (it resamples the image, in the order given) or the name of a backbone
module as `named_modules()` spells it (`layer2`): a forward hook replaces that module's output
by its resampled copy, so the backbone continues from the resampled map, its module tree and
state_dict are untouched, and no architecture needs code of its own. Several transformers on
one module apply in the order given (hooks chain).

The model API (what the trainer, export, liveness, cost, fuse and pictures call, and nothing
else; `SpatialTransformer` offers the same, as a model of one transformer at the input):
`forward(x, return_theta=False)` (with True: `(output, {name: θ})` in application order),
`transformers` (name -> SpatialTransformer), `sites` (name -> site), `input_transformer`
(the first at the input, or None: θ supervision applies to it), `stn_parameters()`,
`num_params()`, and `resample(x, theta, name)` (pictures).

This module is not: θ geometry (geometry.py), the parameterizations (transforms.py), building
from specs or finding sites (build.py, placement.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compiler import geometry, transforms
from lstndsl.ir import Sampler, Transform

INPUT = "input"


class GridSampler(nn.Module):
    """(x, θ) -> x resampled on θ's grid, in float32 whatever autocast says; returns x's dtype.
    No parameters; a tps transformer keeps its spline (`geometry.tps_kernel` at the size it was
    built for) as a non-persistent buffer, and solves it again for other sizes."""

    kernel: torch.Tensor | None

    def __init__(
        self, sampler: Sampler, transform: Transform, size: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.sampler = sampler
        self.transform = transform
        kernel = None
        if transform.kind == "tps" and size is not None:
            assert transform.points is not None
            kernel = geometry.tps_kernel(transform.points, size, sampler.align_corners)
        self.register_buffer("kernel", kernel, persistent=False)
        self.size = size

    def grid(
        self, theta: torch.Tensor, size: torch.Size | list[int], transform: Transform | None = None
    ) -> torch.Tensor:
        """The sampling grid of θ, a θ of this sampler's transform kind unless `transform`
        says otherwise (pictures draw the data's affine ideal θ through a tps sampler)."""
        hw = (int(size[2]), int(size[3]))
        if transform is not None and transform != self.transform:
            return geometry.grid(theta, transform, hw, self.sampler.align_corners)
        kernel = self.kernel if hw == self.size else None
        return geometry.grid(theta, self.transform, hw, self.sampler.align_corners, kernel)

    def forward(
        self, x: torch.Tensor, theta: torch.Tensor, transform: Transform | None = None
    ) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            grid = self.grid(theta.float(), x.shape, transform)
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


class CompiledModel(nn.Module):
    """What every compiled model offers beyond `forward`; subclasses define `transformers`
    and `sites`."""

    transformers: Mapping[str, SpatialTransformer]
    sites: dict[str, str]

    @property
    def input_transformer(self) -> str | None:
        """The first transformer at the input (θ supervision and θ recovery apply to it)."""
        return next((n for n, site in self.sites.items() if site == INPUT), None)

    def stn_parameters(self) -> Iterator[nn.Parameter]:
        """Every transformer's parameters (the STN learning-rate group), each once."""
        seen: set[int] = set()
        for stn in self.transformers.values():
            for p in stn.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p

    def num_params(self) -> dict[str, int]:
        """Trainable parameters: total, in the transformers (`stn`), the rest (`backbone`)."""
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        stn = sum(p.numel() for p in self.stn_parameters() if p.requires_grad)
        return {"total": total, "stn": stn, "backbone": total - stn}

    def resample(
        self,
        x: torch.Tensor,
        theta: torch.Tensor,
        name: str | None = None,
        transform: Transform | None = None,
    ) -> torch.Tensor:
        """x resampled with θ by transformer `name`'s grid and sampler (default: the input
        transformer): what the pictures draw. θ is of that transformer's kind unless
        `transform` names another (the data's ideal θ is affine whatever the transformer)."""
        key = name or self.input_transformer or next(iter(self.transformers))
        out: torch.Tensor = self.transformers[key].grid_sampler(x, theta, transform)
        return out


class SpatialTransformer(CompiledModel):
    """Input in, resampled input out. Submodules: `localization` (one child per spec row),
    `head` (flatten → … → the raw transform parameters) and `grid_sampler` (grid and sampler)."""

    def __init__(
        self,
        localization: nn.Sequential,
        head: nn.Sequential,
        transform: Transform,
        sampler: Sampler,
        size: tuple[int, int] | None = None,
        site: str = INPUT,
    ) -> None:
        super().__init__()
        self.localization = localization
        self.head = head
        self.grid_sampler = GridSampler(sampler, transform, size)
        self.transform = transform
        self.sampler = sampler
        self.site = site
        #: the `lstndsl.check.Analysis` it was built from (set by compiler.build): the shapes,
        #: parameters and rows that liveness, cost and emit report against
        self.analysis: Any = None

    # the model API of a model of one transformer (not registered as submodules: no cycle)
    @property
    def transformers(self) -> Mapping[str, SpatialTransformer]:  # type: ignore[override]
        return {site_name(self.site): self}

    @property
    def sites(self) -> dict[str, str]:  # type: ignore[override]
        return {site_name(self.site): self.site}

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The head's outputs (B×dof), before the parameterization."""
        return self.head(self.localization(x))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """θ for each input, in float32: B×2×3 (B×3×3 projective, B×N×2 tps control points)."""
        return transforms.to_matrix(self.raw(x).float(), self.transform)

    def grid(self, theta: torch.Tensor, size: torch.Size | list[int]) -> torch.Tensor:
        """Sampling coordinates B×H×W×2 for θ and an output of `size` (B, C, H, W)."""
        return self.grid_sampler.grid(theta, size)

    def sample(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Resample x with θ, in float32 whatever autocast says; returns x's dtype."""
        out: torch.Tensor = self.grid_sampler(x, theta)
        return out

    def forward(
        self,
        x: torch.Tensor,
        *,
        return_theta: bool = False,
        thetas: Mapping[str, torch.Tensor] | None = None,
    ) -> Any:
        name = site_name(self.site)
        theta = thetas[name] if thetas is not None else self.theta(x)
        out = self.sample(x, theta)
        return (out, {name: theta}) if return_theta else out

    def extra_repr(self) -> str:
        s = self.sampler
        return (
            f"transform={self.transform.kind}, mode={s.mode}, padding_mode={s.padding_mode},"
            f" align_corners={s.align_corners}, site={self.site}"
        )


def site_name(site: str) -> str:
    """A transformer's name from its site: `input`, `layer2`, `features_3` (dots are not
    allowed in module names)."""
    return site.replace(".", "_")


def unique_names(sites: list[str]) -> list[str]:
    """One name per transformer, in order: the site's name, `_2`, `_3`, … for repeats."""
    names: list[str] = []
    for site in sites:
        base = site_name(site)
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


class STNModel(CompiledModel):
    """Transformers at their sites, then the backbone (or, without one, the transformers'
    output). `forward(x, return_theta=False)`; see the module docstring for the API."""

    def __init__(
        self, transformers: list[SpatialTransformer], backbone: nn.Module | None = None
    ) -> None:
        super().__init__()
        names = unique_names([t.site for t in transformers])
        modules = nn.ModuleDict(dict(zip(names, transformers, strict=True)))
        self.transformers = modules  # type: ignore[assignment]  # a ModuleDict is that Mapping
        self.sites = {name: t.site for name, t in zip(names, transformers, strict=True)}
        self.backbone = backbone
        #: (C, H, W) of the images the model takes (set by compiler.build: `model_input`)
        self.image: tuple[int, int, int] | None = None
        self._thetas: dict[str, torch.Tensor] | None = None
        self._given: Mapping[str, torch.Tensor] | None = None
        self._bypass = False
        inside = dict(backbone.named_modules()) if backbone is not None else {}
        for name, site in self.sites.items():
            if site == INPUT:
                continue
            if site not in inside:
                raise ValueError(f"the backbone has no module named {site!r}")
            inside[site].register_forward_hook(_Placed(self, name))
        self._register_load_state_dict_pre_hook(_OldKeys())

    def forward(
        self,
        x: torch.Tensor,
        *,
        return_theta: bool = False,
        thetas: Mapping[str, torch.Tensor] | None = None,
    ) -> Any:
        """The model's output (logits, or without a backbone the resampled input); with
        `return_theta`, also {name: θ} of every transformer in application order. `thetas`
        replaces what the transformers would predict (export verification, pictures)."""
        seen: dict[str, torch.Tensor] = {}
        self._given, self._thetas = thetas, seen
        try:
            for name, site in self.sites.items():
                if site == INPUT:
                    x = self.placed(name, x)
            out = self.backbone(x) if self.backbone is not None else x
        finally:
            self._given, self._thetas = None, None
        return (out, seen) if return_theta else out

    @contextlib.contextmanager
    def without_transformers(self) -> Iterator[None]:
        """Within: the backbone runs as if no transformer sat in it (cost counts it alone)."""
        self._bypass = True
        try:
            yield
        finally:
            self._bypass = False

    def placed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Transformer `name` resamples x (the image, or a backbone module's output: the
        hooks call this), recording its θ."""
        stn = self.transformers[name]
        theta = self._given[name] if self._given is not None else stn.theta(x)
        if self._thetas is not None:
            self._thetas[name] = theta
        out: torch.Tensor = stn.sample(x, theta)
        return out


def compiled(module: nn.Module) -> CompiledModel:
    """`module` as a model of compiler.build's (TypeError for any other module)."""
    if not isinstance(module, CompiledModel):
        raise TypeError(f"expected a model from compiler.build, got {type(module).__name__}")
    return module


class _Placed:
    """A forward hook that hands a module's output to `STNModel.placed` (a class, not a
    closure, so that copy.deepcopy rebinds it to the copied model)."""

    def __init__(self, model: STNModel, name: str) -> None:
        self.model = model
        self.name = name

    def __call__(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if self.model._bypass:
            return None
        return self.model.placed(self.name, output)

    def __deepcopy__(self, memo: dict[int, Any]) -> _Placed:
        import copy

        return _Placed(copy.deepcopy(self.model, memo), self.name)


class _OldKeys:
    """Checkpoints written before the model held several transformers name the one at the input
    `stn.…`; load them as `transformers.input.…`."""

    def __call__(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        old = prefix + "stn."
        for key in [k for k in state if k.startswith(old)]:
            state[prefix + "transformers.input." + key[len(old) :]] = state.pop(key)
