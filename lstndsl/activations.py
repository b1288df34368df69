"""The activation list: the one table of the parameter-free elementwise activations.

Each entry is kind -> (torch.nn class, spec words): the kind is the IR tag (ir.Activation),
the class is what the compiler builds and emits (`nn.GELU()`), the words are what a spec may
write (the first is the canonical word that fmt and messages print). Adding such an
activation is one line here. Activations with a setting or parameters of their own (leaky
ReLU, ELU, PReLU) are ordinary layer kinds (ir.py, kinds.py).

This module is not: costs (each activation is 1 per element under `full`; ptflops' and thop's
rules are in kinds.py) or anything torch (pure data).
"""

from __future__ import annotations

ACTIVATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "relu": ("ReLU", ("ReLU",)),
    "relu6": ("ReLU6", ("ReLU6",)),
    "selu": ("SELU", ("SELU",)),
    "gelu": ("GELU", ("GELU",)),
    "silu": ("SiLU", ("SiLU", "swish")),
    "mish": ("Mish", ("Mish",)),
    "sigmoid": ("Sigmoid", ("Sigmoid",)),
    "tanh": ("Tanh", ("Tanh",)),
    "hardswish": ("Hardswish", ("Hardswish", "hard swish")),
    "hardsigmoid": ("Hardsigmoid", ("Hardsigmoid", "hard sigmoid")),
    "softplus": ("Softplus", ("Softplus",)),
    "identity": ("Identity", ("Identity", "no activation", "no act", "none")),
}

#: activations ptflops 0.7.5 prices at 1 per element (the rest it counts as 0)
PTFLOPS_PRICED = frozenset({"relu", "relu6", "gelu"})
