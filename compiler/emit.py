"""Emit a spec's spatial transformer as a standalone, readable PyTorch file.

`emit_python(spec, input_size=None) -> str` writes one Python module (it imports only torch)
that defines `SpatialTransformer`: the localization net, the regression head, the θ
parameterization of the spec's transform kind (only that kind's code) and the sampler, with
`align_corners`, the padding mode and every layer hyperparameter as literals. A header names
the spec, the input size and the parameter counts.

The submodule names are the compiled model's (`localization.row01_conv_batchnorm_relu.conv`,
`head.linear2`, ...; they are read from the module `compiler.build` makes), so
`emitted.load_state_dict(compiled.state_dict())` works with strict=True, and the emitted
forward runs the same torch ops in the same order: outputs are identical (tests/test_emit.py).

Lines are kept within 88 characters and laid out as `ruff format` would, so the file is
lint- and format-clean without a formatter. This module does not emit backbones, training
code or fused layers (compiler/fuse.py works on the emitted module as on any other).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from typing import Any

from compiler import transforms
from compiler.build import InputSize, analyze_for_build, build_stn
from compiler.stn import SpatialTransformer
from lstndsl import catalog, check, ir
from lstndsl.check import LayerResult
from lstndsl.errors import visible
from lstndsl.ir import format_shape

#: the line length the emitted code keeps to (ruff's and black's default)
WIDTH = 88

Emitter = Callable[[Any, LayerResult], tuple[str, list[str]]]
"""(resolved layer, its result) -> (torch.nn class name, constructor arguments)."""


def literal(value: Any) -> str:
    """A Python literal for a torch argument, as ruff format would write it: a pair of equal
    sizes as one number (torch accepts 3 for (3, 3)), strings in double quotes."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return literal(value[0])
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def emit_op(op: catalog.TorchOp) -> tuple[str, list[str]]:
    """(torch.nn class name, constructor arguments as source text) of an op: the same op
    compiler/layers.py builds, leaving out keyword arguments at torch's defaults."""
    args = [literal(a) for a in op.args]
    return op.cls, args + [f"{k}={literal(v)}" for k, v in op.shown_kwargs()]


def _from_catalog(layer: Any, r: LayerResult) -> tuple[str, list[str]]:
    return emit_op(catalog.torch_op(layer, r.input))


#: one emitter per layer kind; its keys are the catalog's kinds and compiler.layers.BUILDERS'
EMITTERS: dict[str, Emitter] = dict.fromkeys(catalog.CATALOG, _from_catalog)


# --- layout --------------------------------------------------------------------------------


def _call(indent: int, prefix: str, func: str, args: list[str], suffix: str = ",") -> list[str]:
    """`prefix func(args)suffix` laid out as ruff format does: one line if it fits, else the
    arguments on one indented line, else one argument per line with a trailing comma."""
    pad = " " * indent
    one = f"{pad}{prefix}{func}({', '.join(args)}){suffix}"
    if len(one) <= WIDTH:
        return [one]
    inner = " " * (indent + 4)
    hugged = f"{inner}{', '.join(args)}"
    if len(hugged) <= WIDTH:
        return [f"{pad}{prefix}{func}(", hugged, f"{pad}){suffix}"]
    return [f"{pad}{prefix}{func}(", *(f"{inner}{a}," for a in args), f"{pad}){suffix}"]


def _comment(indent: int, text: str) -> list[str]:
    pad = " " * indent
    return [f"{pad}# {line}" for line in textwrap.wrap(visible(text), WIDTH - indent - 2)]


def _docstring_text(text: str) -> str:
    """Spec text (a name, a path) made safe inside a triple-quoted docstring: backslashes and
    quotes escaped, invisible characters written as escapes. Nothing from a spec reaches
    generated code any other way."""
    return visible(text.replace("\\", "\\\\").replace('"', '\\"'))


def _layers(indent: int, names: list[str], results: list[LayerResult]) -> list[str]:
    """`name=nn.Cls(...),` for each layer of a chain, in order."""
    lines = []
    for name, r in zip(names, results, strict=True):
        cls, args = EMITTERS[r.layer.kind](r.layer, r)
        lines += _call(indent, f"{name}=", f"nn.{cls}", args)
    return lines


def _rows(indent: int, stn: SpatialTransformer, analysis: check.Analysis) -> list[str]:
    """`self.localization = _chain(rowNN_...=_chain(...), ...)`, one child per spec row,
    each under a comment with its spec line, Type cell, output shape and parameters."""
    pad = " " * indent
    lines = [f"{pad}self.localization = _chain("]
    for (row_name, row_module), rr in zip(
        stn.localization.named_children(), analysis.rows, strict=True
    ):
        terms = "+".join(map(str, rr.param_terms)) or "0"
        cells = [rr.row.type.text, format_shape(rr.output or ()), terms]
        lines += _comment(indent + 4, f"line {rr.row.pos.line} | " + " | ".join(cells))
        lines.append(f"{pad}    {row_name}=_chain(")
        names = [name for name, _ in row_module.named_children()]
        lines += _layers(indent + 8, names, list(rr.layers))
        lines.append(f"{pad}    ),")
    lines.append(f"{pad})")
    return lines


# --- θ and the sampler --------------------------------------------------------------------


def _bounded_translation(expr: str, bound: float | None) -> str:
    return expr if bound is None else f"{bound!r} * torch.tanh({expr} / {bound!r})"


def _bound_linear(var: str, scale: tuple[float, float] | None) -> list[str]:
    if scale is None:
        return []
    lo, hi = scale
    return [
        f"# scale bound: sqrt|det| of the linear part is clamped to {lo!r}..{hi!r}",
        f"s = torch.linalg.det({var}).abs().clamp_min(1e-12).sqrt()",
        f"{var} = {var} * (s.clamp({lo!r}, {hi!r}) / s)[:, None, None]",
    ]


def _theta_body(t: ir.Transform) -> tuple[str, list[str]]:
    """(docstring, body lines) of `theta` for the spec's transform kind: the same torch ops, in
    the same order, as compiler/transforms.py `to_matrix`."""
    head = ["raw = self.raw(x).float()", "b = raw.shape[0]"]
    if t.kind == "affine":
        doc = "θ: B×2×3 in float32; the head's 6 outputs are the matrix, row by row."
        if t.scale is None and t.translation is None:
            return doc, [*head, "return raw.view(b, 2, 3)"]
        body = [*head, "theta = raw.view(b, 2, 3)", "lin = theta[:, :, :2]"]
        body += _bound_linear("lin", t.scale)
        body.append(f"trans = {_bounded_translation('theta[:, :, 2:]', t.translation)}")
        return doc, [*body, "return torch.cat([lin, trans], dim=2)"]
    if t.kind == "translation":
        doc = "θ: B×2×3 in float32, [[1, 0, tx], [0, 1, ty]] from the head's 2 outputs."
        return doc, [
            *head,
            "eye = torch.eye(2, dtype=raw.dtype, device=raw.device).expand(b, 2, 2)",
            f"trans = {_bounded_translation('raw.view(b, 2, 1)', t.translation)}",
            "return torch.cat([eye, trans], dim=2)",
        ]
    if t.kind == "similarity":
        doc = "θ: B×2×3 in float32, s·R(α) | t from the 4 outputs (scale, α, tx, ty)."
        if t.scale is None:
            scale = "s = raw[:, 0].exp()"
        else:
            lo, hi = t.scale
            scale = f"s = {lo!r} + ({hi!r} - {lo!r}) * torch.sigmoid(raw[:, 0])"
        return doc, [
            head[0],
            scale,
            "cos, sin = torch.cos(raw[:, 1]) * s, torch.sin(raw[:, 1]) * s",
            f"trans = {_bounded_translation('raw[:, 2:4]', t.translation)}",
            "row0 = torch.stack([cos, -sin, trans[:, 0]], dim=1)",
            "row1 = torch.stack([sin, cos, trans[:, 1]], dim=1)",
            "return torch.stack([row0, row1], dim=1)",
        ]
    doc = "θ: B×3×3 in float32, a homography with h33 = 1 from the head's 8 outputs."
    body = [
        *head,
        "ones = torch.ones(b, 1, dtype=raw.dtype, device=raw.device)",
        "h = torch.cat([raw, ones], dim=1).view(b, 3, 3)",
    ]
    if t.scale is None and t.translation is None:
        return doc, [*body, "return h"]
    body.append("lin = h[:, :2, :2]")
    body += _bound_linear("lin", t.scale)
    body.append(f"trans = {_bounded_translation('h[:, :2, 2:]', t.translation)}")
    body.append("top = torch.cat([lin, trans], dim=2)")
    return doc, [*body, "return torch.cat([top, h[:, 2:, :]], dim=1)"]


_PROJECTIVE_GRID = '''

def projective_grid(h: torch.Tensor, size: list[int]) -> torch.Tensor:
    """Like affine_grid, for B×3×3 homographies: sampling coordinates B×H×W×2."""
    b, _, height, width = size
    eye = torch.eye(2, 3, dtype=h.dtype, device=h.device).expand(b, 2, 3)
    base = F.affine_grid(eye, [b, 1, height, width], align_corners=ALIGN_CORNERS)
    ones = torch.ones(b, height, width, 1, dtype=h.dtype, device=h.device)
    homog = torch.cat([base, ones], dim=3).view(b, -1, 3) @ h.transpose(1, 2)
    z = homog[..., 2:]
    z = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
    return (homog[..., :2] / z).view(b, height, width, 2)
'''

_CHAIN = '''

def _chain(**layers: nn.Module) -> nn.Sequential:
    """A Sequential whose children keep the given names, in the given order."""
    seq = nn.Sequential()
    for name, layer in layers.items():
        seq.add_module(name, layer)
    return seq
'''


def _grid_sampler(t: ir.Transform) -> list[str]:
    """The `GridSampler` class: the compiled model's `resample` leaf (no parameters)."""
    grid_args = ["theta.float()", "list(x.shape)"]
    if t.kind == "projective":
        grid = _call(12, "grid = ", "projective_grid", grid_args, "")
    else:
        grid_args.append("align_corners=ALIGN_CORNERS")
        grid = _call(12, "grid = ", "F.affine_grid", grid_args, "")
    return [
        "",
        "",
        "class GridSampler(nn.Module):",
        '    """(x, θ) -> x resampled on the grid of θ, in float32 whatever autocast says;',
        '    returns x\'s dtype. No parameters."""',
        "",
        "    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:",
        "        with torch.autocast(device_type=x.device.type, enabled=False):",
        *grid,
        "            out = F.grid_sample(",
        "                x.float(),",
        "                grid,",
        "                mode=MODE,",
        "                padding_mode=PADDING_MODE,",
        "                align_corners=ALIGN_CORNERS,",
        "            )",
        "        return out.to(x.dtype)",
    ]


def _transform_words(t: ir.Transform) -> str:
    bounds = []
    if t.scale is not None:
        bounds.append(f"scale {t.scale[0]!r}..{t.scale[1]!r}")
    if t.translation is not None:
        bounds.append(f"translation {t.translation!r}")
    return t.kind + (", " + ", ".join(bounds) if bounds else ", unbounded")


def emit_python(spec: ir.Spec, input_size: InputSize = None) -> str:
    """The spec's spatial transformer as the text of a standalone Python module."""
    analysis = analyze_for_build(spec, input_size)
    stn = build_stn(spec, analysis)  # the names come from the module the compiler builds
    c, h, w = analysis.input
    t, s = spec.transform, spec.sampler
    loc_out = format_shape(analysis.localization_output)
    paragraphs = [
        f"{_docstring_text(spec.name)} spatial transformer, generated by lstndsl from"
        f" {_docstring_text(spec.path)}.",
        f"Input {h}×{w}×{c} -> localization net {loc_out} -> head -> {t.kind} θ -> resampled"
        f" {h}×{w}×{c}. Parameters: localization {analysis.params_localization:,} + head"
        f" {analysis.params_head:,} = {analysis.params_total:,}. Transform:"
        f" {_transform_words(t)}. Sampler: {s.mode}, padding {s.padding_mode},"
        f" align_corners={s.align_corners}.",
        "Standalone: imports only torch. The submodule names are those of lstndsl's compiled"
        " model, so its state_dict loads here with strict=True and the outputs are identical.",
    ]
    out = []
    for i, paragraph in enumerate(paragraphs):  # broken at spaces only: never in an escape
        first = '"""' if i == 0 else ""
        wrapped = textwrap.wrap(
            first + paragraph, WIDTH, break_long_words=False, break_on_hyphens=False
        )
        out += [*wrapped, ""]
    out += [
        "    model = SpatialTransformer()",
        "    model.load_state_dict(state_dict)",
        "    out = model(images)  # B×C×H×W in, resampled B×C×H×W out",
        '"""',
    ]
    out += [
        "",
        "from __future__ import annotations",
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
        "",
        "#: (channels, height, width) the localization net and the head are built for",
        f"INPUT_SHAPE = ({c}, {h}, {w})",
        "#: grid generator and sampler",
        f'MODE = "{s.mode}"',
        f'PADDING_MODE = "{s.padding_mode}"',
        f"ALIGN_CORNERS = {s.align_corners!r}",
    ]
    text = "\n".join(out) + "\n" + _CHAIN
    if t.kind == "projective":
        text += _PROJECTIVE_GRID
    text += "\n".join(_grid_sampler(t)) + "\n"
    body: list[str] = ["", "", "class SpatialTransformer(nn.Module):"]
    body.append(f'    """Image in (B×{c}×{h}×{w}), resampled image out (same size)."""')
    body += ["", "    def __init__(self) -> None:", "        super().__init__()"]
    body += _rows(8, stn, analysis)
    head_children = list(stn.head.named_children())
    body += _comment(8, f"head: {spec.head_text}" if spec.head_text else "head")
    body.append("        self.head = _chain(")
    body += _layers(12, [name for name, _ in head_children], analysis.head)
    body.append("        )")
    body.append("        self.grid_sampler = GridSampler()")
    last = head_children[-1][0]
    identity = ", ".join(repr(v) for v in transforms.identity_raw(t))
    body += [
        "        # θ starts at the identity transform: zero weights, identity bias",
        "        with torch.no_grad():",
        f"            self.head.{last}.weight.zero_()",
        *_call(12, "", f"self.head.{last}.bias.copy_", [f"torch.tensor([{identity}])"], ""),
    ]
    theta_doc, theta_body = _theta_body(t)
    body += [
        "",
        "    def raw(self, x: torch.Tensor) -> torch.Tensor:",
        f'        """The head\'s {t.dof} outputs, before the parameterization."""',
        "        return self.head(self.localization(x))",
        "",
        "    def theta(self, x: torch.Tensor) -> torch.Tensor:",
        f'        """{theta_doc}"""',
        *(f"        {line}" for line in theta_body),
        "",
        "    def sample(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:",
        '        """Resample x with θ."""',
        "        out: torch.Tensor = self.grid_sampler(x, theta)",
        "        return out",
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        "        return self.sample(x, self.theta(x))",
    ]
    return text + "\n".join(body) + "\n"
