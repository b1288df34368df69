"""The header's `activation:` goes where people put it in PyTorch: right after the row's
weighted layer and its batch norm, before pooling and dropout (conv -> BN -> act -> pool).

Checked against hand-written torch modules for GELU and SiLU (non-monotone) and ELU, under
average and max pooling, where the two orders give different numbers (for ReLU under max
pooling they agree, which hid the old order).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lstndsl
from compiler.build import build

ROWS = """\
| Type                 | Filter Shape |
|----------------------|--------------|
| Conv + BN, avg pool 2 | 3x3x3x4     |
| Conv, max pool 2      | 3x3x4x4     |
"""


def _reference(act: nn.Module, stn: nn.Module) -> nn.Sequential:
    """What people write: conv -> BN -> act -> avg pool, then conv -> act -> max pool, with
    the compiled module's weights."""
    ref = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        act,
        nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3),
        act,
        nn.MaxPool2d(2),
    )
    row1, row2 = stn.localization.children()
    ref[0].load_state_dict(row1.conv.state_dict())
    ref[1].load_state_dict(row1.batchnorm.state_dict())
    ref[4].load_state_dict(row2.conv.state_dict())
    return ref


@pytest.mark.parametrize(
    ("header", "act"),
    [("gelu", nn.GELU()), ("elu 1.5", nn.ELU(1.5)), ("silu", nn.SiLU())],
    ids=["gelu", "elu", "silu"],
)
def test_header_activation_goes_before_pooling_as_in_torch_code(
    header: str, act: nn.Module
) -> None:
    torch.manual_seed(0)
    spec = lstndsl.parse(
        f"input: 16x16x3\nactivation: {header}\nhead: flatten -> fc 6\n" + ROWS, "t.spec"
    )
    stn = build(spec)
    ref = _reference(act, stn)
    stn.eval()
    ref.eval()
    with torch.no_grad():
        bn = stn.localization[0].batchnorm
        bn.running_mean.uniform_(-1, 1)  # a batch norm that does something in eval mode
        bn.running_var.uniform_(0.5, 2)
        ref[1].load_state_dict(bn.state_dict())
        x = torch.randn(2, 3, 16, 16) * 3
        got = stn.localization(x)
        assert torch.equal(got, ref(x))
        # and the old order (activation after the pooling) gives other numbers
        old = nn.Sequential(ref[0], ref[1], ref[3], act, ref[4], ref[6], act)
        assert not torch.allclose(got, old(x))
    names = [[type(m).__name__ for m in row.children()] for row in stn.localization.children()]
    act_name = type(act).__name__
    assert names == [
        ["Conv2d", "BatchNorm2d", act_name, "AvgPool2d"],
        ["Conv2d", act_name, "MaxPool2d"],
    ]
