"""What the trainer trains: the model from `compiler.build` (or a backbone alone), its θ, and its
optimizer's parameter groups.

What it is: `build_model` (spec text + config -> `compiler.stn.STNModel`, or with `no_stn` the
bare backbone from `compiler.backbones.create`), `ThetaNet` (a thin wrapper whose forward returns
(logits, θ), so the loss can supervise θ and DDP still sees one module), `param_groups`
(localization net and head in their own group, lr × `stn_lr_mult`), and `count_parameters`.
What it is not: the loop; it knows nothing about data or devices.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compiler.stn import SpatialTransformer, STNModel
from lstndsl.train.config import TrainConfig


def load_spec(text: str, path: str) -> Any:
    """Parse spec text (as read from the run directory or a checkpoint)."""
    from lstndsl import parser

    return parser.parse(text, path)


def build_model(
    config: TrainConfig, spec_text: str | None, num_classes: int, image_size: int
) -> nn.Module:
    """The model the config asks for, freshly initialized from the current torch RNG.

    With a spatial transformer, `compiler.build` creates the backbone before the localization
    net, so under the same seed a backbone starts from the same weights with or without one.
    """
    # `compiler.build` via its module: the editable install may see `compiler` as a namespace
    # package (without running compiler/__init__.py) when the working directory is elsewhere
    from compiler.build import build

    if config.no_stn:
        from compiler import backbones

        model: nn.Module = backbones.create(config.backbone, num_classes=num_classes)
        return model
    if spec_text is None or config.spec is None:
        raise ValueError("a spatial-transformer run needs its spec text")
    spec = load_spec(spec_text, config.spec)
    return build(spec, backbone=config.backbone, num_classes=num_classes, input_size=image_size)


def transformer(model: nn.Module) -> SpatialTransformer | None:
    """The spatial transformer inside a model from `build_model` (None for a bare backbone)."""
    return model.stn if isinstance(model, STNModel) else None


class ThetaNet(nn.Module):
    """`forward(x) -> (logits, θ or None)`: the same computation as the wrapped model's forward,
    with θ kept for the θ loss and statistics. The wrapped model is `self.model`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        stn = transformer(self.model)
        if stn is None:
            return self.model(x), None
        assert isinstance(self.model, STNModel)
        theta = stn.theta(x)
        return self.model.backbone(stn.sample(x, theta)), theta


def param_groups(model: nn.Module, lr: float, stn_lr_mult: float) -> list[dict[str, Any]]:
    """Backbone at lr; localization net and head at lr × stn_lr_mult (when there is an STN)."""
    stn = transformer(model)
    if stn is None:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    stn_ids = {id(p) for p in stn.parameters()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in stn_ids]
    mine = [p for p in stn.parameters() if p.requires_grad]
    return [
        {"params": rest, "lr": lr, "name": "backbone"},
        {"params": mine, "lr": lr * stn_lr_mult, "name": "stn"},
    ]


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters: total, spatial transformer, backbone (the paper's count)."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stn = transformer(model)
    in_stn = 0 if stn is None else sum(p.numel() for p in stn.parameters() if p.requires_grad)
    return {"total": total, "stn": in_stn, "backbone": total - in_stn}
