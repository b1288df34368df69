"""The back end: lstndsl IR -> torch modules, with checks against real torch.

`compiler.build(spec, backbone=None, num_classes=None, input_size=None)` is the entry point.
This package imports torch; it never imports the CLI or the trainer.
"""

from compiler.build import build, verify
from compiler.stn import SpatialTransformer, STNModel

__all__ = ["STNModel", "SpatialTransformer", "build", "verify"]
