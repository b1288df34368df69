"""Every fact the language knows about a transform kind, once: its words in the `transform:`
header, how many numbers the regression head produces, which bounds apply, how error messages
list it, and what each misplaced bound's fix says.

Adding a transform kind takes this table and its parameterization in `compiler/transforms.py`
(θ from the head's numbers, the identity bias); a kind whose sampling grid is not an affine or
projective matrix (like tps) also needs its grid in `compiler/geometry.py` and its price in
`lstndsl/cost.py`.

What it is not: parsing (`headers.py` reads the header through this table), the IR node
(`ir.Transform`, validated against it) or anything numeric about θ (the compiler's).
"""

from __future__ import annotations

from dataclasses import dataclass

#: the bounds a transform header can give, as its error messages list them
BOUNDS = {"scale": "scale LO..HI", "translation": "translation B", "angle": "angle DEGREES"}


@dataclass(frozen=True)
class Kind:
    """One transform kind of the language."""

    #: the name in the IR (`Transform.kind`)
    name: str
    #: its spellings in the `transform:` header (the name among them)
    words: tuple[str, ...]
    #: the numbers the head produces; 0: two per control point (`Transform.points`)
    dof: int
    #: the bounds that apply to it (keys of BOUNDS)
    bounds: tuple[str, ...]
    #: how error messages list it
    shown: str = ""
    #: what a bound that does not apply should become, by bound
    fixes: tuple[tuple[str, str], ...] = ()


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("affine", ("affine",), 6, ("scale", "translation")),
        Kind("translation", ("translation", "shift"), 2, ("translation",)),
        Kind("similarity", ("similarity",), 4, ("scale", "translation")),
        Kind(
            "projective", ("projective", "homography", "perspective"), 8, ("scale", "translation")
        ),
        Kind(
            "rotation",
            ("rotation", "rotate"),
            1,
            ("angle",),
            fixes=(
                (
                    "translation",
                    "a rotation turns about the center and has no translation; remove it, or"
                    " use 'similarity' for rotation, scale and shift",
                ),
            ),
        ),
        Kind(
            "tps",
            ("tps", "thin plate spline", "thin plate splines"),
            0,
            ("translation",),
            shown="tps N",
            fixes=(
                (
                    "scale",
                    "a tps transform has no scale to bound; remove it (tps: 'translation B'"
                    " bounds how far each control point moves)",
                ),
            ),
        ),
    )
}

#: spelling -> kind name, for the header's vocabulary
WORDS = {word: kind.name for kind in KINDS.values() for word in kind.words}
#: kinds that take a value after their word (`tps 20`, `tps 4x4`: the control points)
WITH_POINTS = frozenset(k.name for k in KINDS.values() if k.dof == 0)


def listed() -> str:
    """What an unknown word's error lists: each kind once, as written, then the bounds."""
    kinds = ", ".join(k.shown or k.name for k in KINDS.values())
    return f"transform kinds {kinds}; bounds {', '.join(BOUNDS.values())}"


def misplaced(kind: str, bound: str) -> str | None:
    """Why `bound` does not apply to `kind` and what to do instead (None: it applies)."""
    k = KINDS[kind]
    if bound in k.bounds:
        return None
    fix = dict(k.fixes).get(bound)
    if fix:
        return fix
    if bound == "angle":
        return "an angle bound belongs to 'rotation' (e.g. 'rotation, angle 45')"
    return f"a {kind} transform has no {bound} to bound; remove it"
