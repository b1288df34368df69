"""Pure-Python cost rules (lstndsl/cost.py) for the grid generators of the transform kinds:
a TPS grid is one (H·W)×N by N×2 product per image under `full` and free under `thop`; a
rotation's grid is `affine_grid`'s. No torch here.

Not here: the torch-side counter and ptflops (test_cost.py).
"""

from __future__ import annotations

from pathlib import Path

from lstndsl import analyze, cost, ir, load, parse

SPECS = Path(__file__).resolve().parents[1] / "specs"


def test_tps_grid_is_two_macs_per_pixel_per_control_point_in_full_and_free_in_thop() -> None:
    t = ir.Transform(kind="tps", points=(2, 10))
    grid, sample = cost.sampler_ops(t, ir.Sampler(), (1, 32, 100))
    assert grid.kind == "tps_grid" and grid.points == 20
    assert cost.price(grid, "full") == {"sampler": 32 * 100 * 20 * 2}
    assert cost.price(grid, "thop") == {}
    assert cost.tps_grid_macs(16, (3, 8, 8)) == 8 * 8 * 16 * 2
    assert cost.tps_grid_op(16, (3, 8, 8)) == cost.Op(
        kind="tps_grid", input=(3, 8, 8), output=(3, 8, 8), name="grid", points=16
    )
    # the sampler is priced as for every other kind: bilinear 8 per pixel, 4 per element
    assert cost.price(sample, "full") == {"sampler": 8 * 3200 + 4 * 3200}


def test_rotation_grid_is_priced_like_affine() -> None:
    image = (3, 16, 16)
    rotation = cost.sampler_ops(ir.Transform(kind="rotation"), ir.Sampler(), image)
    affine = cost.sampler_ops(ir.Transform(), ir.Sampler(), image)
    assert rotation == affine
    assert cost.price(rotation[0], "full") == {"sampler": 6 * 256}


def test_rare_spec_costs_its_grid_at_the_spec_size() -> None:
    analysis = analyze(load(SPECS / "rare-tps.spec"))
    ops = cost.spec_ops(analysis)
    assert ops.macs("full")["sampler"] == 32 * 100 * 20 * 2 + (8 + 4) * 32 * 100
    assert ops.macs("thop")["sampler"] == 0


def test_tps_spec_analysis_at_another_size() -> None:
    text = (SPECS / "rare-tps.spec").read_text(encoding="utf-8")
    analysis = analyze(parse(text, "rare.spec"), (64, 200))
    assert cost.spec_ops(analysis).macs("full")["sampler"] == 64 * 200 * (40 + 12)
