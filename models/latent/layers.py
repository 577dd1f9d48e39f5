"""Which rows of a per-layer latent ``w [num_ws, w_dim]`` a layer spec names.

In StyleGAN2 ``w`` row i feeds the layers at resolution ~``2**(i//2 + 2)``: the coarse rows
shape pose and layout, the middle ones features, the fine ones colour and texture. A *layer
spec* is how presets and the CLI name a set of rows: ``coarse``, ``middle``, ``fine``, ``all``,
a range ``A-B`` (inclusive) or one row ``A``. Pure Python: the show uses it too.
"""

from __future__ import annotations

import re

LAYER_GROUPS = ("coarse", "middle", "fine")
LAYER_SPEC_HELP = "coarse, middle, fine, all, or w rows A-B (inclusive) or A"
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def layer_rows(num_ws: int) -> dict[str, slice]:
    """Which rows of ``w`` belong to the coarse / middle / fine layer groups.

    Rows 0-3 (4-8 px) are coarse, 4-7 (16-32 px) middle, the rest fine. Very small networks
    (fewer than 12 rows) are split into thirds so every group has rows.
    """
    if num_ws >= 12:
        return {"coarse": slice(0, 4), "middle": slice(4, 8), "fine": slice(8, num_ws)}
    a = max(1, round(num_ws / 3))
    b = max(a + 1, round(2 * num_ws / 3)) if num_ws > 2 else num_ws
    return {"coarse": slice(0, a), "middle": slice(a, b), "fine": slice(b, num_ws)}


def check_layer_spec(spec: str) -> str:
    """``spec`` if it is well formed (rows are checked against a network by ``parse_layers``);
    else ``ValueError`` saying what is allowed."""
    if spec in LAYER_GROUPS or spec == "all":
        return spec
    m = _RANGE.match(spec)
    if m is None:
        raise ValueError(f"layers {spec!r}: expected {LAYER_SPEC_HELP}")
    first, last = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
    if last < first:
        raise ValueError(f"layers {spec!r}: the range runs backwards ({first} > {last})")
    return spec


def parse_layers(spec: str, num_ws: int) -> tuple[int, ...]:
    """The rows ``spec`` names in a network with ``num_ws`` rows, ascending."""
    check_layer_spec(spec)
    if spec == "all":
        return tuple(range(num_ws))
    if spec in LAYER_GROUPS:
        return tuple(range(num_ws))[layer_rows(num_ws)[spec]]
    m = _RANGE.match(spec)
    first, last = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
    if last >= num_ws:
        raise ValueError(f"layers {spec!r}: this network has w rows 0-{num_ws - 1}")
    return tuple(range(first, last + 1))
