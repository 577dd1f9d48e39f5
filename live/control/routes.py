"""The routes: every address phosphene understands, with what it does, in one table.

This table is the only place an address is declared, parsed and dispatched: the OSC server and
MIDI notes validate against it (``validate``), ``phosphene osc --list`` prints it, the README's
table is generated from it (a test keeps them in step), and every event — from OSC, MIDI, keys,
the web page or a replayed recording — is applied through it (``perform``).

Each route has a *scope* that says who carries it out:

- ``show``: the picture's parameters (params, modes, effects, tempo, keyframes); the handler
  calls one of the ``Show``'s operations. Deterministic: a replay does them again.
- ``action``: what is loaded or played (presets, clips, MIDI learn); the handler calls the
  running engine's ``Actions``. A replay has none: their outcome is in the recording (the
  recorded audio holds the clips, ``preset/loaded`` the switch).

  A ``show`` route may also have a live side, ``action`` (the blackout stops the clips): it
  runs with the action events, the show part with the show events, and a replay does the
  show part only.
- ``replay``: a recorded outcome (``preset/loaded``, ``preset/edited``), carried out on the show
  where the action was; never accepted from the network.
- ``reply``: answered by the OSC server itself (``status``).

Placeholders in patterns match one address segment and are checked against the running scene:
``<name>`` a parameter, ``<mode>`` a latent mode, ``<effect>``/``<uniform>`` an effect parameter
``"<effect>.<uniform>"`` of the current preset.
"""

from __future__ import annotations

import math
import re
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from phosphene.live.show.director import MODES
from phosphene.live.show.events import PRESET_EDITED, PRESET_LOADED, ControlEvent
from phosphene.live.show.params import ParameterSpec
from phosphene.live.show.quantize import QUANTIZE_MODES
from phosphene.live.show.safety import BLACKOUT_IN_S, BLACKOUT_OUT_S

log = logging.getLogger(__name__)

# Names from the network are names: letters, digits, '_', '-', '.'; never '/', '\', '..' or a
# leading '.', so nothing received can become a path outside the bank or presets folder.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def is_safe_name(text: str) -> bool:
    return bool(_NAME_RE.match(text)) and ".." not in text


@dataclass(frozen=True)
class Arg:
    name: str
    type: str                       # 'f' float, 'i' int, 's' name
    minimum: float | None = None    # None: taken from the parameter the address names
    maximum: float | None = None
    optional: bool = False
    choices: tuple[str, ...] = ()   # a string argument that is one of these words

    def describe(self) -> str:
        text = f"{self.name}:{self.type}"
        if self.choices:
            text += " " + "|".join(self.choices)
        elif self.type == "s":
            text += " (a name)" if self.name == "name" else ""
        elif self.minimum is not None:
            text += f" [{self.minimum:g}..{self.maximum:g}]"
        else:
            text += " [parameter range]"
        return f"[{text}]" if self.optional else text


class ActionFailed(Exception):
    """An action that could not be done (a preset that does not load, an unknown clip, MIDI
    learn without MIDI); ``str()`` says why. Raised by ``Actions``; ``perform`` hands it to
    ``on_error``, where the engine logs and counts it and answers the sender on
    ``/phosphene/error``. The show goes on."""


class Actions(Protocol):
    """What a running engine does for the ``action`` routes (``runtime/actions.py``). A method
    that cannot do what was asked raises ``ActionFailed`` saying why."""

    def load_preset(self, name: str) -> None: ...
    def step_preset(self, step: int) -> None: ...
    def play_clip(self, name: str, gain: float, sample_index: int) -> None: ...
    def stop_clip(self, name: str) -> None: ...
    def stop_all_clips(self) -> None: ...
    def learn_midi(self, parameter: str) -> None: ...
    def cancel_midi_learn(self) -> None: ...
    def save_keyframes(self) -> None: ...
    def blackout(self, on: bool | None) -> None: ...
    def panic(self) -> None: ...


# handler(target, bound placeholders, arguments, the event); the target is the Show for
# ``show`` and ``replay`` routes, the Actions for ``action`` routes
Handler = Callable[[Any, dict, tuple, ControlEvent], None]


@dataclass(frozen=True)
class Route:
    pattern: str
    args: tuple[Arg, ...] = ()
    help: str = ""
    scope: str = "show"                   # show | action | replay | reply (module doc)
    handler: Handler | None = None
    # a ``show`` route's live side (the blackout stops the clips): called with the Actions
    # before the show events of the hop, only where there are Actions (never in a replay)
    action: Handler | None = None
    # may wait for the next beat or bar (``show/quantize.py``): its last argument is the
    # optional ``QUANTIZE_ARG``, and without it the running preset's ``quantize`` applies
    quantizable: bool = False

    @property
    def segments(self) -> list[str]:
        return self.pattern.strip("/").split("/")

    def signature(self) -> str:
        return " ".join(a.describe() for a in self.args)


P = "/phosphene"
# the optional last argument of a quantizable route: wait for the next beat or bar, or not
QUANTIZE_ARG = Arg("quantize", "s", optional=True, choices=QUANTIZE_MODES)
PANIC_ADDRESS = f"{P}/panic"
CLIP_PLAY_ADDRESS = f"{P}/clip/play"
_Q = "; QUANTIZE beat|bar waits for the next line, off does it now (default: the preset's)"
NAMESPACE: tuple[Route, ...] = (
    Route(f"{P}/param/<name>", (Arg("value", "f"),), "set a parameter (smoothed), e.g. psi, noise, speed",
          handler=lambda show, b, a, e: show.set_parameter(b["name"], float(a[0]))),
    Route(f"{P}/mode/<mode>", (Arg("weight", "f", 0, 1),),
          "weight of a latent mode: " + ", ".join(MODES),
          handler=lambda show, b, a, e: show.set_parameter(f"mode.{b['mode']}", float(a[0]))),
    Route(f"{P}/effect/<effect>/enable", (Arg("on", "i", 0, 1),), "switch an effect of the chain on/off",
          handler=lambda show, b, a, e: show.enable_effect(b["effect"], bool(int(a[0])))),
    Route(f"{P}/effect/<effect>/<uniform>", (Arg("value", "f"),),
          "set an effect parameter (the parameter \"<effect>.<uniform>\")",
          handler=lambda show, b, a, e: show.set_parameter(f"{b['effect']}.{b['uniform']}",
                                                           float(a[0]))),
    Route(f"{P}/keyframe/next", (QUANTIZE_ARG,), "move to the next keyframe (eased)" + _Q,
          handler=lambda show, b, a, e: show.step_keyframe(+1), quantizable=True),
    Route(f"{P}/keyframe/prev", (QUANTIZE_ARG,), "move to the previous keyframe (eased)" + _Q,
          handler=lambda show, b, a, e: show.step_keyframe(-1), quantizable=True),
    Route(f"{P}/keyframe/goto", (Arg("index", "i", 0, 9999), QUANTIZE_ARG),
          "move to keyframe INDEX (wraps around)" + _Q,
          handler=lambda show, b, a, e: show.goto_keyframe(int(a[0])), quantizable=True),
    Route(f"{P}/keyframe/capture", (Arg("name", "s", optional=True),),
          "add the latent on screen as a new keyframe, optionally named (the name a save "
          "gives its file)",
          handler=lambda show, b, a, e: show.capture_keyframe(str(a[0]) if a else None)),
    Route(f"{P}/keyframe/save", (),
          "save the keyframes captured since the preset loaded into the preset file (as "
          ".npy files in keyframes/ beside it; never into a shipped preset)",
          "action", lambda act, b, a, e: act.save_keyframes()),
    Route(f"{P}/tempo/tap", (), "tap tempo: two or more taps set the tempo",
          handler=lambda show, b, a, e: show.tap_tempo(e.sample_index)),
    Route(f"{P}/tempo/bpm", (Arg("bpm", "f", 0, 300),), "set the tempo; 0 follows the analyzer",
          handler=lambda show, b, a, e: show.set_parameter("tempo_bpm", float(a[0]),
                                                           immediate=True)),
    Route(f"{P}/tempo/lock", (),
          "set the tempo to the analyzer's estimate now (with --link the session takes it); "
          f"{P}/tempo/bpm 0 follows the analyzer again",
          handler=lambda show, b, a, e: show.lock_heard_tempo()),
    Route(f"{P}/tempo/beat", (Arg("beat", "f", 0, 1e9),),
          "an external clock's beat position now (Ableton Link, MIDI clock send it): "
          "beat-synced LFOs follow it",
          handler=lambda show, b, a, e: show.sync_beat(e.sample_index, float(a[0]))),
    Route(f"{P}/preset/load", (Arg("name", "s"), QUANTIZE_ARG),
          "switch to a preset by name (crossfades)" + _Q,
          "action", lambda act, b, a, e: act.load_preset(str(a[0])), quantizable=True),
    Route(f"{P}/preset/next", (QUANTIZE_ARG,), "switch to the next preset in the presets folder" + _Q,
          "action", lambda act, b, a, e: act.step_preset(+1), quantizable=True),
    Route(f"{P}/preset/prev", (QUANTIZE_ARG,),
          "switch to the previous preset in the presets folder" + _Q,
          "action", lambda act, b, a, e: act.step_preset(-1), quantizable=True),
    Route(f"{P}/clip/play", (Arg("name", "s"), Arg("gain", "f", 0, 4, optional=True), QUANTIZE_ARG),
          "play a clip from the bank, optionally with a gain" + _Q,
          "action", lambda act, b, a, e: act.play_clip(
              str(a[0]), float(a[1]) if len(a) > 1 and not isinstance(a[1], str) else 1.0,
              e.sample_index), quantizable=True),
    Route(f"{P}/clip/stop", (Arg("name", "s"),), "stop a playing clip",
          "action", lambda act, b, a, e: act.stop_clip(str(a[0]))),
    Route(f"{P}/clip/stopall", (), "stop every clip",
          "action", lambda act, b, a, e: act.stop_all_clips()),
    Route(f"{P}/midi/learn", (Arg("name", "s"),),
          "MIDI learn: the next CC received controls parameter NAME (saved into the preset)",
          "action", lambda act, b, a, e: act.learn_midi(str(a[0]))),
    Route(f"{P}/midi/cancel", (), "cancel a pending MIDI learn",
          "action", lambda act, b, a, e: act.cancel_midi_learn()),
    # performer safety: no argument toggles (the window's keys b, z)
    Route(f"{P}/blackout", (Arg("on", "i", 0, 1, optional=True),),
          f"1: fade the picture to black ({BLACKOUT_OUT_S:g} s) and stop every clip; 0: fade the "
          f"picture back in ({BLACKOUT_IN_S:g} s; clips stay stopped); none: toggle (key b). "
          "The analysis and the show go on underneath",
          handler=lambda show, b, a, e: show.blackout(bool(a[0]) if a else None),
          action=lambda act, b, a, e: act.blackout(bool(a[0]) if a else None)),
    Route(f"{P}/panic", (),
          "black at once, every clip stopped, a freeze released, MIDI learn cancelled, every "
          "effect back to the preset's values and switches (key p); "
          f"{P}/blackout 0 (or b) brings the picture back",
          handler=lambda show, b, a, e: show.panic(),
          action=lambda act, b, a, e: act.panic()),
    Route(f"{P}/freeze", (Arg("on", "i", 0, 1, optional=True),),
          "1: hold the picture (latents and effects; the blackout still acts) while the "
          "analysis and the show go on; 0: show the live state again; none: toggle (key z)",
          handler=lambda show, b, a, e: show.freeze(bool(a[0]) if a else None)),
    Route(f"{P}/status", (Arg("reply_port", "i", 1, 65535, optional=True),),
          "reply /phosphene/status fps frame_ms generator_fps tempo_bpm preset thread_restarts "
          "errors input_overflows audio_age_ms to the sender "
          "(or to REPLY_PORT on the sender's host)", "reply"),
)

# Routes that only a recording carries (written by the show, never accepted from the network).
RECORDED: tuple[Route, ...] = (
    Route(PRESET_LOADED, (Arg("name", "s"), Arg("yaml", "s"), Arg("crossfade_s", "f", 0, math.inf),
                          Arg("base_dir", "s")),
          "a preset switch as it happened, with the preset's full YAML", "replay",
          lambda show, b, a, e: show.switch_to_recorded(*a)),
    Route(PRESET_EDITED, (Arg("name", "s"), Arg("yaml", "s"), Arg("crossfade_s", "f", 0, math.inf)),
          "an edit of the running preset's file applied live (live values kept), with the "
          "edited preset's full YAML", "replay",
          lambda show, b, a, e: show.edit_to_recorded(*a)),
)

# Replies phosphene sends (documented with the namespace).
REPLIES: tuple[Route, ...] = (
    Route(f"{P}/status", (Arg("fps", "f", 0, math.inf), Arg("frame_ms", "f", 0, math.inf),
                          Arg("generator_fps", "f", 0, math.inf), Arg("tempo_bpm", "f", 0, 300),
                          Arg("preset", "s"), Arg("thread_restarts", "i", 0, math.inf),
                          Arg("errors", "i", 0, math.inf),
                          Arg("input_overflows", "i", 0, math.inf),
                          Arg("audio_age_ms", "f", 0, math.inf)),
          "answer to /phosphene/status: thread restarts, errors and input overflows (audio "
          "blocks lost) counted since the start; how old the newest analysed audio was"),
    Route(f"{P}/error", (Arg("address", "s"), Arg("reason", "s")),
          "answer to a rejected message: what was wrong"),
)

_REPLY_ADDRESSES = frozenset(r.pattern for r in REPLIES)
# a reply sent to the address of a request (status): told apart by its arguments
_REQUESTS = {r.pattern: r for r in NAMESPACE if r.pattern in _REPLY_ADDRESSES}


def is_reply(address: str, args: "list[Any] | tuple[Any, ...]") -> bool:
    """Whether a message that came in is shaped like one of phosphene's own replies
    (``REPLIES``): every ``/phosphene/error``, and a ``/phosphene/status`` with more arguments
    than a request takes (a request has none or a reply port; the reply has seven). A reply is
    never answered, not even with an error: that is how two engines, or an engine asked to
    reply to its own port, would answer each other for ever. A ``/phosphene/status`` with one
    argument of the wrong type is a bad request, and is answered as one."""
    if address not in _REPLY_ADDRESSES:
        return False
    request = _REQUESTS.get(address)
    return request is None or len(args) > len(request.args)


@dataclass
class NamespaceContext:
    """What the running scene offers; the server reads it from another thread, so the engine
    replaces the whole object (an atomic assignment) rather than mutating it."""

    parameters: Mapping[str, ParameterSpec] = field(default_factory=dict)
    effects: frozenset[str] = frozenset()
    modes: frozenset[str] = frozenset(MODES)


class Rejected(Exception):
    """A message that does not fit the namespace; ``str()`` says why."""


def _match(route: Route, segments: list[str]) -> dict[str, str] | None:
    pattern = route.segments
    if len(pattern) != len(segments):
        return None
    bound: dict[str, str] = {}
    for p, s in zip(pattern, segments):
        if p.startswith("<") and p.endswith(">"):
            if not s:
                return None
            bound[p[1:-1]] = s
        elif p != s:
            return None
    return bound


def _find(address: str, routes: tuple[Route, ...]) -> tuple[Route, dict[str, str]] | None:
    segments = address.strip("/").split("/") if address.startswith("/") else []
    for route in routes:
        bound = _match(route, segments)
        if bound is not None:
            return route, bound
    return None


def find_route(address: str) -> tuple[Route, dict[str, str]] | None:
    """The public route (one a control surface may send) for ``address``, and its bound
    placeholders; None when there is none."""
    return _find(address, NAMESPACE)


@functools.lru_cache(maxsize=1024)
def _resolve(address: str) -> tuple[Route, tuple[tuple[str, str], ...]] | None:
    found = _find(address, NAMESPACE + RECORDED)
    return None if found is None else (found[0], tuple(found[1].items()))


def perform(events: Iterable[ControlEvent], show: Any, actions: Actions | None = None,
            on_error: Callable[[ControlEvent, Exception], None] | None = None) -> None:
    """Carry out the events due before a hop, by the event rule (``show/events.py``): first
    the ``action`` and ``replay`` events in order (a preset switch happens where it was asked
    for), then the ``show`` events in order (so a parameter sent with a preset switch lands in
    the new preset). ``actions=None`` (offline render, replay): actions are a record only.

    Events were validated when they arrived; one that no longer fits (a preset switch took the
    parameter away, an old recording) is dropped, the show goes on. An exception from an
    action goes to ``on_error`` (the engine logs and counts it) and the rest still happen."""
    later: list[tuple[Route, dict, ControlEvent]] = []
    for event in events:
        found = _resolve(event.address)
        if found is None:
            continue
        route, bound = found[0], dict(found[1])
        if route.scope == "show":
            if route.action is not None and actions is not None:
                _call(route, actions, bound, event, on_error, route.action)
            later.append((route, bound, event))
        elif route.scope == "replay":
            _call(route, show, bound, event, on_error)
        elif route.scope == "action" and actions is not None:
            _call(route, actions, bound, event, on_error)
    for route, bound, event in later:
        _call(route, show, bound, event, on_error)


def _call(route: Route, target: Any, bound: dict, event: ControlEvent,
          on_error: Callable[[ControlEvent, Exception], None] | None,
          handler: Handler | None = None) -> None:
    acting = route.scope == "action" or handler is not None   # on the Actions
    try:
        (handler or route.handler)(target, bound, tuple(event.args), event)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        if acting and on_error is not None:
            on_error(event, exc)
        # a stale show event is dropped: validated upstream, the show goes on
    except Exception as exc:  # noqa: BLE001 - one bad event must not stop the show
        if on_error is None:
            raise
        on_error(event, exc)


def param_address(name: str) -> str:
    """The address that sets parameter ``name`` (MIDI CCs and the web page use it)."""
    return f"{P}/param/{name}"


def validate(address: str, args: "list[Any] | tuple[Any, ...]",
             context: NamespaceContext) -> tuple[Route, tuple[Any, ...]]:
    """Check one message against the namespace and the scene; returns the route and the
    arguments converted to their declared types, or raises ``Rejected`` saying why."""
    found = find_route(address)
    if found is None:
        raise Rejected(f"unknown address {address!r}; see `phosphene osc --list`")
    route, bound = found
    param_spec: ParameterSpec | None = None
    if "name" in bound and route.pattern.endswith("/param/<name>"):
        param_spec = context.parameters.get(bound["name"])
        if param_spec is None:
            raise Rejected(f"unknown parameter {bound['name']!r}; known: "
                           f"{', '.join(sorted(context.parameters))}")
    if "mode" in bound and bound["mode"] not in context.modes:
        raise Rejected(f"unknown mode {bound['mode']!r}; known: {', '.join(sorted(context.modes))}")
    if "effect" in bound:
        if bound["effect"] not in context.effects:
            raise Rejected(f"unknown effect {bound['effect']!r}; in the chain: "
                           f"{', '.join(sorted(context.effects)) or 'none'}")
        if "uniform" in bound:
            key = f"{bound['effect']}.{bound['uniform']}"
            param_spec = context.parameters.get(key)
            if param_spec is None:
                known = sorted(k.split(".", 1)[1] for k in context.parameters
                               if k.startswith(bound["effect"] + "."))
                raise Rejected(f"effect {bound['effect']!r} has no parameter {bound['uniform']!r}; "
                               f"known: {', '.join(known) or 'none'}")

    required = sum(1 for a in route.args if not a.optional)
    if not required <= len(args) <= len(route.args):
        want = str(required) if required == len(route.args) else f"{required}..{len(route.args)}"
        raise Rejected(f"{route.pattern} takes {want} argument(s) ({route.signature() or 'none'}), "
                       f"got {len(args)}")
    args, quantize = split_quantize(route, args)
    converted = []
    for spec, value in zip(route.args, args):
        converted.append(_convert(route, spec, value, param_spec))
    if quantize is not None:
        converted.append(quantize)
    if route.pattern.endswith("/midi/learn") and converted[0] not in context.parameters:
        raise Rejected(f"MIDI learn: unknown parameter {converted[0]!r}")
    return route, tuple(converted)


def split_quantize(route: Route, args: "list[Any] | tuple[Any, ...]") -> tuple[tuple, str | None]:
    """A quantizable route's arguments without its trailing ``beat|bar|off``, and that word
    (None when not given). The word is the last argument, after the required ones, whichever
    optional arguments come before it: ``/phosphene/clip/play kick bar`` and ``... kick 0.8
    bar`` both wait for the bar, and a preset named ``bar`` still loads with
    ``/phosphene/preset/load bar``."""
    args = tuple(args)
    required = sum(1 for a in route.args if not a.optional)
    if route.quantizable and len(args) > required and isinstance(args[-1], str):
        if args[-1] not in QUANTIZE_MODES:
            raise Rejected(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got "
                           f"{args[-1]!r}")
        return args[:-1], args[-1]
    return args, None


def quantize_of(event: ControlEvent, default: str = "off") -> str:
    """How ``event`` waits: ``off`` (now), ``beat`` or ``bar``; its own trailing word, else
    ``default`` (the running preset's) for a quantizable route, else ``off``."""
    found = _resolve(event.address)
    if found is None or not found[0].quantizable:
        return "off"
    _, word = split_quantize(found[0], event.args)
    return word if word is not None else default


def unquantized(event: ControlEvent) -> ControlEvent:
    """``event`` as it is done when its line comes: the word ``off`` last, so that a replay of
    the recorded event does it at once whatever the preset's ``quantize`` says."""
    found = _resolve(event.address)
    args, _ = split_quantize(found[0], event.args) if found is not None else (event.args, None)
    return ControlEvent(event.sample_index, event.address, tuple(args) + ("off",), event.origin,
                        event.reply_to)


def _convert(route: Route, spec: Arg, value: Any, param_spec: ParameterSpec | None) -> Any:
    if spec.type == "s":
        if not isinstance(value, str):
            raise Rejected(f"{spec.name} must be a string, got {type(value).__name__}")
        if spec.name == "name" and not is_safe_name(value):
            raise Rejected(f"{spec.name} {value!r} is not a name (letters, digits, _ - . only; "
                           "no paths)")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected(f"{spec.name} must be a number ({spec.type}), got {type(value).__name__}")
    if not math.isfinite(value):
        raise Rejected(f"{spec.name} must be finite, got {value}")
    if spec.type == "i":
        if float(value) != int(value):
            raise Rejected(f"{spec.name} must be an integer, got {value}")
        value = int(value)
    else:
        value = float(value)
    lo, hi = spec.minimum, spec.maximum
    if lo is None and param_spec is not None:
        lo, hi = param_spec.minimum, param_spec.maximum
    if lo is not None and not lo <= value <= hi:
        raise Rejected(f"{spec.name} {value:g} out of range [{lo:g}, {hi:g}]")
    return value


def format_namespace(routes: tuple[Route, ...] = NAMESPACE) -> str:
    """The namespace as aligned text lines (``phosphene osc --list``)."""
    rows = [(r.pattern, r.signature() or "-", r.help) for r in routes]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines.append("")
    lines.append("replies (sent to the sender):")
    for r in REPLIES:
        lines.append(f"  {r.pattern}  {r.signature()}  {r.help}")
    return "\n".join(lines)


def markdown_table(routes: tuple[Route, ...] = NAMESPACE) -> str:
    """The namespace as a Markdown table (pasted into the README; a test checks it)."""
    lines = ["| address | arguments | what it does |", "|---|---|---|"]
    for r in routes + REPLIES:
        sig = r.signature() or "–"
        help_text = r.help if r not in REPLIES else f"reply: {r.help}"
        lines.append(f"| `{r.pattern}` | `{sig}` | {help_text} |")
    return "\n".join(lines)


StatusProvider = Callable[[], dict]
