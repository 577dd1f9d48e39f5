"""The control surface: which faders, buttons and XY pads a performer gets, generated from the
namespace (``routes.NAMESPACE``) and what the running preset offers.

One description, three renderings: the web control page draws it (``web_static/app.js`` reads
it as JSON from ``/surface``), and ``phosphene osc --layout`` turns it into an Open Stage
Control session (``layout_open_stage_control.py``) or a TouchOSC layout (``layout_touchosc.py``).
Nothing here opens a socket or reads a file: the facts come in as plain values.

How the namespace becomes controls:

- every route without required arguments is a button (keyframe next/prev/capture, tap tempo,
  preset next/prev, stop all clips, cancel MIDI learn, blackout, freeze, panic); the status
  request, which only asks, is left out;
- ``/param/<name>``: a fader per parameter in its range, with a MIDI-learn button; the tempo
  fader sends ``/tempo/bpm`` (immediate, as a set tempo should be);
- ``/mode/<mode>``: a fader per latent mode, 0..1;
- ``/effect/<effect>/enable`` and ``/effect/<effect>/<uniform>``: per effect of the chain a
  switch and a fader per uniform;
- ``/keyframe/goto``, ``/preset/load``, ``/clip/play``: a button per keyframe, per preset in the
  catalog and per clip in the bank;
- XY pads, where two faders belong together: psi × noise (how far from the average image, how
  grainy), and the first two uniforms of each effect that has at least two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from phosphene.live.control.routes import NAMESPACE, P, NamespaceContext, Route, param_address
from phosphene.live.show.params import ParameterSpec

# a parameter whose own route is better than /param/<name>
_PARAM_ROUTES = {"tempo_bpm": f"{P}/tempo/bpm"}
# the pads of the picture itself: (x, y) parameters, each drawn only where both exist
_PICTURE_PADS = (("psi", "noise"),)


@dataclass(frozen=True)
class Fader:
    name: str                  # the parameter ("psi", "flash.amount", "mode.drift")
    label: str
    address: str
    minimum: float
    maximum: float
    default: float
    help: str = ""
    learn: bool = True         # /phosphene/midi/learn NAME makes sense for it


@dataclass(frozen=True)
class Button:
    label: str
    address: str
    args: tuple[Any, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class XYPad:
    label: str
    x: Fader
    y: Fader


@dataclass(frozen=True)
class EffectStrip:
    name: str
    enable_address: str
    faders: tuple[Fader, ...]


@dataclass(frozen=True)
class Surface:
    preset: str
    buttons: tuple[Button, ...]             # from the routes without arguments
    parameters: tuple[Fader, ...]
    modes: tuple[Fader, ...]
    effects: tuple[EffectStrip, ...]
    pads: tuple[XYPad, ...]
    keyframes: tuple[Button, ...]
    presets: tuple[Button, ...]
    clips: tuple[Button, ...]
    clip_stop: tuple[Button, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _label(route: Route) -> str:
    # "/phosphene/keyframe/next" -> "keyframe next"
    return " ".join(route.segments[1:])


def namespace_buttons(routes: Iterable[Route] = NAMESPACE) -> tuple[Button, ...]:
    """A button for every route that needs no argument (the status request asks, so it is
    not one)."""
    out = []
    for route in routes:
        if route.scope == "reply" or any(not a.optional for a in route.args):
            continue
        if "<" in route.pattern:
            continue
        out.append(Button(_label(route), route.pattern, (), route.help))
    return tuple(out)


def _fader(spec: ParameterSpec, address: str, label: str, learn: bool = True) -> Fader:
    return Fader(spec.name, label, address, float(spec.minimum), float(spec.maximum),
                 float(spec.default), spec.help, learn)


def build_surface(context: NamespaceContext, *, preset: str = "",
                  effects: Iterable[str] = (), keyframes: Iterable[str] = (),
                  presets: Iterable[str] = (), clips: Iterable[str] = ()) -> Surface:
    """The surface for a scene. ``context``: the parameters, effects and modes a control
    surface may address (what the server validates against); ``effects``: the chain in order
    (the context's set, sorted, when not given); ``keyframes``: a label per keyframe;
    ``presets``/``clips``: the names the catalog and the bank hold."""
    specs: Mapping[str, ParameterSpec] = context.parameters
    chain = list(effects) or sorted(context.effects)
    plain, modes, strips = [], [], []
    for name, spec in specs.items():
        if name.startswith("mode."):
            continue
        if "." in name and name.split(".", 1)[0] in context.effects:
            continue                            # an effect's uniform: under its effect
        plain.append(_fader(spec, _PARAM_ROUTES.get(name, param_address(name)), name))
    for mode in sorted(context.modes):
        spec = specs.get(f"mode.{mode}")
        if spec is not None:
            modes.append(_fader(spec, f"{P}/mode/{mode}", mode))
    for effect in chain:
        if effect not in context.effects:
            continue
        uniforms = [_fader(spec, f"{P}/effect/{effect}/{name.split('.', 1)[1]}",
                           name.split(".", 1)[1])
                    for name, spec in specs.items() if name.startswith(effect + ".")]
        strips.append(EffectStrip(effect, f"{P}/effect/{effect}/enable", tuple(uniforms)))
    by_name = {f.name: f for f in plain}
    pads = [XYPad(f"{x} × {y}", by_name[x], by_name[y]) for x, y in _PICTURE_PADS
            if x in by_name and y in by_name]
    pads += [XYPad(f"{s.name}: {s.faders[0].label} × {s.faders[1].label}", s.faders[0],
                   s.faders[1]) for s in strips if len(s.faders) >= 2]
    return Surface(
        preset=preset,
        buttons=namespace_buttons(),
        parameters=tuple(plain), modes=tuple(modes), effects=tuple(strips), pads=tuple(pads),
        keyframes=tuple(Button(f"{i + 1}" + (f" · {label}" if label else ""),
                               f"{P}/keyframe/goto", (i,), f"move to keyframe {i + 1}")
                        for i, label in enumerate(keyframes)),
        presets=tuple(Button(name, f"{P}/preset/load", (name,)) for name in presets),
        clips=tuple(Button(name, f"{P}/clip/play", (name,)) for name in clips),
        clip_stop=tuple(Button(f"stop {name}", f"{P}/clip/stop", (name,)) for name in clips))
