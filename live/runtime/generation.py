"""Latent requests -> generator frames: ``w`` through the synthesis network, with the noise the
director asked for.

The director says how strong the per-pixel noise is (``noise_strength``, a multiplier on each
layer's learned strength: 0 = none, 1 = as trained) and which pattern (``noise_seed``, new on an
onset). StyleGAN2 layers add ``noise map * learned strength``; for each call we fill one
preallocated ``[N, 1, R, R]`` map per layer (the seed's pattern times the request's strength, one
per batch item) and hand the maps to the synthesis network as an input (``noise=``), so one call
may mix seeds and strengths across its batch, no module state changes per call, and a compiled
or graph-captured synthesis reads the same buffers, filled in place, every frame.

A request may also bend the network (``request.bends``: feature-map ops after chosen blocks,
``models/stylegan2/bending.py``) and mix in a second model (``request.mix``: per-block weights,
written into ``G``'s synthesis parameters by a ``ModelMixer``). Both are data in the request, so
a frame is a function of its request alone; a batch whose requests bend or mix differently is
rendered in runs of equal structure (bend values may differ within a run: they are per-sample
parameters). A request with neither costs what it did before: no hook, no copy.

A request may carry a second model's latents (``request.layer``, a preset's ``layer:``): a
model of any architecture, rendered by its own ``FrameGenerator`` when the layer's fade is above
0 and blended into this model's frame (resized to it) before the effect chain. At fade 0 it is
not run and the frame is exactly the one without the layer; at fade 1 this model is not run.

Patterns are drawn from a CPU ``torch.Generator`` seeded with ``noise_seed``, layer by layer in
network order: the same seed gives the same pattern on every device and every run, which keeps
offline renders byte-identical and a replayed set frame-exact. The few most recent patterns stay
cached on the device (seeds change only on onsets) and the per-batch maps are preallocated.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from phosphene.errors import PhospheneError
from phosphene.live.show.bending import Bend, param_names
from phosphene.live.show.director import LatentRequest
from phosphene.live.show.layering import Layer
from phosphene.live.show.mixing import Mix
from phosphene.live.show.show import GeneratorFacts
from phosphene.models.loading import load_generator
from phosphene.models.stylegan2.bending import FeatureBend, by_resolution, resolve_channels
from phosphene.models.stylegan2.mixing import ModelMixer

PATTERN_CACHE_SIZE = 8

log = logging.getLogger(__name__)


def noise_layers(G) -> list[torch.nn.Module]:
    """The synthesis layers that add noise, in network order."""
    return [m for m in G.synthesis.modules() if getattr(m, "use_noise", False)
            and hasattr(m, "noise_const")]


class FrameGenerator:
    """Renders ``LatentRequest``s with generator ``G`` on ``device``.

    ``generate(request)`` -> ``[1, C, H, W]``; ``generate([r0, r1, ...])`` -> ``[N, C, H, W]``;
    float32 on the device, nominal [-1, 1]. Not thread-safe: one worker owns it (it fills its
    noise maps in place during a call).
    """

    def __init__(self, G, device: torch.device | str | None = None, *, max_batch: int = 8,
                 synthesis: Callable[..., torch.Tensor] | None = None,
                 force_fp32: bool = False):
        self.device = torch.device(device) if device is not None else next(G.parameters()).device
        self.G = G.to(self.device).eval().requires_grad_(False)
        self.synthesis = synthesis or G.synthesis
        self.force_fp32 = force_fp32
        self.num_ws, self.w_dim = int(G.num_ws), int(G.w_dim)
        self.max_batch = max(int(max_batch), 1)
        self._layers = noise_layers(G)
        with torch.no_grad():
            # a network trained (or built) without noise: skip the maps entirely
            self._has_noise = any(float(layer.noise_strength) != 0.0 for layer in self._layers)
        self._patterns: OrderedDict[int, list[torch.Tensor]] = OrderedDict()
        with torch.inference_mode():
            # inference tensors (filled in inference mode, read by a compiled synthesis that
            # was traced with inference tensors: see fast.input_signature)
            self._maps = [torch.empty([self.max_batch, 1, *layer.noise_const.shape[-2:]],
                                      device=self.device) for layer in self._layers] \
                if self._has_noise else []
        # network bending and model mixing: nothing is set up until a request asks for them
        self._block_channels = {b.resolution: b.out_channels for b in G.synthesis.blocks()}
        self._channels: dict[tuple, slice | torch.Tensor] = {}
        self._mixers: dict[str, ModelMixer] = {}
        self._mixed: ModelMixer | None = None    # the mixer whose blend is in G now
        # ``layer:`` models, loaded once each (the show's thread loads them at a preset load,
        # for their mapping network; the worker renders with them): reference -> generator
        self._layer_generators: dict[str, FrameGenerator] = {}
        self._layer_failed: set[str] = set()    # could not load: a frame renders without it
        self._layer_lock = threading.Lock()
        builtin = getattr(G, "builtin_name", None)
        self.model_name = getattr(G, "source", None) \
            or (f"builtin:{builtin}" if builtin else "the show's model")

    # -- noise -----------------------------------------------------------------------------------
    def pattern(self, seed: int) -> list[torch.Tensor]:
        """The noise maps of ``seed``: one ``[R, R]`` unit-normal map per noise layer."""
        cached = self._patterns.get(seed)
        if cached is not None:
            self._patterns.move_to_end(seed)
            return cached
        rng = torch.Generator(device="cpu").manual_seed(int(seed) % (2 ** 63))
        maps = [torch.randn(tuple(layer.noise_const.shape[-2:]), generator=rng).to(self.device)
                for layer in self._layers]
        self._patterns[seed] = maps
        while len(self._patterns) > PATTERN_CACHE_SIZE:
            self._patterns.popitem(last=False)
        return maps

    def _noise_maps(self, requests: Sequence[LatentRequest]) -> list[torch.Tensor] | None:
        if not self._has_noise or all(r.noise_strength == 0.0 for r in requests):
            return None
        n = len(requests)
        patterns = [self.pattern(r.noise_seed) for r in requests]
        out = []
        for li, buf in enumerate(self._maps):
            maps = buf[:n]
            for i, r in enumerate(requests):
                torch.mul(patterns[i][li], float(r.noise_strength), out=maps[i, 0])
            out.append(maps)
        return out

    def _zero_maps(self, n: int) -> list[torch.Tensor] | None:
        if not self._has_noise:
            return None
        for buf in self._maps:
            buf[:n].zero_()
        return [buf[:n] for buf in self._maps]

    # -- frames ----------------------------------------------------------------------------------
    def ws(self, requests: Sequence[LatentRequest]) -> torch.Tensor:
        w = np.stack([np.asarray(r.w, dtype=np.float32) for r in requests])
        if w.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"latent request w has shape {list(w.shape[1:])}, this generator "
                             f"takes [{self.num_ws}, {self.w_dim}]")
        # C-contiguous whatever the requests' arrays look like: a compiled synthesis is guarded
        # on strides, and a w broadcast along num_ws stacks into a transposed layout
        return torch.from_numpy(np.ascontiguousarray(w)).to(self.device)

    def generate(self, requests: LatentRequest | Sequence[LatentRequest]) -> torch.Tensor:
        """Frames for one request or a batch (split into ``max_batch`` chunks if longer)."""
        if isinstance(requests, LatentRequest):
            requests = [requests]
        if not requests:
            raise ValueError("generate() needs at least one latent request")
        if len(requests) > self.max_batch:
            return torch.cat([self.generate(requests[i:i + self.max_batch])
                              for i in range(0, len(requests), self.max_batch)])
        if any(r.layer is not None and r.layer.fade > 0.0 for r in requests):
            return self._layered(requests)
        if any(r.bends or r.mix is not None for r in requests):
            runs = _runs(requests)
            if len(runs) > 1:      # different bends or mix weights: one network per run
                return torch.cat([self.generate(run) for run in runs])
        self._apply_mix(requests[0].mix)
        with torch.inference_mode():
            ws = self.ws(requests)
            maps = self._noise_maps(requests)
            synthesis = self.synthesis
            if requests[0].bends:   # eager: a compiled synthesis knows no bends
                bends = self._bends(requests)

                def synthesis(ws, **kwargs):
                    return self.G.synthesis(ws, bends=bends, **kwargs)
            if maps is None and getattr(synthesis, "static_noise", False):
                # a compiled synthesis is captured with noise maps as inputs: zero maps keep it
                # on that one graph (a "none" call would compile a second one mid-show)
                maps = self._zero_maps(len(requests))
            if maps is None:
                return synthesis(ws, noise_mode="none", force_fp32=self.force_fp32)
            return synthesis(ws, noise_mode="const", force_fp32=self.force_fp32, noise=maps)

    def prepare(self, request: LatentRequest) -> None:
        """Check (and set up) what ``request`` bends and mixes, so that a mistake in a preset
        (a block the model does not have, a mix model that does not fit) is reported at start
        rather than by the first frame. Raises ``PhospheneError``."""
        if request.bends:
            with torch.inference_mode():
                self._bends([request])
        if request.mix is not None:
            self._mixer(request.mix.model)
        if request.layer is not None:
            self.layer_generator(request.layer.model)

    # -- a second model crossfaded in (``layer:``) ------------------------------------------------
    def layer_generator(self, model: str) -> "FrameGenerator":
        """The ``FrameGenerator`` of layer model ``model``, loaded on first use and kept for
        the run (switching back costs nothing). Raises ``PhospheneError`` naming the model."""
        found = self._layer_generators.get(model)
        if found is not None:
            return found
        with self._layer_lock:               # the show's thread and the worker may both ask
            found = self._layer_generators.get(model)
            if found is None:
                try:
                    G = load_generator(model, device=self.device)
                except PhospheneError as exc:
                    raise PhospheneError(f"layer.model: {exc}") from None
                found = FrameGenerator(G, self.device, max_batch=self.max_batch,
                                       force_fp32=self.force_fp32)
                channels = (int(G.img_channels), int(self.G.img_channels))
                if channels[0] != channels[1]:
                    raise PhospheneError(f"layer.model: {model} makes {channels[0]}-channel "
                                         f"images, {self.model_name} {channels[1]}-channel ones; "
                                         "they cannot be crossfaded")
                found.model_name = model
                self._layer_generators[model] = found
                log.info("layer model %s loaded (%dx%d)", model, G.img_resolution,
                         G.img_resolution)
        return found

    def _layered(self, requests: Sequence[LatentRequest]) -> torch.Tensor:
        """Frames of requests some of which show a layer: this model where the fade is below
        1, the layer model where it is above 0 (each in one batch per model), then
        ``lerp(own, layer, fade)`` with the layer's frame resized to this model's size."""
        fades = [0.0 if r.layer is None else min(max(float(r.layer.fade), 0.0), 1.0)
                 for r in requests]
        by_model: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            if fades[i] > 0.0:
                by_model.setdefault(r.layer.model, []).append(i)
        for model in list(by_model):
            if model not in self._layer_failed:
                try:
                    self.layer_generator(model)
                    continue
                except PhospheneError:
                    # said once (the worker's error log); then frames go on without it
                    self._layer_failed.add(model)
                    raise
            for i in by_model.pop(model):
                fades[i] = 0.0
        own_index = [i for i, f in enumerate(fades) if f < 1.0]
        own = self.generate([dataclasses.replace(requests[i], layer=None) for i in own_index]) \
            if own_index else None
        frames: list[torch.Tensor | None] = [None] * len(requests)
        for k, i in enumerate(own_index):
            frames[i] = own[k].to(torch.float32)
        with torch.inference_mode():
            for model, index in by_model.items():
                layer = self.layer_generator(model).generate(
                    [_layer_request(requests[i].sample_index, requests[i].layer) for i in index])
                layer = self._to_own_size(layer)
                for k, i in enumerate(index):
                    frames[i] = layer[k] if fades[i] >= 1.0 else torch.lerp(frames[i], layer[k],
                                                                            fades[i])
            return torch.stack(frames)

    def _to_own_size(self, frames: torch.Tensor) -> torch.Tensor:
        """Layer frames at this model's resolution: area-averaged when smaller (no aliasing),
        bilinear when larger; as they are when equal."""
        size = int(self.G.img_resolution)
        frames = frames.to(torch.float32)
        if tuple(frames.shape[-2:]) == (size, size):
            return frames
        with torch.inference_mode():
            if frames.shape[-1] > size:
                return F.interpolate(frames, size=(size, size), mode="area")
            return F.interpolate(frames, size=(size, size), mode="bilinear",
                                 align_corners=False)

    def layer_facts(self, model: str):
        """The show's facts about layer model ``model`` (loaded if need be): its mapping
        network (on this device), sizes and truncation centre."""
        return GeneratorFacts.from_generator(self.layer_generator(model).G, self.device)

    # -- network bending -------------------------------------------------------------------------
    def _resolved_channels(self, bend: Bend) -> slice | torch.Tensor:
        key = (bend.index, bend.at, bend.channels)
        found = self._channels.get(key)
        if found is None:
            where = f"bend[{bend.index}]"
            if bend.at not in self._block_channels:
                raise PhospheneError(
                    f"{where}.at: {self.model_name} has no {bend.at}x{bend.at} block; its blocks: "
                    f"{', '.join(str(r) for r in self._block_channels)}")
            found = resolve_channels(bend.channels, self._block_channels[bend.at],
                                     where=f"{where}.channels ({bend.at}x{bend.at} block)")
            if isinstance(found, torch.Tensor):
                found = found.to(self.device)
            self._channels[key] = found
        return found

    def _bends(self, requests: Sequence[LatentRequest]) -> dict:
        """The first request's bends (all share their structure), with every request's values
        as per-sample parameters."""
        plans = []
        for k, bend in enumerate(requests[0].bends):
            params = {name: torch.tensor([r.bends[k].values[j] for r in requests],
                                         dtype=torch.float32)
                      for j, name in enumerate(param_names(bend.op))}
            plans.append((bend.at, FeatureBend(bend.op, self._resolved_channels(bend), params,
                                               dict(bend.options))))
        return by_resolution(plans)

    # -- model mixing ----------------------------------------------------------------------------
    def _mixer(self, model: str) -> ModelMixer:
        """The mixer for ``model``, loaded once (kept for the run: switching back costs
        nothing)."""
        mixer = self._mixers.get(model)
        if mixer is None:
            if self._mixed is not None:     # a new mixer keeps G's own weights: put them back
                self._mixed.reset()
                self._mixed = None
            try:
                other = load_generator(model, device=self.device)
                mixer = ModelMixer(self.G, other, names=(self.model_name, model))
            except PhospheneError as exc:
                raise PhospheneError(f"mix.model: {exc}") from None
            self._mixers[model] = mixer
        return mixer

    def _apply_mix(self, mix: Mix | None) -> None:
        if mix is None:
            if self._mixed is not None:
                self._mixed.reset()
                self._mixed = None
            return
        mixer = self._mixer(mix.model)
        if self._mixed is not None and self._mixed is not mixer:
            self._mixed.reset()
        mixer.set(mix.weights)
        self._mixed = mixer


def _layer_request(sample_index: int, layer: Layer) -> LatentRequest:
    """The layer model's own request (no bends, no mix: those belong to the show's model)."""
    return LatentRequest(sample_index=sample_index, w=layer.w, w_raw=layer.w,
                         truncation_psi=layer.truncation_psi,
                         noise_strength=layer.noise_strength, noise_seed=layer.noise_seed,
                         keyframe=layer.keyframe)


def _runs(requests: Sequence[LatentRequest]) -> list[list[LatentRequest]]:
    """Consecutive requests that bend the same way (op, block, channels) and mix with the same
    weights: each run is one network, and the runs keep the requests' order."""
    runs: list[list[LatentRequest]] = []
    last = None
    for r in requests:
        key = (tuple(b.structure for b in r.bends), r.mix)
        if runs and key == last:
            runs[-1].append(r)
        else:
            runs.append([r])
            last = key
    return runs
