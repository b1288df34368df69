"""Export a spec's model to ONNX or a torch.export program, and verify the file runs the same.

`lstndsl export SPEC -o model.onnx` compiles the spec (the spatial transformer alone, or with
`--backbone NAME` the full classifier), writes the file and runs it on a random batch of
another size than the one traced, against PyTorch, and prints the largest differences in θ
and in the output (compiler/export.py says how each is bounded), or fails with exit 1. The
format comes from the extension (`.onnx`, `.pt2`) or `--format`. The file maps `image` to
`output` and `theta`.
`--fuse` exports the inference path (batch norm folded, channels-last; compiler/fuse.py).
`--weights FILE` loads a state_dict (or a checkpoint holding one under "model") first.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstndsl import parser
from lstndsl.commands._output import (
    as_flags,
    check_output_file,
    dump_json,
    num,
    parse_size,
    write_atomic,
)
from lstndsl.errors import UsageError
from lstndsl.ir import format_shape

HELP = "export a spec's model to ONNX (.onnx) or torch.export (.pt2), verified"
ORDER = 25


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", metavar="SPEC", nargs="+", help="one spec or several (in order)")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="model.onnx or .pt2")
    p.add_argument("--format", metavar="onnx|pt2", help="default: from the extension")
    p.add_argument("--backbone", metavar="NAME", help="export spatial transformer + backbone")
    p.add_argument("--num-classes", type=int, metavar="N", help="backbone classes")
    p.add_argument("--input-size", metavar="N|HxW", help="default: the spec's (or backbone's)")
    p.add_argument("--fuse", action="store_true", help="fold batch norm, channels-last")
    p.add_argument("--weights", metavar="FILE", help="a state_dict (or checkpoint) to load")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _load_weights(model: Any, path: str) -> None:
    import torch

    from lstndsl.train.checkpoint import read_torch

    try:
        data = read_torch(path)
    except UsageError as err:
        raise UsageError(f"--weights: {err.diagnostics[0].message}") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UsageError(
            f"--weights: '{path}' holds no state_dict (a dict of tensors, or an lstndsl "
            "checkpoint with one under 'model')"
        )
    try:
        model.load_state_dict(data, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise UsageError(
            f"--weights: '{path}' does not fit this model ({first}); compile with the same"
            " spec, --backbone, --num-classes and --input-size it was trained with"
        ) from err


def run(args: argparse.Namespace) -> int:
    from compiler.build import build, check_backbone_args, model_input
    from compiler.export import OPSET, export, format_of, output_names
    from compiler.fuse import count_batchnorms, fuse

    fmt = format_of(args.output, args.format)
    check_output_file(Path(args.output), [*args.specs, args.weights])
    with as_flags():
        check_backbone_args(args.backbone, args.num_classes)
        specs = [parser.parse_file(path) for path in args.specs]
        size = parse_size(args.input_size)
        model = build(specs, backbone=args.backbone, num_classes=args.num_classes, input_size=size)
        input_shape = model_input(specs, args.backbone, size)
    args.spec = args.specs[0]
    if args.weights:
        _load_weights(model, args.weights)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    outputs = output_names(model)
    folded = 0
    if args.fuse:
        before = count_batchnorms(model)
        model = fuse(model)
        folded = before - count_batchnorms(model)
    result = export(model, args.output, input_shape, fmt)
    nbytes = Path(args.output).stat().st_size
    what = "spatial transformer" if args.backbone is None else f"STN + {args.backbone}"
    if args.json:
        dump_json(
            {
                "path": str(args.output),
                "format": fmt,
                "spec": " + ".join(s.name for s in specs),
                "backbone": args.backbone,
                "input": list(input_shape),
                "params": params,
                "bytes": nbytes,
                "fused": args.fuse,
                "batchnorms_folded": folded,
                "outputs": outputs,
                "verified": {
                    "max_abs_diff": result.max_abs_diff,
                    "tolerance": result.tolerance,
                    "theta_max_abs_diff": result.theta_max_abs_diff,
                    "theta_tolerance": result.theta_tolerance,
                    "end_to_end_max_abs_diff": result.end_to_end_max_abs_diff,
                    "batch": result.batch,
                    "runtime": result.runtime,
                },
            }
        )
        return 0
    names = " + ".join(s.name for s in specs)
    print(f"{names}  {' '.join(args.specs)}  {what}, input {format_shape(input_shape)}")
    if args.fuse:
        print(f"fused: {folded} batch norms folded into the layers before them, channels-last")
    detail = f"opset {OPSET}, " if fmt == "onnx" else ""
    outputs_text = "image -> " + ", ".join(outputs)
    print(
        f"exported {fmt} ({detail}{outputs_text}, dynamic batch) to {args.output}:"
        f" {nbytes / 1e6:.2f} MB, {num(params)} parameters"
    )
    print(f"verified against PyTorch on a batch of {result.batch}, {result.runtime}:")
    if result.theta_max_abs_diff is not None:
        print(
            f"  theta   max abs diff {result.theta_max_abs_diff:.2g}"
            f" (tolerance {result.theta_tolerance:.2g})"
        )
        print(
            f"  output  max abs diff {result.max_abs_diff:.2g} (tolerance"
            f" {result.tolerance:.2g}) given the file's theta;"
            f" {result.end_to_end_max_abs_diff:.2g} end to end"
        )
    else:
        print(
            f"  output  max abs diff {result.max_abs_diff:.2g} (tolerance {result.tolerance:.2g})"
        )
    if fmt == "pt2":
        print(f"load it with torch.export.load('{args.output}').module()")
    return 0


def emit_or_fuse(
    args: argparse.Namespace, spec: Any, size: tuple[int, int] | None, model: Any
) -> tuple[Any, str]:
    """`compile --emit python` and `compile --fuse`: (the model `compile -o` should save, what
    it is called); (None, …) when the emitted source went to stdout and compile is done."""
    if args.emit == "python":
        from compiler.emit import emit_python

        if args.fuse:
            raise UsageError(
                "--fuse applies to saved modules, not to --emit python; the emitted module"
                " takes compiler.fuse.fuse like any other"
            )
        if getattr(args, "backbone", None) is not None:
            raise UsageError("--emit python writes the spatial transformer only; drop --backbone")
        code = emit_python(spec, size)
        if not args.output:
            if args.json:
                raise UsageError("--emit python without -o prints the source; drop --json")
            print(code, end="")
            return None, ""
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(args.output), code)
        return model, "standalone PyTorch source"
    from compiler.fuse import count_batchnorms, fuse

    if not args.output:
        raise UsageError("--fuse changes the saved module: give -o FILE")
    fused = fuse(model)
    folded = count_batchnorms(model) - count_batchnorms(fused)
    return fused, f"fused module ({folded} batch norms folded, channels-last)"
