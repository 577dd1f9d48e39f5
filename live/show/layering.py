"""A second model in the picture: ``layer:`` in presets.

::

    model: builtin:abstract
    layer:
      model: portraits-512.pkl        # relative to the preset's folder, or any load_generator ref
      fade: 0.5                       # the parameter layer.fade: 0 = the preset's model only
      keyframes: [{seed: 3}, {seed: 9}]   # optional: default, the preset's own keyframes

The layer model may be of any architecture (another resolution, another ``w_dim``): it gets a
director of its own over its own latent space, built from the same preset (modes, settings) and
driven by the same parameters, mappings, features and keyframe events, so the two move in
lockstep; its keyframes are the same seeds resolved through its own mapping network. Each hop
the show puts its latents and the fade into the request (``Layer``); the generator renders the
layer model too when the fade is above 0 and blends the two frames before the effect chain.
Nothing here imports torch: the layer model's facts come from outside the core
(``GeneratorFacts.layer_facts``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phosphene.live.show.latents import lerp
from phosphene.live.show.params import ParameterSpec

FADE = "layer.fade"
FADE_SMOOTHING_MS = 80.0


@dataclass(frozen=True, eq=False)
class Layer:
    """What the generator renders for the layer: the layer model, how much of it is seen
    (``fade``: 0 = the show's model only, 1 = the layer model only) and its own latent request
    (``w`` [num_ws, w_dim] of the layer model, truncation applied; noise as the director says)."""

    model: str
    fade: float
    w: np.ndarray
    truncation_psi: float
    noise_strength: float
    noise_seed: int
    keyframe: int


def layer_parameter_specs(fade: float, model: str) -> dict[str, ParameterSpec]:
    return {FADE: ParameterSpec(FADE, 0.0, 1.0, fade, FADE_SMOOTHING_MS,
                                f"crossfade to the layer model {model} (0 = the preset's "
                                "model only, 1 = the layer model only)")}


def blend_layer(old: Layer | None, new: Layer | None, amount: float) -> Layer | None:
    """A preset crossfade (``amount`` 0 = old, 1 = new). The same layer model on both sides
    glides (latents and fade); a layer on one side only fades in or out with the crossfade;
    two different layer models (two latent spaces: nothing to interpolate) hand over half-way,
    the old one fading out over the first half and the new one in over the second."""
    if old is None and new is None:
        return None
    if old is not None and new is not None and old.model == new.model \
            and old.w.shape == new.w.shape:
        return Layer(new.model, old.fade + amount * (new.fade - old.fade),
                     lerp(old.w, new.w, amount),
                     old.truncation_psi + amount * (new.truncation_psi - old.truncation_psi),
                     old.noise_strength + amount * (new.noise_strength - old.noise_strength),
                     new.noise_seed if amount >= 0.5 else old.noise_seed, new.keyframe)
    if old is not None and new is not None:
        fading_out = amount < 0.5
        layer, weight = (old, 1.0 - 2.0 * amount) if fading_out else (new, 2.0 * amount - 1.0)
    else:
        layer, weight = (new, amount) if new is not None else (old, 1.0 - amount)
    return Layer(layer.model, layer.fade * weight, layer.w, layer.truncation_psi,
                 layer.noise_strength, layer.noise_seed, layer.keyframe)
