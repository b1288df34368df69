"""Profile a spec's model: parameters by part and multiply-accumulates under named conventions.

    lstndsl profile SPEC [--backbone NAME] [--num-classes K] [--input-size N] [--json]

Parameters: localization net, regression head, spatial transformer (the two), backbone, total.
MACs for one image: `thop` (the paper's "GFLOPS" convention), `full` (every operation, the grid
and sampler included) — both our own arithmetic, rules in lstndsl/cost.py — ptflops' count
of the compiled module, next to our model of its rules, and torch's own FlopCounterMode (FLOPs /
2, our `full` formulas registered for the grid and sampler: compiler/flops.py), with the reason
for each difference; and torch's count of training (forward + backward, one real backward pass).

`--json` contract (extra keys may follow; these never change):
    {"spec": str, "input": [C, H, W], "backbone": str | null, "num_classes": int | null,
     "params": {"localization": int, "head": int, "stn": int, "backbone": int | null,
                "total": int},
     "macs": {"thop": int, "full": int, "ptflops": int, "torch": int},
     "train_macs": {"torch": int}}
`macs.torch` is FlopCounterMode's forward, `train_macs.torch` its forward + backward.
"""

from __future__ import annotations

import argparse
from typing import Any

from lstndsl import cost, parser
from lstndsl.commands._output import as_flags, dump_json, num, parse_size, table
from lstndsl.errors import UsageError
from lstndsl.ir import format_shape

HELP = "parameters and MACs (thop convention, full count, ptflops) of a spec's model"
ORDER = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "specs", metavar="SPEC", nargs="*", help="one spec or several (applied in order)"
    )
    p.add_argument("--backbone", metavar="NAME", help="timm or torchvision model behind the STN")
    p.add_argument(
        "--sites",
        action="store_true",
        help="list the backbone modules a transformer can sit on (`at:`), with their feature"
        " maps at the model's resolution",
    )
    p.add_argument("--num-classes", type=int, metavar="K", help="the backbone's classes")
    p.add_argument(
        "--input-size", metavar="N|HxW", help="default: the backbone's resolution, else the spec's"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def contract(path: str, prof: Any) -> dict[str, Any]:
    """The `profile --json` contract, then extra keys (parts, categories, ptflops_model …)."""
    return {
        "spec": path,
        "input": list(prof.input),
        "backbone": prof.backbone,
        "num_classes": prof.num_classes,
        "params": dict(prof.params),
        "macs": prof.macs,
        "train_macs": prof.train_macs,
        "name": prof.spec,
        "ptflops_model": prof.parts["ptflops"]["total"],
        "parts": prof.parts,
        "categories": prof.categories,
        "unpriced": prof.unpriced,
        "unlisted": prof.unlisted,
        "transformers": prof.transformers,
        "torch": None
        if prof.torch is None
        else {
            "ops": prof.torch.ops,
            "train_ops": prof.torch.train_ops,
            "parts": prof.torch.parts,
            "categories": prof.torch.categories,
        },
    }


def run(args: argparse.Namespace) -> int:
    from compiler.build import build, check_backbone_args
    from compiler.cost import model_profile

    if args.sites:
        return _sites(args)
    if not args.specs:
        raise UsageError("profile needs a SPEC (or --backbone NAME --sites)")
    with as_flags():
        check_backbone_args(args.backbone, args.num_classes)
        specs = [parser.parse_file(path) for path in args.specs]
        size = parse_size(args.input_size)
        model = build(specs, backbone=args.backbone, num_classes=args.num_classes, input_size=size)
    args.spec = " ".join(args.specs)
    prof = model_profile(model, args.backbone, args.num_classes)
    if args.json:
        dump_json(contract(args.specs[0] if len(specs) == 1 else args.spec, prof))
        return 0
    _print(args, prof)
    return 0


def _sites(args: argparse.Namespace) -> int:
    """`profile --backbone NAME --sites`: where `at:` can put a transformer."""
    from compiler import backbones, placement
    from compiler.build import model_input

    if args.backbone is None:
        raise UsageError("--sites lists a backbone's modules: give --backbone NAME")
    with as_flags():
        specs = [parser.parse_file(path) for path in args.specs]
        image = (
            model_input(specs, args.backbone, parse_size(args.input_size))
            if specs
            else (
                3,
                *(
                    parse_size(args.input_size)
                    or (backbones.default_resolution(args.backbone),) * 2
                ),
            )
        )
        net = backbones.create(args.backbone, num_classes=args.num_classes, in_chans=image[0])
    sites = placement.placeable(net, image)
    if args.json:
        dump_json(
            {
                "backbone": args.backbone,
                "input": list(image),
                "sites": {n: list(s) for n, s in sites.items()},
            }
        )
        return 0
    c, h, w = image
    print(
        f"{args.backbone}: modules a transformer can sit on (`at: NAME`), one {h}×{w}×{c} image\n"
    )
    rows = [["at:", "feature map (H×W×C)"]] + [[n, format_shape(s)] for n, s in sites.items()]
    table(rows, "ll")
    print("\na spec at one of them declares that map as its `input:` (its channels exactly)")
    return 0


def _print(args: argparse.Namespace, prof: Any) -> None:
    c, h, w = prof.input
    behind = ""
    if prof.backbone:
        from compiler.backbones import resolve

        classes = "default classes" if prof.num_classes is None else f"{prof.num_classes} classes"
        behind = f" + {prof.backbone} ({resolve(prof.backbone)[0]}, from scratch, {classes})"
    print(f"{prof.spec} ({args.spec}){behind}, one {h}×{w}×{c} image\n")
    if len(prof.transformers) > 1:
        rows = [["transformer", "spec", "at", "input", "params", "thop", "full"]]
        for t in prof.transformers:
            tc, th, tw = t["input"]
            rows.append(
                [
                    t["name"],
                    t["spec"],
                    t["site"],
                    f"{th}×{tw}×{tc}",
                    num(t["params"]["stn"]),
                    *(num(t["macs"][c]["total"]) for c in ("thop", "full")),
                ]
            )
        table(rows, "llllrrr")
        print()

    p = prof.params
    rows = [["parameters", ""]]
    rows += [
        ["localization net", num(p["localization"])],
        ["regression head", num(p["head"])],
        ["spatial transformer", num(p["stn"])],
    ]
    if p["backbone"] is not None:
        rows.append(["backbone", num(p["backbone"])])
    rows.append(["total", num(p["total"])])
    table(rows, "lr")

    parts = ["localization", "head", "sampler"] + (["backbone"] if prof.backbone else [])
    names = {
        "localization": "localization net",
        "head": "regression head",
        "sampler": "grid and sampler",
        "backbone": "backbone",
    }
    print()
    by_part: dict[str, dict[str, int]] = {c: prof.parts[c] for c in cost.CONVENTIONS}
    assert prof.torch is not None
    by_part["torch"] = {**prof.torch.parts, "total": prof.torch.forward}
    macs = [["MACs", "thop", "full", "ptflops rules", "torch"]]
    for part in parts:
        macs.append([names[part], *(num(by_part[c][part]) for c in by_part)])
    macs.append(["total", *(num(by_part[c]["total"]) for c in by_part)])
    macs.append(["total, G", *(f"{by_part[c]['total'] / 1e9:.4f}" for c in by_part)])
    table(macs, "lrrrr")

    modelled = prof.parts["ptflops"]["total"]
    agree = (
        "the same as its rules give, by our count"
        if prof.ptflops == modelled
        else f"its rules, by our count, give {num(modelled)}: {num(prof.ptflops - modelled)}"
        " unexplained"
    )
    print(
        '\nthop: the L-STN paper\'s convention (its "GFLOPS" are these MACs); full: every'
        " operation, the grid and sampler included (rules: lstndsl/cost.py)."
    )
    print(f"ptflops 0.7.5 on the compiled module counts {num(prof.ptflops)} MACs: {agree}.")
    _torch_lines(prof.torch)

    cats = {**prof.categories, "torch": prof.torch.categories}
    print()
    rows = [["by rule", "thop", "full", "ptflops rules", "torch"]]
    for key, label in cost.CATEGORIES.items():
        values = [cats[c].get(key, 0) for c in cats]
        if any(values):
            rows.append([label, *(num(v) for v in values)])
    table(rows, "lrrrr")
    _why("thop differs from full", cats["thop"], cats["full"], cost.THOP_DIFFERENCES)
    _why("ptflops differs from full", cats["ptflops"], cats["full"], cost.PTFLOPS_DIFFERENCES)
    _why("torch differs from full", cats["torch"], cats["full"], cost.TORCH_DIFFERENCES)
    if prof.unlisted:
        listed = ", ".join(f"{k} ({num(v)})" for k, v in sorted(prof.unlisted.items()))
        print(f"  classes ptflops does not list (their MACs under full): {listed}")
    if prof.unpriced:
        listed = ", ".join(f"{k} ×{v}" for k, v in sorted(prof.unpriced.items()))
        print(f"modules no rule prices (counted 0 in every convention): {listed}")


def _torch_lines(count: Any) -> None:
    """What torch's FlopCounterMode counted: forward by op, and training."""
    ops = ", ".join(f"{k.removeprefix('aten.')} {num(v)}" for k, v in count.ops.items())
    print(
        f"torch {torch_version()} FlopCounterMode (FLOPs / 2; formulas for the grid and"
        f" sampler are full's, compiler/flops.py) counts {num(count.forward)} MACs: {ops}."
    )
    ratio = f" ({count.train / count.forward:.2f} × the forward)" if count.forward else ""
    print(
        f"training, one image, forward + backward (a real backward pass, gradients of every"
        f" parameter): {num(count.train)} MACs{ratio}, by torch's count."
    )


def torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


def _why(title: str, got: dict[str, int], full: dict[str, int], reasons: dict[str, str]) -> None:
    lines = [
        f"  {cost.CATEGORIES[k]}: {num(got.get(k, 0) - full[k])} — {reasons[k]}"
        for k in cost.CATEGORIES
        if got.get(k, 0) != full.get(k, 0)
    ]
    if lines:
        print(f"\nwhere {title}:")
        print("\n".join(lines))
