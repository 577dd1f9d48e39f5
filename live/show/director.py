"""The director: what the latents do, as a deterministic function of (scene, parameters,
features, time).

Each call to ``Director.update(values, frame, dt_s)`` advances the scene by ``dt_s`` seconds of
audio time and returns a ``LatentRequest``. The same inputs give the same outputs, so a live set
re-renders frame-exact offline.

How the modes combine (each is weighted by its ``mode.<name>`` parameter, 0..1; their
settings, ``DirectorSettings``, are the preset's ``modes:`` schema in ``modes.py``):

1. **home**: the current keyframe. ``next``/``prev``/``goto`` controls and ``onset-step``
   triggers move it to another keyframe with an eased transition.
2. **volume-blend** (the seed notebook): the level, through an envelope, gain and curve, blends
   from the home keyframe toward the keyframe ``toward`` steps ahead:
   ``w = lerp(home, B, weight * x)``.
3. **drift**: a continuous loop through all keyframes (a period per keyframe in beats or
   seconds, sped up by the level); ``w = lerp(w, drift, weight)``.
4. **layer-split**: band energies style-mix row groups of ``w`` toward other keyframes
   (bass -> coarse rows, mids -> middle rows, highs -> fine rows).
5. **travel**: the picture goes somewhere with the song. The home keyframe moves on to the
   next scene at phrase boundaries (every ``bars`` bars on the analyzer's bar grid; by the
   clock while no tempo is locked) and at the section changes the analyzer hears, with a
   tempo-locked transition; between moves it glides part of the way toward the scene after
   the next (so the move still lands somewhere new), or, on ``onset-density``, toward the
   next scene as far as the onsets drive it. Past the last keyframe come
   fresh seeds (``new_seeds``; each is added to the keyframes, so next/prev and capture work
   on them as on any other). A build pushes ``w`` toward a far latent (the scene stretched
   away from the centre of the latent space: more saturated, more extreme); a drop lands on
   a new scene within ``drop_length`` beats; a break calms the picture (less reactivity,
   closer to the centre).
6. **noise** and **truncation**: noise strength = ``noise`` parameter + an onset kick that
   decays; truncation psi is the ``psi`` parameter, applied around ``w_avg`` when known.

Interpolation is linear in W (where StyleGAN's latent space is closest to flat).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.show.bending import Bend, blend_bends
from phosphene.live.show.directions import LatentDirections
from phosphene.live.show.latents import ease, layer_rows, lerp, truncate
from phosphene.live.show.layering import Layer, blend_layer
from phosphene.live.show.mixing import Mix, blend_mix
from phosphene.live.show.mappings import apply_curve, follow
from phosphene.live.show.modes import DirectorSettings
from phosphene.live.analysis.tap_tempo import effective_tempo

MODES = ("volume-blend", "onset-step", "drift", "layer-split", "travel")

BEATS_PER_BAR = 4
FAR_STRETCH = 1.0        # the far latent: the scene twice as far from the centre
CALM_PULL = 0.3          # a full break pulls w this far toward the centre
ONSET_RATE_S = 2.0       # time constant of the onset rate the onset-density travel follows

# fresh scene k (0, 1, ...) -> its w [num_ws, w_dim]: the show maps seed ``seed_base + k``
SceneSource = Callable[[int], np.ndarray]


# -- output ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatentRequest:
    """What the generator worker should render: the newest one wins."""

    sample_index: int
    w: np.ndarray                   # [num_ws, w_dim] float32, truncation applied
    w_raw: np.ndarray               # the same before truncation (what "capture" keeps)
    truncation_psi: float
    noise_strength: float           # multiplier on the per-pixel noise maps (0 = none)
    noise_seed: int                 # which noise pattern; changes on onsets when reseeding
    keyframe: int                   # current (home) keyframe index
    # network bending and model mixing (``bending.py``, ``mixing.py``), set by the show;
    # empty / None when the preset has none (the generator then does no extra work)
    bends: tuple[Bend, ...] = ()
    mix: Mix | None = None
    # a second model crossfaded in before the effects (``layering.py``): its own latents and
    # the fade; None when the preset has no ``layer:`` (the generator then runs one model)
    layer: Layer | None = None


# -- state -----------------------------------------------------------------------------------
@dataclass
class _Transition:
    from_w: np.ndarray
    from_b: np.ndarray
    to_index: int
    length_s: float
    elapsed_s: float = 0.0
    easing: str = "cosine"

    @property
    def progress(self) -> float:
        return 1.0 if self.length_s <= 0 else min(self.elapsed_s / self.length_s, 1.0)


@dataclass
class DirectorState:
    index: int = 0                          # home keyframe (the transition's target)
    transition: _Transition | None = None
    blend_env: float = 0.0
    onset_count: int = 0
    drift_pos: float = 0.0                  # keyframes travelled by the drift loop
    layer_env: dict[str, float] = field(default_factory=dict)
    noise_env: float = 0.0
    noise_seed: int = 0
    time_s: float = 0.0
    travel_since_s: float = 0.0             # since the travel last moved on (the glide)
    since_move_s: float = math.inf          # since any move of the home keyframe (spacing)
    travel_progress: float = 0.0            # onset-density: how far toward the next scene
    onset_rate: float = 0.0                 # onsets per second, smoothed
    fresh_scenes: int = 0                   # fresh seeds added to the keyframes so far


class Director:
    """Owns a scene (keyframes + settings) and its state; ``update`` is deterministic."""

    def __init__(self, keyframes: list[np.ndarray], settings: DirectorSettings | None = None,
                 *, w_avg: np.ndarray | None = None, fresh_scene: SceneSource | None = None):
        if not keyframes:
            raise ValueError("a scene needs at least one keyframe")
        shape = keyframes[0].shape
        if len(shape) != 2 or any(k.shape != shape for k in keyframes):
            raise ValueError(f"keyframes must all be [num_ws, w_dim]; got "
                             f"{[list(k.shape) for k in keyframes]}")
        self.keyframes = [np.asarray(k, dtype=np.float32) for k in keyframes]
        self.settings = DirectorSettings() if settings is None else settings
        self.w_avg = None if w_avg is None else np.asarray(w_avg, dtype=np.float32)
        self.fresh_scene = fresh_scene
        # the centre the far latent and the calm are measured from: the truncation centre,
        # or (unknown) the mean of the keyframes
        self._center = (np.broadcast_to(self.w_avg, shape).astype(np.float32)
                        if self.w_avg is not None and self.w_avg.shape[-1] == shape[1]
                        else np.mean(self.keyframes, axis=0).astype(np.float32))
        self.state = DirectorState()
        self.last: LatentRequest | None = None
        # the preset's latent directions (``directions.py``), set by the show; None: none
        self.directions: LatentDirections | None = None

    @property
    def num_ws(self) -> int:
        return self.keyframes[0].shape[0]

    def keyframe(self, index: int) -> np.ndarray:
        return self.keyframes[index % len(self.keyframes)]

    # -- controls ------------------------------------------------------------------------------
    def goto(self, index: int, *, length_s: float | None = None, easing: str = "cosine",
             from_w: np.ndarray | None = None) -> None:
        """Start an eased move of the home keyframe to ``index`` (wraps around) from the home
        latent now (or ``from_w``: where the picture is, the travel's glide included)."""
        s = self.state
        length = self.settings.transition_ms / 1000.0 if length_s is None else length_s
        s.transition = _Transition(from_w=self._home_w() if from_w is None else from_w,
                                   from_b=self._home_b(),
                                   to_index=index % len(self.keyframes),
                                   length_s=max(length, 0.0), easing=easing)
        s.index = index % len(self.keyframes)
        s.travel_since_s = s.since_move_s = 0.0
        s.travel_progress = 0.0
        self._ensure_next_scene()

    def _ensure_next_scene(self) -> None:
        """With fresh seeds, the two scenes after the home one always exist (the travel glides
        toward them, volume-blend's B is the next): past the last keyframe, add fresh seeds."""
        tv = self.settings.travel
        while (tv.new_seeds and self.fresh_scene is not None and tv.weight > 0.0
               and self.state.index + 2 >= len(self.keyframes)):
            w = np.asarray(self.fresh_scene(self.state.fresh_scenes), dtype=np.float32)
            self.keyframes.append(w.reshape(self.keyframes[0].shape).copy())
            self.state.fresh_scenes += 1

    def step(self, delta: int = 1, **kwargs) -> None:
        self.goto(self.state.index + delta, **kwargs)

    def capture(self, w: np.ndarray | None = None) -> int:
        """Add ``w`` (default: the latent on screen, before truncation) as a new keyframe;
        returns its index."""
        if w is None:
            w = self.last.w_raw if self.last is not None else self._home_w()
        self.keyframes.append(np.array(w, dtype=np.float32, copy=True))
        return len(self.keyframes) - 1

    # -- the pieces ----------------------------------------------------------------------------
    def _home_w(self) -> np.ndarray:
        t = self.state.transition
        target = self.keyframe(self.state.index)
        if t is None or t.progress >= 1.0:
            return target
        return lerp(t.from_w, target, ease(t.progress, t.easing))

    def _home_b(self) -> np.ndarray:
        t = self.state.transition
        target = self.keyframe(self.state.index + self.settings.volume_blend.toward)
        if t is None or t.progress >= 1.0:
            return target
        return lerp(t.from_b, target, ease(t.progress, t.easing))

    def _drift_w(self) -> np.ndarray:
        pos = self.state.drift_pos
        i = math.floor(pos)
        frac = ease(pos - i, self.settings.drift.easing)
        return lerp(self.keyframe(i), self.keyframe(i + 1), frac)

    def _beats_to_s(self, beats: float, tempo_bpm: float) -> float:
        return beats * 60.0 / tempo_bpm

    # -- travel --------------------------------------------------------------------------------
    def _step_length_s(self, length: float, unit: str, tempo: float) -> float:
        if unit == "ms":
            return length / 1000.0
        beats = length * BEATS_PER_BAR if unit == "bars" else length
        return self._beats_to_s(beats, tempo)

    @staticmethod
    def _glide_ahead(tv) -> int:
        """Which scene the picture glides toward between moves: on onset density, the next
        one (the glide is the travel and arrives there); on phrases and sections, the one
        after it, so the picture keeps moving without using up the next move (which lands
        somewhere the glide did not go: a visible change)."""
        return 1 if "onset-density" in tv.on else 2

    def _travel(self, tv, frame: FeatureFrame, dt_s: float, tempo: float,
                weight: float) -> float:
        """Advance the travel by ``dt_s``: move on to the next scene when a trigger says so.
        Returns how far the picture glides toward the next scene now (0..1)."""
        s = self.state
        s.travel_since_s += dt_s
        s.since_move_s += dt_s
        phrase_s = self._beats_to_s(tv.bars * BEATS_PER_BAR, tempo)
        spaced = s.since_move_s >= self._beats_to_s(tv.min_beats, tempo)
        s.onset_rate = follow(s.onset_rate, (1.0 / dt_s if frame.onset else 0.0) if dt_s > 0
                              else s.onset_rate, dt_s, ONSET_RATE_S * 1000.0,
                              ONSET_RATE_S * 1000.0)
        self._ensure_next_scene()

        move = False
        if "phrase" in tv.on:
            if frame.tempo_bpm > 0.0:
                # the analyzer's bar grid, anchored at the last section change
                move |= frame.bar and frame.bar_index % tv.bars == 0 and spaced
            else:
                move |= s.travel_since_s >= phrase_s     # no beat to count: the clock
        if "section" in tv.on:
            move |= frame.section and spaced
        if "onset-density" in tv.on and phrase_s > 0.0:
            s.travel_progress += dt_s / phrase_s * s.onset_rate / tv.density
            if s.travel_progress >= 1.0:
                # the glide has arrived: the next scene becomes home without a transition
                self.goto(s.index + 1, length_s=0.0)
                return 0.0
        glide = (min(s.travel_progress, 1.0) if "onset-density" in tv.on
                 else tv.glide * min(s.travel_since_s / phrase_s, 1.0) if phrase_s > 0 else 0.0)
        glide *= weight

        if tv.drop and frame.drop:
            drop_s = self._beats_to_s(tv.drop_length, tempo)
            t = s.transition
            if not spaced and t is not None and t.progress < 1.0:
                # the move to this scene has just begun (the section change of the same
                # drop): land it now instead of moving again
                t.length_s = min(t.length_s, t.elapsed_s + drop_s)
                return glide
            move, length_s = True, drop_s
        else:
            length_s = self._step_length_s(tv.length, tv.unit, tempo)
        if move:
            here = lerp(self._home_w(), self.keyframe(s.index + self._glide_ahead(tv)), glide)
            self.goto(s.index + 1, length_s=length_s, easing=tv.easing, from_w=here)
            return 0.0
        return glide

    # -- the update ----------------------------------------------------------------------------
    def update(self, values: dict[str, float], frame: FeatureFrame, dt_s: float) -> LatentRequest:
        """Advance by ``dt_s`` seconds and return the latent request for ``frame``'s time.

        ``values`` are the current (modulated) parameter values: ``mode.<name>`` weights,
        ``psi``, ``noise``, ``speed``, ``blend``, ``reactivity``, ``tempo_bpm``.
        """
        s, cfg = self.state, self.settings
        s.time_s += dt_s
        tempo = effective_tempo(values.get("tempo_bpm", 0.0), frame.tempo_bpm)
        reactivity = values.get("reactivity", 1.0)
        weight = {m: values.get(f"mode.{m}", 0.0) for m in MODES}

        if s.transition is not None:
            s.transition.elapsed_s += dt_s
            if s.transition.progress >= 1.0:
                s.transition = None

        # onset-step: a trigger (every Nth) moves the home keyframe
        os_cfg = cfg.onset_step
        triggered = frame.onset if os_cfg.trigger == "onset" else frame.beat
        if weight["onset-step"] > 0.0 and triggered:
            s.onset_count += 1
            if s.onset_count % max(os_cfg.every, 1) == 0:
                length_s = (self._beats_to_s(os_cfg.length, tempo) if os_cfg.unit == "beats"
                            else os_cfg.length / 1000.0)
                self.step(os_cfg.step, length_s=length_s, easing=os_cfg.easing)

        # travel: move on at phrase boundaries, section changes and drops (or as onsets drive)
        tv = cfg.travel
        glide = 0.0
        calm = 0.0
        if weight["travel"] > 0.0:
            glide = self._travel(tv, frame, dt_s, tempo, weight["travel"])
            calm = min(weight["travel"] * tv.calm * frame.breakdown, 1.0)
            reactivity *= 1.0 - calm

        w = self._home_w()
        if glide > 0.0:
            w = lerp(w, self.keyframe(s.index + self._glide_ahead(tv)), glide)

        # volume-blend
        vb = cfg.volume_blend
        raw = frame.source(vb.source)
        s.blend_env = follow(s.blend_env, raw, dt_s, vb.attack_ms, vb.release_ms)
        x = vb.offset + vb.gain * reactivity * apply_curve(s.blend_env, vb.curve, vb.curve_k)
        x = min(max(x + values.get("blend", 0.0), 0.0), 1.0)
        if weight["volume-blend"] > 0.0:
            w = lerp(w, self._home_b(), weight["volume-blend"] * x)

        # drift: advance the loop position, faster when loud
        dr = cfg.drift
        seconds_per_keyframe = (self._beats_to_s(dr.period, tempo) if dr.unit == "beats"
                                else dr.period)
        speed = values.get("speed", 1.0) * (1.0 + dr.level_speed * reactivity * frame.level)
        if seconds_per_keyframe > 0:
            s.drift_pos = (s.drift_pos + dt_s * speed / seconds_per_keyframe) % len(self.keyframes)
        if weight["drift"] > 0.0:
            w = lerp(w, self._drift_w(), weight["drift"])

        # layer-split: each band style-mixes its row group toward another keyframe
        rows = layer_rows(self.num_ws)
        w = np.array(w, dtype=np.float32, copy=True)     # never write into a keyframe
        for group, g in cfg.layer_split.groups.items():
            env = follow(s.layer_env.get(group, 0.0), frame.source(g.source), dt_s,
                         g.attack_ms, g.release_ms)
            s.layer_env[group] = env
            amount = min(max(weight["layer-split"] * g.gain * reactivity
                             * apply_curve(env, g.curve), 0.0), 1.0)
            if amount > 0.0:
                sl = rows[group]
                toward = s.index + g.keyframe if g.relative else g.keyframe
                w[sl] = lerp(w[sl], self.keyframe(toward)[sl], amount)

        # travel, continued: a build stretches the picture away from the centre (the far
        # latent), a break pulls it in
        if weight["travel"] > 0.0:
            push = weight["travel"] * tv.build * frame.build
            if push > 0.0:
                w = lerp(w, self._center + (1.0 + FAR_STRETCH) * (w - self._center), push)
            if calm > 0.0:
                w = lerp(w, self._center, CALM_PULL * calm)

        # noise: an onset kick that decays
        nz = cfg.noise
        if frame.onset:
            s.noise_env = 1.0
            if nz.reseed_on_onset:
                s.noise_seed += 1
        else:
            s.noise_env = follow(s.noise_env, 0.0, dt_s, 0.0, nz.decay_ms)
        noise_strength = max(values.get("noise", 0.0) + nz.onset_amount * reactivity * s.noise_env,
                             0.0)

        psi = values.get("psi", 1.0)
        w_raw = w
        w_out = truncate(w_raw, self.w_avg, psi)
        if self.directions is not None:
            # after truncation, so a knob moves the picture as far at any psi; w_raw (what
            # capture keeps) stays without it, like the effects
            w_out = self.directions.apply(w_out, values)
        self.last = LatentRequest(
            sample_index=frame.sample_index, w=w_out, w_raw=w_raw,
            truncation_psi=psi, noise_strength=noise_strength, noise_seed=s.noise_seed,
            keyframe=s.index)
        return self.last


def crossfade(old: LatentRequest, new: LatentRequest, amount: float) -> LatentRequest:
    """Blend two directors' outputs (switching presets live): ``amount`` 0 = old, 1 = new."""
    a = ease(amount, "cosine")
    return LatentRequest(
        sample_index=new.sample_index, w=lerp(old.w, new.w, a), w_raw=lerp(old.w_raw, new.w_raw, a),
        truncation_psi=old.truncation_psi + a * (new.truncation_psi - old.truncation_psi),
        noise_strength=old.noise_strength + a * (new.noise_strength - old.noise_strength),
        noise_seed=new.noise_seed if a >= 0.5 else old.noise_seed, keyframe=new.keyframe,
        bends=blend_bends(old.bends, new.bends, a), mix=blend_mix(old.mix, new.mix, a),
        layer=blend_layer(old.layer, new.layer, a))
