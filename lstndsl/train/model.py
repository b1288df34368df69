"""What the trainer trains: the model object from `compiler.build` and its optimizer's groups.

What it is: `build_model` (spec texts + config -> `compiler.stn.STNModel`; with `no_stn` the bare
backbone as an STNModel of no transformers, so the trainer has one kind of model), the model's
forward returns (logits, {name: θ}) with `return_theta=True` (θ loss and statistics; DDP
passes the keyword through), `param_groups` (every transformer's parameters in their own group,
lr × `stn_lr_mult`), and `count_parameters`. Everything is asked of the model's API
(compiler/stn.py): nothing here looks inside it.
What it is not: the loop; it knows nothing about data or devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from compiler.stn import STNModel
from lstndsl.train.config import TrainConfig


def load_spec(text: str, path: str) -> Any:
    """Parse spec text (as read from the run directory or a checkpoint)."""
    from lstndsl import parser

    return parser.parse(text, path)


def build_model(
    config: TrainConfig,
    spec_text: str | None,
    num_classes: int,
    image_size: int,
    more_texts: Sequence[str] = (),
) -> STNModel:
    """The model the config asks for, freshly initialized from the current torch RNG.

    With spatial transformers, `compiler.build` creates the backbone before the localization
    nets, so under the same seed a backbone starts from the same weights with or without them.
    """
    # `compiler.build` via its module: the editable install may see `compiler` as a namespace
    # package (without running compiler/__init__.py) when the working directory is elsewhere
    from compiler.build import build

    if config.no_stn:
        from compiler import backbones

        return STNModel([], backbones.create(config.backbone, num_classes=num_classes))
    if spec_text is None or config.spec is None:
        raise ValueError("a spatial-transformer run needs its spec text")
    texts = [spec_text, *more_texts]
    specs = [load_spec(t, p) for t, p in zip(texts, config.spec_paths, strict=True)]
    model = build(specs, backbone=config.backbone, num_classes=num_classes, input_size=image_size)
    assert isinstance(model, STNModel)
    return model


def param_groups(model: STNModel, lr: float, stn_lr_mult: float) -> list[dict[str, Any]]:
    """Backbone at lr; the transformers (localization nets and heads) at lr × stn_lr_mult."""
    mine = [p for p in model.stn_parameters() if p.requires_grad]
    if not mine:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    stn_ids = {id(p) for p in mine}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in stn_ids]
    return [
        {"params": rest, "lr": lr, "name": "backbone"},
        {"params": mine, "lr": lr * stn_lr_mult, "name": "stn"},
    ]


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters: total, spatial transformers, backbone (the paper's count)."""
    counted: dict[str, int] = model.num_params()  # type: ignore[operator]
    return counted
