"""What the window's overlay shows on stage: the show's figures and warnings.

``OverlayFeed`` runs inside the display loop (a window only; headless runs have no overlay).
Every frame it reads the newest hop's level and beat phase for the meter and the beat lamp (a
few attribute reads; the window writes two uniforms). Twice a second it gathers an
``OverlayInfo`` from the engine and turns it into text lines (``overlay_lines``, a pure
function, tested without a window), which the window rasterises (``render/overlay.py`` draws
them and has the line conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from phosphene.render.overlay import LAMP, METER, UPDATE_EVERY_S, WARNING

SILENT_WARNING_S = 10.0          # the input below the noise gate this long: say so
METER_FLOOR_DBFS = -60.0         # the meter's bar spans this .. 0 dBFS
# the generator is "behind" when it makes fewer frames than this share of the display's; the
# engine's own verdict wins where it has one (``generator_behind`` in its status, else the
# display budget's ``governor.behind``: the GAN frame on screen lags the music)
GENERATOR_BEHIND_RATIO = 0.2
LAMP_HOLD_S = 0.4                # an activity lamp stays lit this long after a message


@dataclass(frozen=True)
class OverlayInfo:
    """One look at the running show, for the overlay."""

    input_dbfs: float = -math.inf       # raw RMS of the newest hop
    silent_s: float = 0.0               # how long the input has been below the noise gate
    tempo_bpm: float = 0.0              # the tempo the show follows (0: unknown)
    tempo_source: str = ""              # "set" (tap or OSC), "analyzer", "default" (none heard)
    onsets: int = 0                     # onsets detected so far
    preset: str = ""
    keyframe: int = 0                   # home keyframe index
    keyframes: int = 0                  # how many the scene has
    keyframe_label: str = ""            # "seed 23", "slerp 23-42 @ 0.50", "w: file.npy", ...
    clips: tuple[str, ...] = ()         # clips playing now
    osc: int | None = None              # OSC messages accepted so far (None: no OSC server)
    midi: int | None = None             # MIDI messages routed so far (None: no MIDI input)
    midi_learn: str | None = None       # the parameter a MIDI learn is armed for
    display_fps: float = 0.0
    generator_fps: float = 0.0
    generator_behind: bool = False
    blackout: float = 0.0               # 0 picture .. 1 black
    blackout_on: bool = False           # heading to black
    frozen: bool = False
    errors: int = 0
    restarts: int = 0                   # supervised threads restarted


def meter_level(dbfs: float) -> float:
    """The meter's fill, 0..1, for a level in dBFS (``METER_FLOOR_DBFS`` .. 0)."""
    if not math.isfinite(dbfs):
        return 0.0 if dbfs < 0 else 1.0
    return min(max(1.0 - dbfs / METER_FLOOR_DBFS, 0.0), 1.0)


def overlay_lines(info: OverlayInfo) -> list[str]:
    """The overlay's text for ``info``: the meter row first, then the show, then warnings
    (lines starting with ``WARNING``). Lamps, in order: beat (the meter's), OSC, MIDI."""
    level = f"{info.input_dbfs:5.1f} dBFS" if math.isfinite(info.input_dbfs) else "silence"
    lines = [f"{METER}in {level}\tbeat"]
    if info.tempo_bpm > 0:
        tempo = f"{info.tempo_bpm:.1f} BPM ({info.tempo_source or 'analyzer'})"
    else:
        tempo = "tempo -"
    lines.append(f"{tempo}  ·  onsets {info.onsets}")
    keyframe = f"keyframe {info.keyframe + 1}/{info.keyframes}" if info.keyframes else "keyframe -"
    if info.keyframe_label:
        keyframe += f" ({info.keyframe_label})"
    lines.append(f"preset {info.preset}  ·  {keyframe}")
    osc = f"OSC {LAMP}{info.osc}" if info.osc is not None else "OSC off"
    midi = f"MIDI {LAMP}{info.midi}" if info.midi is not None else "MIDI off"
    lines.append(f"{osc}    {midi}    generator {info.generator_fps:.1f} fps")
    if info.clips:
        lines.append("clips: " + ", ".join(info.clips))
    if info.midi_learn:
        lines.append(f"MIDI learn: move a control for {info.midi_learn}")
    # warnings: what a performer must not miss
    if info.blackout_on:
        lines.append(WARNING + ("BLACKOUT" if info.blackout >= 1.0 else "fading to black"))
    elif info.blackout > 0.0:
        lines.append(WARNING + "fading in from black")
    if info.frozen:
        lines.append(WARNING + "FROZEN (the picture is held)")
    if info.silent_s >= SILENT_WARNING_S:
        lines.append(WARNING + f"input silent {info.silent_s:.0f} s")
    if info.generator_behind:
        lines.append(WARNING + f"generator behind ({info.generator_fps:.1f} fps; display "
                     f"{info.display_fps:.0f} fps)")
    if info.errors or info.restarts:
        parts = []
        if info.errors:
            parts.append(f"{info.errors} error{'s' * (info.errors != 1)}")
        if info.restarts:
            parts.append(f"{info.restarts} thread restart{'s' * (info.restarts != 1)}")
        lines.append(WARNING + ", ".join(parts) + " (see the report)")
    return lines


def keyframe_label(preset: Any, index: int) -> str:
    """How a preset's keyframe was made ("seed 23"); "captured" past the preset's list."""
    keyframes = getattr(preset, "keyframes", None) or []
    if not 0 <= index < len(keyframes):
        return "captured"
    k = keyframes[index]
    if hasattr(k, "seed"):
        return f"seed {k.seed}"
    if hasattr(k, "slerp"):
        return f"slerp {k.slerp[0]}-{k.slerp[1]} @ {k.t:.2f}"
    if hasattr(k, "project"):
        return f"projected {str(k.project).rsplit('/', 1)[-1]}"
    if getattr(k, "key", None):
        return f"w: {str(getattr(k, 'w', '')).rsplit('/', 1)[-1]} [{k.key}]"
    return f"w: {str(getattr(k, 'w', '')).rsplit('/', 1)[-1]}"


class OverlayFeed:
    """Feeds a window's overlay from a running engine (the display loop calls ``frame``)."""

    def __init__(self, engine: Any):
        self.engine = engine
        self._next_refresh = 0.0
        self._sound_at: int | None = None        # sample index of the newest hop with sound
        self._osc_seen = self._midi_seen = 0
        self._osc_lit_until = self._midi_lit_until = 0.0

    def frame(self, window: Any, now: float) -> None:
        """Once per displayed frame: the meter and beat lamp; the text twice a second."""
        session = self.engine.session
        heard = session.last_frame if session is not None else None
        if heard is not None and (not heard.gated or self._sound_at is None):
            self._sound_at = heard.sample_index
        if not window.overlay_visible:
            return
        if now >= self._next_refresh:
            self._next_refresh = now + UPDATE_EVERY_S
            info = self.collect(now)
            window.set_overlay_lines(overlay_lines(info))
        level = beat = 0.0
        if heard is not None:
            level = meter_level(heard.rms_dbfs)
            if heard.tempo_bpm > 0:       # lit on the beat, fading over a quarter beat
                beat = max(1.0 - 4.0 * heard.beat_phase, 0.0)
        # the lamps in the order the lines have them: beat, then OSC and MIDI where they run
        lamps = (beat,)
        if self.engine.osc is not None:
            lamps += (float(now < self._osc_lit_until),)
        if self.engine.midi is not None:
            lamps += (float(now < self._midi_lit_until),)
        window.set_overlay_levels(level, lamps)

    def collect(self, now: float) -> OverlayInfo:
        """An ``OverlayInfo`` from the engine as it is now (tolerates parts it lacks)."""
        e = self.engine
        state, show, session = e.state, e.show, e.session
        status: dict = {}
        try:
            status = e._status()
        except Exception:  # noqa: BLE001 - the overlay must never take the display down
            status = {}
        fps = float(status.get("fps", 0.0) or 0.0)
        gen_fps = float(status.get("generator_fps", 0.0) or 0.0)
        behind = status.get("generator_behind")
        if behind is None and getattr(e, "governor", None) is not None:
            behind = e.governor.behind           # the display budget's verdict
        if behind is None:
            behind = fps > 0 and 0 < gen_fps < GENERATOR_BEHIND_RATIO * fps
        heard = session.last_frame if session is not None else None
        silent_s = 0.0
        if heard is not None and self._sound_at is not None:
            silent_s = (heard.sample_index - self._sound_at) / heard.sample_rate
        osc = midi = None
        if e.osc is not None:
            osc = sum(e.osc.stats.snapshot()["accepted"].values())
            if osc != self._osc_seen:
                self._osc_seen, self._osc_lit_until = osc, now + LAMP_HOLD_S
        if e.midi is not None:
            midi = int(e.midi.router.accepted)
            if midi != self._midi_seen:
                self._midi_seen, self._midi_lit_until = midi, now + LAMP_HOLD_S
        tempo_set = state is not None and state.values.get("tempo_bpm", 0.0) > 0
        tempo_heard = heard is not None and heard.tempo_bpm > 0
        keyframe = state.request.keyframe if state is not None else 0
        return OverlayInfo(
            input_dbfs=heard.rms_dbfs if heard is not None else -math.inf,
            silent_s=silent_s,
            tempo_bpm=show.controls.tempo_bpm if show is not None else 0.0,
            tempo_source="set" if tempo_set else "analyzer" if tempo_heard else "default",
            onsets=e.counters.onsets,
            preset=state.preset_name if state is not None else "",
            keyframe=keyframe,
            keyframes=len(show.director.keyframes) if show is not None else 0,
            keyframe_label=keyframe_label(show.preset, keyframe) if show is not None else "",
            clips=tuple(e.clips.playing) if e.clips is not None else (),
            osc=osc, midi=midi,
            midi_learn=e.midi.router.learning if e.midi is not None else None,
            display_fps=fps, generator_fps=gen_fps, generator_behind=bool(behind),
            blackout=state.blackout if state is not None else 0.0,
            blackout_on=show.blacked_out if show is not None else False,
            frozen=state.frozen if state is not None else False,
            errors=int(status.get("errors", 0) or 0),
            restarts=int(status.get("thread_restarts", 0) or 0))
