"""An Open Stage Control session (the JSON file its editor saves) for a ``surface.Surface``:
the faders, buttons and XY pads of the control page, for performers who already run Open
Stage Control on a tablet.

Open Stage Control fills every property a widget leaves out with its default, so each widget
here names only what differs: its type, id, label, OSC address and range. How the namespace's
shapes map onto its widgets:

- a route without arguments: a ``momentary`` button (it sends the address with no argument);
- a button with an argument (keyframe INDEX, preset NAME, clip NAME): a ``tap`` button whose
  ``on`` value is that argument;
- an effect's switch: a ``toggle`` button sending 1 / 0;
- a parameter: a vertical fader over the parameter's range;
- an XY pad: an ``xy`` widget over both ranges that sends its two values to the two
  parameters' addresses (a script; the pad itself sends nothing).

The session does not say where messages go: start Open Stage Control with
``--send 127.0.0.1:9000`` (phosphene's OSC port).
"""

from __future__ import annotations

import json
import re
from typing import Any

from phosphene.live.control.surface import Button, Fader, Surface, XYPad

# the release the format was checked against; the editor loads older sessions as they are
OSC_VERSION = "1.26.2"


def _id(*parts: str) -> str:
    # widget ids are unique names; Open Stage Control allows letters, digits, _ and -
    return "_".join(re.sub(r"[^A-Za-z0-9_-]+", "-", p).strip("-") for p in parts)


def _button(b: Button, group: str) -> dict[str, Any]:
    widget = {"type": "button", "id": _id(group, b.label), "label": b.label,
              "address": b.address, "preArgs": []}
    if b.args:
        widget.update(mode="tap", on=b.args[0], off=None)
    else:
        widget.update(mode="momentary")
    return widget


def _fader(f: Fader, group: str) -> dict[str, Any]:
    return {"type": "fader", "id": _id(group, f.name), "label": f.label,
            "address": f.address, "preArgs": [], "range": {"min": f.minimum, "max": f.maximum},
            "default": f.default, "value": f.default, "design": "compact", "doubleTap": True,
            "expand": True, "decimals": 3 if f.maximum - f.minimum < 20 else 1}


def _pad(p: XYPad) -> dict[str, Any]:
    script = (f"send({json.dumps(p.x.address)}, value[0]); "
              f"send({json.dumps(p.y.address)}, value[1])")
    return {"type": "xy", "id": _id("xy", p.x.name, p.y.name), "label": p.label,
            "rangeX": {"min": p.x.minimum, "max": p.x.maximum},
            "rangeY": {"min": p.y.minimum, "max": p.y.maximum},
            "default": [p.x.default, p.y.default], "bypass": True, "onValue": script,
            "width": 260, "height": 260}


def _panel(label: str, widgets: list[dict], layout: str = "horizontal",
           **extra: Any) -> dict[str, Any]:
    return {"type": "panel", "id": _id("panel", label), "label": label, "layout": layout,
            "widgets": widgets, "expand": True, **extra}


def _tab(label: str, widgets: list[dict]) -> dict[str, Any]:
    return {"type": "tab", "id": _id("tab", label), "label": label, "layout": "vertical",
            "widgets": widgets}


def open_stage_control_session(surface: Surface) -> dict[str, Any]:
    """The session document (``json.dump`` it to a ``.json`` file)."""
    by_address = {b.address: b for b in surface.buttons}

    def buttons(*names: str) -> list[dict]:
        found = [by_address.pop(f"/phosphene/{n}") for n in names
                 if f"/phosphene/{n}" in by_address]
        return [_button(b, "do") for b in found]

    perform = [
        _panel("safety", buttons("blackout", "freeze", "panic", "tempo/tap"), height=80,
               expand=False),
        _panel("keyframes", buttons("keyframe/prev", "keyframe/next", "keyframe/capture",
                                    "keyframe/save")
               + [_button(b, "keyframe") for b in surface.keyframes], layout="grid",
               gridTemplate=4, expand=False, height=160),
        _panel("pads", [_pad(p) for p in surface.pads]),
    ]
    parameters = [_panel("parameters", [_fader(f, "param") for f in surface.parameters])]
    if surface.modes:
        parameters.append(_panel("modes", [_fader(f, "mode") for f in surface.modes]))
    effects = []
    for strip in surface.effects:
        switch = {"type": "button", "id": _id("fx", strip.name, "on"), "label": strip.name,
                  "address": strip.enable_address, "preArgs": [], "mode": "toggle",
                  "on": 1, "off": 0, "value": 1, "height": 50, "expand": False}
        effects.append(_panel(strip.name, [
            switch, _panel(strip.name + " params", [_fader(f, "fx-" + strip.name)
                                                    for f in strip.faders])], layout="vertical"))
    sets = [_panel("presets", buttons("preset/prev", "preset/next")
                   + [_button(b, "preset") for b in surface.presets], layout="grid",
                   gridTemplate=4)]
    if surface.clips:
        sets.append(_panel("clips", buttons("clip/stopall")
                           + [_button(b, "clip") for b in surface.clips]
                           + [_button(b, "clip") for b in surface.clip_stop], layout="grid",
                           gridTemplate=4))
    rest = [_button(b, "do") for b in by_address.values()]      # midi cancel, any new route
    if rest:
        sets.append(_panel("more", rest, layout="grid", gridTemplate=4))
    tabs = [_tab("perform", perform), _tab("parameters", parameters)]
    if effects:
        tabs.append(_tab("effects", effects))
    tabs.append(_tab("presets and clips", sets))
    return {"createdWith": "Open Stage Control", "version": OSC_VERSION, "type": "session",
            "content": {"type": "root", "id": "root", "label": f"phosphene · {surface.preset}",
                        "widgets": [], "tabs": tabs}}
