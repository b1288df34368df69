"""Cost of real torch modules: our own count (lstndsl/cost.py's rules, applied through forward
hooks), ptflops' count (the outside witness), and the profile of a compiled model.

`count(module, (C, H, W))` runs one 1×C×H×W image through the module in eval mode and turns
every module of a class we price (convolutions, linear layers, norms, activations, poolings, the
spatial transformer's `GridSampler`) into `lstndsl.cost.Op`s; with `tensor_ops`, elementwise
arithmetic between modules (residual additions, squeeze-excitation products, means) becomes
`tensor` ops too. Prices then come from `lstndsl.cost.price`, the same arithmetic the catalog
side uses, so a backbone and a spec are counted by one set of rules. Modules of other classes
become `other` ops: priced 0 and listed in the profile, never silently dropped.

`ptflops_macs` runs ptflops 0.7.5 with a hook for the grid and sampler. `profile` puts it all
together for one spec (+ backbone): parameters by part, MACs under each convention, by part and
by category, ptflops' number next to our model of its rules, and torch's own FlopCounterMode
(compiler/flops.py: forward, and forward + backward) as a further witness.

This module is not: the rules themselves (lstndsl/cost.py) or printing (lstndsl/commands).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from compiler.flops import TorchCount, torch_count
from compiler.stn import GridSampler, SpatialTransformer, STNModel, compiled
from lstndsl import catalog, check
from lstndsl import cost as rules
from lstndsl.cost import Op
from lstndsl.ir import Shape

#: torch classes whose cost the catalog entry reads off the module (activations, the norms
#: other than batch norm, dropout, flatten, identity), from the catalog: class -> kind
_BY_CLASS: dict[type[nn.Module], str] = {
    getattr(nn, name): kind for name, kind in catalog.TORCH_CLASS_KINDS.items()
}
_PRICED: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    GridSampler,
    *_BY_CLASS,
)


def _catalog_kind(module: nn.Module) -> str | None:
    """The catalog kind of a module whose class (or a torch base class of it) the catalog
    prices by reading the module."""
    for cls in type(module).__mro__:
        if cls in _BY_CLASS:
            return _BY_CLASS[cls]
    return None


# tensor arithmetic outside priced modules, by function name
_ELEMENTWISE = frozenset(
    {"add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "true_divide"}
    | {"__add__", "__radd__", "__iadd__", "__sub__", "__rsub__", "__isub__"}
    | {"__mul__", "__rmul__", "__imul__", "__truediv__", "__rtruediv__", "__itruediv__"}
)
_REDUCTIONS = frozenset({"mean", "sum"})
_FUNCTIONAL_ACTS = frozenset(
    {"relu", "relu_", "sigmoid", "sigmoid_", "silu", "gelu", "tanh", "hardswish", "hardsigmoid"}
)
_MATMUL = frozenset({"matmul", "mm", "bmm", "__matmul__"})


def _per_image(t: torch.Tensor) -> Shape:
    return tuple(int(d) for d in t.shape[1:])


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def _ptflops_listed(module: nn.Module) -> bool:
    if isinstance(module, GridSampler):
        return True
    from ptflops.pytorch_ops import MODULES_MAPPING

    return type(module) in MODULES_MAPPING


def module_ops(module: nn.Module, args: tuple[Any, ...], y: Any, name: str = "") -> list[Op]:
    """The ops one call of `module` (positional inputs `args`, output y) performs, with the
    catalog's categories."""
    x = args[0]
    i = _per_image(x)
    listed = _ptflops_listed(module)
    label = f"{name} ({type(module).__name__})" if name else type(module).__name__
    if isinstance(module, GridSampler):
        return rules.sampler_ops(module.transform, module.sampler, _per_image(y))
    o = _per_image(y) if isinstance(y, torch.Tensor) else i

    def op(kind: str, cost: dict[str, int], **kw: Any) -> list[Op]:
        return [Op(kind=kind, input=i, output=o, cost=cost, listed=listed, name=label, **kw)]

    if isinstance(module, nn.modules.conv._ConvNd):
        per_out = module.in_channels // module.groups * math.prod(module.weight.shape[2:])
        out = _numel(o)
        return op("conv", {"mac": out * per_out, "bias": out * (module.bias is not None)})
    if isinstance(module, nn.Linear):
        out = _numel(o)
        rows = out // module.out_features
        return op(
            "linear",
            {
                "mac": rows * module.in_features * module.out_features,
                "bias": out * (module.bias is not None),
            },
        )
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return op("batchnorm", {"norm": _numel(i)}, affine=bool(module.affine))
    if isinstance(module, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd):
        k: Any = module.kernel_size
        window = int(math.prod(k)) if isinstance(k, tuple) else int(k) ** (len(i) - 1)
        pool = "maxpool" if isinstance(module, nn.modules.pooling._MaxPoolNd) else "avgpool"
        return op(pool, {"pool": _numel(o) * window})
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd):
        return op("adaptiveavgpool", {"pool": _numel(i)})
    if isinstance(module, nn.modules.pooling._AdaptiveMaxPoolNd):
        return op("adaptivemaxpool", {"pool": _numel(i)})
    kind = _catalog_kind(module)
    if kind is not None:
        entry = catalog.CATALOG[kind]
        assert entry.torch_cost is not None
        affine = getattr(module, "affine", getattr(module, "elementwise_affine", True))
        return op(kind, entry.torch_cost(module, i, o), affine=bool(affine))
    return op("other", {})


class _TensorOps(TorchFunctionMode):
    """Records elementwise arithmetic, reductions and matmuls done outside priced modules."""

    def __init__(self, counter: _Counter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.counter.depth == 0 and isinstance(out, torch.Tensor) and out.ndim:
            self.counter.tensor_op(getattr(func, "__name__", ""), args, out)
        return out


@dataclass
class _Counter:
    tensor_ops: bool
    ops: list[Op] = field(default_factory=list)
    depth: int = 0

    def tensor_op(self, fname: str, args: tuple[Any, ...], out: torch.Tensor) -> None:
        if not self.tensor_ops:
            return
        o = _per_image(out)
        if fname in _ELEMENTWISE:
            cost = {"tensor": _numel(o)}
        elif fname in _REDUCTIONS and args and isinstance(args[0], torch.Tensor):
            cost = {"tensor": _numel(_per_image(args[0]))}
        elif fname in _FUNCTIONAL_ACTS:
            cost = {"act": _numel(o)}
        elif fname in _MATMUL and len(args) >= 2 and isinstance(args[1], torch.Tensor):
            cost = {"mac": _numel(_per_image(args[0])) * int(args[1].shape[-1])}
        else:
            return
        self.ops.append(Op(kind="tensor", input=o, output=o, cost=cost, listed=False, name=fname))


@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was)


def count(module: nn.Module, input_shape: Shape, tensor_ops: bool = True) -> list[Op]:
    """Every op one image of `input_shape` (C, H, W) costs in `module`, in call order."""
    counter = _Counter(tensor_ops)
    handles = []
    names = {m: n for n, m in module.named_modules()}

    def pre(m: nn.Module, args: Any) -> None:
        counter.depth += 1

    def post(m: nn.Module, args: Any, out: Any) -> None:
        counter.depth -= 1
        counter.ops.extend(module_ops(m, args or (out,), out, names.get(m, "")))

    def other(m: nn.Module, args: Any, out: Any) -> None:
        if args and isinstance(args[0], torch.Tensor):
            counter.ops.extend(module_ops(m, args, out, names.get(m, "")))

    for m in module.modules():
        if isinstance(m, _PRICED):
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
        elif not list(m.children()) or any(True for _ in m.parameters(recurse=False)):
            handles.append(m.register_forward_hook(other))
    try:
        with _evaluating(module), _TensorOps(counter):
            module(torch.zeros(1, *input_shape))  # cpu-ok: counted on the CPU
    finally:
        for h in handles:
            h.remove()
    return counter.ops


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def ptflops_macs(module: nn.Module, input_shape: Shape) -> int:
    """ptflops 0.7.5's count (pytorch backend, module hooks, its functional counting off, our
    hook for the grid and sampler with the `full` rules) for one image."""
    from ptflops import get_model_complexity_info

    def sampler_hook(m: GridSampler, args: Any, out: torch.Tensor) -> None:
        ops = module_ops(m, args, out)
        setattr(m, "__flops__", getattr(m, "__flops__", 0) + rules.macs(ops, "full"))  # noqa: B010

    shape = tuple(input_shape)
    chatter = io.StringIO()  # ptflops prints warnings and errors to stdout
    with _evaluating(module), contextlib.redirect_stdout(chatter):
        got, _ = get_model_complexity_info(
            module,
            shape,
            print_per_layer_stat=False,
            as_strings=False,
            input_constructor=lambda res: torch.zeros(1, *res),  # cpu-ok: counted on the CPU
            ost=chatter,
            custom_modules_hooks={GridSampler: sampler_hook},
            backend="pytorch",
            backend_specific_config={"count_functional": False},
        )
    for attr in ("start_flops_count", "stop_flops_count", "reset_flops_count"):
        module.__dict__.pop(attr, None)
    module.__dict__.pop("compute_average_flops_cost", None)
    if got is None:
        raise RuntimeError(f"ptflops could not count the model: {chatter.getvalue().strip()}")
    return int(got)


# --- the profile of a compiled model ------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Parameters and MACs of one spec's spatial transformer, alone or before a backbone."""

    spec: str
    input: Shape
    backbone: str | None
    num_classes: int | None
    params: dict[str, int | None]
    """localization, head, stn, backbone (None without one), total."""
    parts: dict[str, dict[str, int]]
    """convention -> {localization, head, sampler, backbone, total}: our arithmetic."""
    categories: dict[str, dict[str, int]]
    """convention -> category -> MACs: our arithmetic (ptflops: our model of its rules)."""
    ptflops: int
    """ptflops' own count of the compiled module."""
    unpriced: dict[str, int] = field(default_factory=dict)
    """Module classes no rule prices (counted 0 everywhere), with how many calls."""
    unlisted: dict[str, int] = field(default_factory=dict)
    """Module classes ptflops does not list (it counts them 0), with their `full` MACs."""
    transformers: list[dict[str, Any]] = field(default_factory=list)
    """Each transformer: name, spec, site, input (C, H, W), params, macs[convention][part]."""
    torch: TorchCount | None = None
    """torch's FlopCounterMode (compiler/flops.py), None when not asked for."""

    @property
    def macs(self) -> dict[str, int]:
        """The `profile --json` "macs": thop and full (ours), ptflops (ptflops'), torch
        (FlopCounterMode's forward FLOPs / 2, when counted)."""
        out = {
            "thop": self.parts["thop"]["total"],
            "full": self.parts["full"]["total"],
            "ptflops": self.ptflops,
        }
        if self.torch is not None:
            out["torch"] = self.torch.forward
        return out

    @property
    def train_macs(self) -> dict[str, int]:
        """The `profile --json` "train_macs": forward + backward of one image (torch)."""
        return {} if self.torch is None else {"torch": self.torch.train}


def _transformer_part(name: str, stn: SpatialTransformer) -> dict[str, Any]:
    analysis = stn.analysis
    ops = rules.spec_ops(analysis)
    return {
        "name": name,
        "spec": analysis.spec.name,
        "site": stn.site,
        "input": list(analysis.input),
        "params": {
            "localization": analysis.params_localization,
            "head": analysis.params_head,
            "stn": analysis.params_total,
        },
        "macs": {conv: ops.macs(conv) for conv in rules.CONVENTIONS},
        "ops": ops,
    }


def _backbone_ops(model: nn.Module, image: Shape) -> tuple[nn.Module | None, list[Op]]:
    net = model.backbone if isinstance(model, STNModel) else None
    if net is None:
        return None, []
    assert isinstance(model, STNModel)
    with model.without_transformers():
        return net, count(net, image)


def model_profile(
    model: nn.Module,
    backbone: str | None = None,
    num_classes: int | None = None,
    *,
    witness: bool = True,
) -> Profile:
    """Profile a model `compiler.build` made (a SpatialTransformer or STNModel): each
    transformer priced at its own input (the image, or its feature map), the backbone alone;
    with `witness`, torch's FlopCounterMode counts the whole model too."""
    stns = dict(compiled(model).transformers)
    image = tuple(getattr(model, "image", None) or next(iter(stns.values())).analysis.input)
    parts_of = [_transformer_part(n, s) for n, s in stns.items()]
    net, net_ops = _backbone_ops(model, image)
    stn_params = sum(t["params"]["stn"] for t in parts_of)
    net_params = params(net) if net is not None else None
    all_ops = [op for t in parts_of for op in t["ops"].all()]
    parts: dict[str, dict[str, int]] = {}
    categories: dict[str, dict[str, int]] = {}
    for conv in rules.CONVENTIONS:
        p = {
            k: sum(t["macs"][conv][k] for t in parts_of)
            for k in ("localization", "head", "sampler")
        }
        p["backbone"] = rules.macs(net_ops, conv)
        p["total"] = sum(p.values())
        parts[conv] = p
        categories[conv] = rules.by_category([*all_ops, *net_ops], conv)
    unpriced: Counter[str] = Counter()
    unlisted: Counter[str] = Counter()
    for op in net_ops:
        cls = op.name.rsplit("(", 1)[-1].rstrip(")")
        if op.kind == "other":
            unpriced[cls] += 1
        elif not op.listed and op.kind != "tensor":
            unlisted[cls] += rules.macs([op], "full")
    return Profile(
        spec=" + ".join(t["spec"] for t in parts_of),
        input=image,
        backbone=backbone,
        num_classes=num_classes,
        params={
            "localization": sum(t["params"]["localization"] for t in parts_of),
            "head": sum(t["params"]["head"] for t in parts_of),
            "stn": stn_params,
            "backbone": net_params,
            "total": stn_params + (net_params or 0),
        },
        parts=parts,
        categories=categories,
        ptflops=ptflops_macs(model, image),
        unpriced=dict(unpriced),
        unlisted={k: v for k, v in unlisted.items() if v},
        transformers=[{k: v for k, v in t.items() if k != "ops"} for t in parts_of],
        torch=torch_count(model, image) if witness else None,
    )


def spec_profile(
    analysis: check.Analysis,
    model: nn.Module,
    backbone: str | None = None,
    num_classes: int | None = None,
    *,
    witness: bool = True,
) -> Profile:
    """Profile a model of one spec (`model_profile`; `analysis` stands for its transformer's)."""
    stns = list(compiled(model).transformers.values())
    if len(stns) == 1 and stns[0].analysis is None:
        stns[0].analysis = analysis
    return model_profile(model, backbone, num_classes, witness=witness)
