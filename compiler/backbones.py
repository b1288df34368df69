"""Classifier backbones by name: timm first, torchvision as the fallback, always from scratch.

`create(name, num_classes)` builds any timm model (`timm.list_models()`), or a torchvision
classification model timm does not have (alexnet, googlenet, …), with `pretrained=False` /
`weights=None`: nothing is ever downloaded. `default_resolution(name)` is the input size the
localization net and head are compiled for when no `--input-size` is given. An unknown name is
a `UsageError` with a "did you mean".

Names may carry a source prefix to pick the library: `torchvision/resnet50` is torchvision's
ResNet-50 even though timm has one too; `timm/resnet50` is timm's.

EfficientNet: `efficientnet_b0` … `efficientnet_b7` are timm's real EfficientNets (1×1
expansion convolutions, ~5.3M parameters for b0 with 1000 classes). The L-STN authors' notebooks
used a hand-written port whose expansion convolution is 3×3, about 3× the parameters; we do not
reproduce that defect. Their input resolutions are the original paper's (224, 240, 260, 300,
380, 456, 528, 600), which the L-STN paper uses, not timm's training sizes.

This module is not: the spatial transformer (stn.py) or how the two are joined (build.py).
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

from torch import nn

from lstndsl.errors import UsageError, did_you_mean

#: EfficientNet b0 … b8 input resolutions (Tan & Le, 2019), as the L-STN paper uses them.
EFFICIENTNET_RESOLUTIONS = (224, 240, 260, 300, 380, 456, 528, 600, 672)

#: The backbones the L-STN paper reports, in its order (what `lstndsl report` shows by default).
PAPER_BACKBONES = (
    "resnet18",
    "resnet50",
    "resnet152",
    "densenet121",
    *(f"efficientnet_b{i}" for i in range(6)),
)

_EFFICIENTNET = re.compile(r"(?:tf_)?efficientnet_b(\d)(?:\..*)?")
_PREFIXES = ("timm", "torchvision")


@functools.cache
def _timm_names() -> frozenset[str]:
    import timm

    return frozenset(timm.list_models())


@functools.cache
def _torchvision_names() -> frozenset[str]:
    import torchvision.models as tvm

    return frozenset(tvm.list_models(module=tvm))


def names() -> list[str]:
    """Every backbone name `create` accepts (without source prefixes), sorted."""
    return sorted(_timm_names() | _torchvision_names())


def _candidates(name: str) -> list[str]:
    low = name.strip().lower()
    return list(dict.fromkeys([name.strip(), low, low.replace("-", "_"), low.replace("-", "")]))


def resolve(name: str) -> tuple[str, str]:
    """(library, model name) for a backbone name: ('timm', 'resnet50'), ('torchvision',
    'alexnet'). Accepts `ResNet-50`-style spellings and `timm/` or `torchvision/` prefixes.
    Raises UsageError with a did-you-mean for unknown names."""
    prefix, _, rest = name.partition("/")
    libraries: tuple[str, ...] = _PREFIXES
    if rest and prefix.lower() in _PREFIXES:
        libraries = (prefix.lower(),)
        name = rest
    import timm

    for candidate in _candidates(name):
        if "timm" in libraries and (candidate in _timm_names() or timm.is_model(candidate)):
            return "timm", candidate
        if "torchvision" in libraries and candidate in _torchvision_names():
            return "torchvision", candidate
    pool = _timm_names() if libraries == ("timm",) else _torchvision_names()
    if len(libraries) == 2:
        pool = pool | _timm_names()
    hint = did_you_mean(name.lower(), pool)
    where = " or ".join(libraries)
    raise UsageError(
        f"unknown backbone '{name}' (not a {where} model)" + (f"; {hint}" if hint else "")
    )


def default_resolution(name: str) -> int:
    """The backbone's input resolution: EfficientNet b0–b8 as in their paper (224 … 672);
    otherwise timm's pretrained configuration, else 224 (299 for torchvision's inception_v3)."""
    library, model = resolve(name)
    m = _EFFICIENTNET.fullmatch(model)
    if m:
        return EFFICIENTNET_RESOLUTIONS[int(m.group(1))]
    if library == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(model.split(".")[0])
        if cfg is not None and cfg.input_size:
            return int(cfg.input_size[-1])
        return 224
    return 299 if model == "inception_v3" else 224


def create(
    name: str,
    num_classes: int | None = None,
    in_chans: int = 3,
    input_size: int | None = None,
    **options: Any,
) -> nn.Module:
    """A freshly initialized backbone (never pretrained). `num_classes` sets the classifier
    (None: the library's default, 1000); `in_chans` the input channels (timm models only take
    other than 3); `input_size` the resolution, for timm models built for one fixed size
    (ViT, Swin: their `img_size`; other models take any size and ignore it); `options` go to
    timm.create_model / torchvision.models.get_model."""
    if num_classes is not None and num_classes < 1:
        raise UsageError(f"--num-classes must be at least 1, not {num_classes}")
    library, model = resolve(name)
    if options.get("pretrained") or options.get("weights") is not None:
        raise UsageError("backbones are always built from scratch; pretrained weights are off")
    options.pop("pretrained", None)
    options.pop("weights", None)
    if num_classes is not None:
        options["num_classes"] = num_classes
    if library == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(model.split(".")[0])
        if input_size is not None and cfg is not None and cfg.fixed_input_size:
            options.setdefault("img_size", input_size)
        return timm.create_model(model, pretrained=False, in_chans=in_chans, **options)
    if in_chans != 3:
        raise UsageError(
            f"torchvision's {model} takes 3 input channels, not {in_chans}; use a timm model"
        )
    import torchvision.models as tvm

    if model in ("googlenet", "inception_v3"):
        # without weights torchvision would build the auxiliary classifiers, whose tuple
        # output no loss expects
        options.setdefault("aux_logits", False)
        options.setdefault("init_weights", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        net: nn.Module = tvm.get_model(model, weights=None, **options)
    return net
