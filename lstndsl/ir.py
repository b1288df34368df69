"""The typed IR of a spec: what it means, with the source position of everything in it.

Pure pydantic, frozen, `extra="forbid"`. Layers are a tagged union on `kind`; each tag is the
layer's one name, shared by the spec word, the catalog entry (catalog.py) and the compiler's
builder (compiler/layers.py). The IR holds layers as written and completed by the parser
(Filter Shape folded in, header defaults applied); fields left `None` are filled by inference
from the incoming shape (`catalog.Entry.resolve`).

This module is not: parsing (parser.py), inference or checking (catalog.py, check.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from lstndsl import transforms
from lstndsl.activations import ACTIVATIONS

#: (C, H, W) for a feature map, (N,) for a flat vector. Printed as H×W×C, as the paper does.
Shape = tuple[int, ...]


def _pair(value: Any) -> Any:
    """Accept 3 for (3, 3), as torch does."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (value, value)
    return value


_Positive = Annotated[int, Field(ge=1)]
_NonNegative = Annotated[int, Field(ge=0)]
#: (h, w), each at least 1: kernel, stride, dilation, output size (3 means (3, 3))
Pair = Annotated[tuple[_Positive, _Positive], BeforeValidator(_pair)]
#: (h, w), each at least 0: padding
PadPair = Annotated[tuple[_NonNegative, _NonNegative], BeforeValidator(_pair)]


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Pos(_Node):
    """A 1-based source position and the width of what stands there."""

    line: int
    column: int
    width: int = 1


class _Layer(_Node):
    pos: Pos | None = None
    """Where the layer's word stands in the spec (None for layers a header default added)."""


class Conv(_Layer):
    """2-D convolution. Filter Shape kh×kw×c_in×c_out. `padding same` (odd kernels) resolves
    to the symmetric padding dilation·(k − 1)/2 that keeps H×W at stride 1 (⌈H/stride⌉ at
    larger strides); an even kernel would need uneven padding, which Conv2d does not do, so
    it is an error."""

    kind: Literal["conv"] = "conv"
    out_channels: Annotated[int, Field(ge=1)] | None = None
    in_channels: Annotated[int, Field(ge=1)] | None = None
    """Declared input channels (Filter Shape); None: whatever the previous row gives."""
    kernel: Pair | None = None
    stride: Pair = (1, 1)
    padding: PadPair | Literal["same"] = (0, 0)
    dilation: Pair = (1, 1)
    groups: Annotated[int, Field(ge=1)] = 1
    bias: bool = True


class MaxPool(_Layer):
    """Max pooling. Filter Shape kh×kw×C×C (or kh×kw); stride defaults to the kernel."""

    kind: Literal["maxpool"] = "maxpool"
    kernel: Pair | None = None
    stride: Pair | None = None
    padding: PadPair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False
    channels: int | None = None
    """Declared channels (Filter Shape), checked against the incoming map."""


class AvgPool(_Layer):
    """Average pooling. Filter Shape kh×kw×C×C (or kh×kw); stride defaults to the kernel."""

    kind: Literal["avgpool"] = "avgpool"
    kernel: Pair | None = None
    stride: Pair | None = None
    padding: PadPair = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True
    channels: int | None = None


class AdaptiveAvgPool(_Layer):
    """Adaptive average pooling to a fixed output size (global average pooling by default)."""

    kind: Literal["adaptiveavgpool"] = "adaptiveavgpool"
    output: Pair = (1, 1)


class BatchNorm(_Layer):
    """Batch normalization over channels (BatchNorm2d on maps, BatchNorm1d on vectors)."""

    kind: Literal["batchnorm"] = "batchnorm"
    num_features: Annotated[int, Field(ge=1)] | None = None
    eps: Annotated[float, Field(gt=0)] = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = True


class Dropout(_Layer):
    kind: Literal["dropout"] = "dropout"
    p: Annotated[float, Field(ge=0, le=1)] = 0.5


class Dropout2d(_Layer):
    """Channel dropout (nn.Dropout2d): zeroes whole feature maps, not elements."""

    kind: Literal["dropout2d"] = "dropout2d"
    p: Annotated[float, Field(ge=0, le=1)] = 0.5


class LayerNorm(_Layer):
    """Layer normalization over everything a row's input holds, as nn.LayerNorm([C, H, W])
    does on a feature map and nn.LayerNorm(N) after a flatten."""

    kind: Literal["layernorm"] = "layernorm"
    shape: tuple[int, ...] | None = None
    """The normalized shape, (C, H, W) or (N,): the incoming shape."""
    eps: Annotated[float, Field(gt=0)] = 1e-5
    affine: bool = True
    """nn.LayerNorm's elementwise_affine: a γ and β per normalized element."""


class GroupNorm(_Layer):
    """Group normalization (nn.GroupNorm): `group norm G`, G dividing the channels."""

    kind: Literal["groupnorm"] = "groupnorm"
    groups: Annotated[int, Field(ge=1)] | None = None
    num_features: Annotated[int, Field(ge=1)] | None = None
    eps: Annotated[float, Field(gt=0)] = 1e-5
    affine: bool = True


class InstanceNorm(_Layer):
    """Instance normalization (nn.InstanceNorm2d). As torch's default: no affine parameters
    and no running statistics; `affine` adds a γ and β per channel."""

    kind: Literal["instancenorm"] = "instancenorm"
    num_features: Annotated[int, Field(ge=1)] | None = None
    eps: Annotated[float, Field(gt=0)] = 1e-5
    affine: bool = False


class Linear(_Layer):
    """Fully connected layer. Filter Shape in×out, or `fc 32` in the Type cell."""

    kind: Literal["linear"] = "linear"
    out_features: Annotated[int, Field(ge=1)] | None = None
    in_features: Annotated[int, Field(ge=1)] | None = None
    bias: bool = True


class Flatten(_Layer):
    kind: Literal["flatten"] = "flatten"


if TYPE_CHECKING:
    ActivationKind = str
else:  # the tags of the one activation table (activations.py)
    ActivationKind = Literal[tuple(ACTIVATIONS)]


class Activation(_Layer):
    """An elementwise activation without parameters of its own (activations.ACTIVATIONS)."""

    kind: ActivationKind


class LeakyReLU(_Layer):
    kind: Literal["leakyrelu"] = "leakyrelu"
    negative_slope: float = 0.01


class ELU(_Layer):
    kind: Literal["elu"] = "elu"
    alpha: float = 1.0


class PReLU(_Layer):
    """Parametric ReLU: one learned slope, or one per channel (`prelu, per channel`)."""

    kind: Literal["prelu"] = "prelu"
    per_channel: bool = False
    num_parameters: int | None = None


Layer = Annotated[
    Conv
    | MaxPool
    | AvgPool
    | AdaptiveAvgPool
    | BatchNorm
    | Dropout
    | Dropout2d
    | LayerNorm
    | GroupNorm
    | InstanceNorm
    | Linear
    | Flatten
    | Activation
    | LeakyReLU
    | ELU
    | PReLU,
    Field(discriminator="kind"),
]

#: every layer class of the union, for the completeness test and the catalog
LAYER_CLASSES: tuple[type[_Layer], ...] = (
    Conv,
    MaxPool,
    AvgPool,
    AdaptiveAvgPool,
    BatchNorm,
    Dropout,
    Dropout2d,
    LayerNorm,
    GroupNorm,
    InstanceNorm,
    Linear,
    Flatten,
    Activation,
    LeakyReLU,
    ELU,
    PReLU,
)


def layer_tags(cls: type[_Layer]) -> tuple[str, ...]:
    """The `kind` tags a layer class carries (Activation carries several)."""
    annotation = cls.model_fields["kind"].annotation
    return tuple(getattr(annotation, "__args__", ()))


class Dims(_Node):
    """A dimension cell as written: Filter Shape kh×kw×c_in×c_out, Output Shape H×W×C or N."""

    values: tuple[int, ...]
    pos: Pos


class DeclaredParams(_Node):
    """A Parameters cell: one number or a sum such as 112+8 (conv, then batch norm)."""

    terms: tuple[int, ...]
    pos: Pos

    @property
    def total(self) -> int:
        return sum(self.terms)


class Cell(_Node):
    text: str
    pos: Pos


class Row(_Node):
    """One data row of the layer table."""

    pos: Pos
    type: Cell
    """The Type cell as written."""
    layers: tuple[Layer, ...]
    """The row's layers in order: the primary layer, then what the row attaches (BN, ReLU …)."""
    filter: Dims | None = None
    output: Dims | None = None
    params: DeclaredParams | None = None


class InputSize(_Node):
    height: Annotated[int, Field(ge=1)]
    width: Annotated[int, Field(ge=1)]
    channels: Annotated[int, Field(ge=1)] = 3
    channels_written: bool = True
    """False for `input: 28x28` or `input: 224`: the 3 channels are assumed (check warns)."""
    pos: Pos | None = None

    @property
    def shape(self) -> Shape:
        return (self.channels, self.height, self.width)


class Transform(_Node):
    """What θ is: the transform kind and optional bounds on its scale and translation."""

    kind: str = "affine"
    """A kind of `lstndsl.transforms.KINDS`: affine, translation, similarity, projective,
    rotation, tps."""
    scale: tuple[float, float] | None = None
    """Bounds (min, max) on the scale, e.g. `scale 0.5..1.5`; None: unbounded."""
    translation: Annotated[float, Field(gt=0)] | None = None
    """Bound on |tx| and |ty| in normalized coordinates ([-1, 1] spans the image); for tps, on
    how far each predicted control point may move from its base point."""
    angle: Annotated[float, Field(gt=0, le=180)] | None = None
    """rotation only: bound on |α| in degrees (`rotation, angle 45`); None: unbounded."""
    points: tuple[Annotated[int, Field(ge=2)], Annotated[int, Field(ge=2)]] | None = None
    """tps only: the control points as a (rows, columns) grid over [-1, 1]², row-major, x then
    y for each point. `tps N` (RARE's N fiducials: N/2 along the top edge, N/2 along the bottom)
    is the grid (2, N/2); `tps RxC` is (R, C)."""
    pos: Pos | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in transforms.KINDS:
            raise ValueError(f"unknown transform kind {value!r}: {', '.join(transforms.KINDS)}")
        return value

    @field_validator("angle", "translation")
    @classmethod
    def _bound_applies(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if value is not None and kind is not None:
            why = transforms.misplaced(kind, str(info.field_name))
            if why is not None:
                raise ValueError(why)
        return value

    @field_validator("points")
    @classmethod
    def _points_for_tps(
        cls, value: tuple[int, int] | None, info: ValidationInfo
    ) -> tuple[int, int] | None:
        kind = info.data.get("kind")
        if kind in transforms.WITH_POINTS and value is None:
            raise ValueError("a tps transform needs its control points ('tps 20' or 'tps 4x4')")
        if kind not in transforms.WITH_POINTS and value is not None:
            raise ValueError(f"control points belong to a tps transform, not {kind}")
        return value

    @field_validator("scale")
    @classmethod
    def _scale_reaches_identity(
        cls, value: tuple[float, float] | None, info: ValidationInfo
    ) -> tuple[float, float] | None:
        """The head starts at the identity, so a scale bound must hold 1 strictly inside."""
        if value is None:
            return value
        kind = info.data.get("kind")
        if kind is not None and "scale" not in transforms.KINDS[kind].bounds:
            raise ValueError(f"cannot bound the scale of a {kind} transform")
        lo, hi = value
        shown = f"{lo:g}..{hi:g}"
        if lo > hi:
            raise ValueError(f"range {shown} is inverted: write 'scale {hi:g}..{lo:g}'")
        if lo <= 0:
            raise ValueError(f"range {shown} must start above 0 (a scale is positive)")
        if not lo < 1 < hi:
            raise ValueError(
                f"range {shown} must hold 1 strictly inside: the transform starts at the"
                " identity (e.g. 'scale 0.5..2')"
            )
        return value

    @property
    def dof(self) -> int:
        """The numbers the regression head produces for this transform."""
        if self.kind in transforms.WITH_POINTS:
            assert self.points is not None  # the validator guarantees it
            return 2 * self.points[0] * self.points[1]
        return transforms.KINDS[self.kind].dof


class Sampler(_Node):
    """The grid generator and sampler; one align_corners for both, always explicit."""

    mode: Literal["bilinear", "nearest", "bicubic"] = "bilinear"
    padding_mode: Literal["zeros", "border", "reflection"] = "zeros"
    align_corners: bool = False
    pos: Pos | None = None


class Spec(_Node):
    """A parsed spec: header values, the layer table, and the head."""

    name: str
    path: str = "<spec>"
    source: str = ""
    """The spec text as read (checkpoints carry it; fmt rewrites it)."""
    input: InputSize
    activation: Layer | None = None
    """The header's default activation, appended to Conv and Linear rows that name none."""
    head: tuple[Layer, ...]
    head_text: str = ""
    """The head as written, e.g. 'flatten -> fc 32 -> relu -> fc 6'."""
    head_pos: Pos | None = None
    transform: Transform = Transform()
    sampler: Sampler = Sampler()
    at: str = "input"
    """Where the transformer sits: `input` (in front of the backbone) or the name of a backbone
    module as `named_modules()` spells it (`layer2`): it resamples that module's output."""
    at_pos: Pos | None = None
    rows: tuple[Row, ...]
    total: DeclaredParams | None = None
    total_pos: Pos | None = None

    def semantic(self) -> dict[str, Any]:
        """The IR without positions, path and source text: what two specs must share to mean
        the same net (used by the fmt round-trip)."""
        return _strip(self.model_dump(exclude={"path", "source"}))


_POSITIONS = {"pos", "head_pos", "total_pos", "at_pos"}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if k not in {"pos", "head_pos", "total_pos", "at_pos"}
        }
    if isinstance(value, list | tuple):
        return [_strip(v) for v in value]
    return value


def format_shape(shape: Shape, times: str = "×") -> str:
    """(C, H, W) as the paper prints it, H×W×C; a vector as its length."""
    if len(shape) == 3:
        c, h, w = shape
        return f"{h}{times}{w}{times}{c}"
    return times.join(str(d) for d in shape)
