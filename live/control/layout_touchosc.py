"""A TouchOSC layout (``.tosc``) for a ``surface.Surface``, written with py2tosc (a maintained,
dependency-free binding to TouchOSC's file format).

Pages like the Open Stage Control session's: perform (safety buttons, keyframes, XY pads),
parameters and modes, effects, presets and clips. A fader sends its value scaled to the
parameter's range (TouchOSC controls run 0..1); a button without an argument sends the
address with none when pressed, one with an argument sends it as a constant; an effect's
switch is a toggle sending 1 / 0; an XY pad sends x and y to their two parameters. Which
host and port TouchOSC sends to is set in TouchOSC's connections (phosphene's OSC port,
9000 by default), not in the layout.
"""

from __future__ import annotations

from typing import Any

import py2tosc
from py2tosc import ui
from py2tosc.enums import ButtonType, Conversion

from phosphene.live.control.surface import Button, Fader, Surface, XYPad

FRAME = (0, 0, 1024, 768)           # TouchOSC scales a layout to the device it runs on
GAP, PAD = 6, 8


def _button(b: Button) -> Any:
    if b.args:
        arg = b.args[0]
        conversion = Conversion.INTEGER if isinstance(arg, int) else Conversion.STRING
        args = [ui.const(str(arg), conversion=conversion)]
    else:
        args = []
    control = py2tosc.button(name=b.label, messages=[ui.osc(b.address, args=args, on="RISE")])
    return ui.labelled(control, b.label, size=18)


def _fader(f: Fader) -> Any:
    control = py2tosc.fader(name=f.name, messages=[
        ui.osc(f.address, args=[ui.value("x", scale=(f.minimum, f.maximum))])])
    return ui.labelled(control, f.label, size=14)


def _switch(name: str, address: str) -> Any:
    control = py2tosc.button(name=f"{name} on", button_type=ButtonType.TOGGLE_RELEASE,
                             messages=[ui.osc(address, args=[
                                 ui.value("x", conversion=Conversion.INTEGER)])])
    return ui.labelled(control, name, size=18)


def _pad(p: XYPad) -> Any:
    control = py2tosc.xy(name=p.label, messages=[
        ui.osc(p.x.address, var="x", args=[ui.value("x", scale=(p.x.minimum, p.x.maximum))]),
        ui.osc(p.y.address, var="y", args=[ui.value("y", scale=(p.y.minimum, p.y.maximum))])])
    return ui.labelled(control, p.label, size=14)


def _tiles(controls: list, name: str, columns: int = 4) -> Any:
    return ui.tiles(*controls, columns=columns, gap=GAP, pad=PAD, name=name)


def touchosc_document(surface: Surface) -> "py2tosc.Document":
    """The layout as a py2tosc document, resolved (``.save(path)`` writes the ``.tosc``)."""
    by_address = {b.address: b for b in surface.buttons}

    def buttons(*names: str) -> list:
        return [_button(by_address.pop(f"/phosphene/{n}")) for n in names
                if f"/phosphene/{n}" in by_address]

    safety = buttons("blackout", "freeze", "panic", "tempo/tap")
    keyframes = buttons("keyframe/prev", "keyframe/next", "keyframe/capture", "keyframe/save") \
        + [_button(b) for b in surface.keyframes]
    pages = [ui.column(
        ui.row(*safety, gap=GAP, pad=PAD),
        _tiles(keyframes, "keyframes"),
        ui.row(*[_pad(p) for p in surface.pads], gap=GAP, pad=PAD) if surface.pads
        else ui.row(gap=GAP, pad=PAD),
        sizes=(1, 2, 4), name="perform")]
    pages.append(ui.column(
        ui.row(*[_fader(f) for f in surface.parameters], gap=GAP, pad=PAD),
        ui.row(*[_fader(f) for f in surface.modes], gap=GAP, pad=PAD),
        name="parameters"))
    if surface.effects:
        pages.append(ui.row(*[
            ui.column(_switch(s.name, s.enable_address),
                      ui.row(*[_fader(f) for f in s.faders], gap=GAP),
                      sizes=(1, 6), gap=GAP)
            for s in surface.effects], gap=GAP, pad=PAD, name="effects"))
    sets = buttons("preset/prev", "preset/next") + [_button(b) for b in surface.presets]
    clips = buttons("clip/stopall") + [_button(b) for b in surface.clips + surface.clip_stop]
    rest = [_button(b) for b in by_address.values()]          # midi cancel, any new route
    pages.append(_tiles(sets + clips + rest, "presets and clips"))
    # TouchOSC's root is a plain container: the pager goes inside a group
    root = ui.stack(ui.pager(*pages, name="pages"), frame=FRAME, name="phosphene")
    document = py2tosc.Document(root=root)
    document.resolve()
    return document
