"""Opt-in compiled synthesis for live use: one fixed batch size, the latest ws in, a frame out.

``compile_for_live(G)`` returns a :class:`LiveSynthesis` whose ``__call__(ws, noise_mode=...)``
renders like ``G.synthesis(ws, noise_mode=...)`` (the live engine's ``FrameGenerator`` uses it in
place of ``G.synthesis``; ``live_compile.py`` decides when). It tries ``torch.compile``, warms it
up, checks the compiled output against eager on the same ws, and falls back to eager (logging
why) when compilation is unavailable (no C++ compiler, unsupported backend such as some MPS
builds) or disagrees.

On CUDA the compiled network is then captured in a plain CUDA graph (:class:`CudaGraphCall`):
static ws, noise and output buffers, so a batch-1 frame costs one graph launch instead of ~100
kernel launches. Not ``mode="reduce-overhead"``: its CUDA graph trees keep their state in the
thread that first compiled (torch 2.11 asserts when another Python thread calls the function,
pytorch/pytorch#123177), and the live engine compiles on a background thread and renders on
the generator's worker thread. A plain graph replays on whichever thread and stream call it.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from phosphene.models.stylegan2 import aot

log = logging.getLogger(__name__)

# fp32 compiled kernels reorder sums; fp16 blocks are looser still.
_AGREE_ATOL = {torch.float32: 1e-3, torch.float16: 5e-2}

class LiveSynthesis:
    """Calls a (possibly compiled) synthesis network; ``compiled`` says which one runs."""

    def __init__(self, G: nn.Module, batch_size: int, noise_mode: str, force_fp32: bool):
        self.G = G
        self.batch_size = batch_size
        self.noise_mode = noise_mode
        self.force_fp32 = force_fp32
        self.compiled = False
        self.reason = "eager"
        self._fn = self._eager
        # compiled with noise maps as an input: callers pass maps (zeros for none) every call
        self.static_noise = False
        self._signature: tuple | None = None    # of the inputs the compile was made for
        self.eager_calls = 0                    # compiled, but called with other inputs
        # what dynamo does with inputs the signature check let through but its guards reject:
        # run eager (a recompile mid-show stalls frames for seconds, and one on another thread
        # than the process's first compile crashed torch 2.11). Tests use "fail_on_recompile".
        self.stance = "eager_on_recompile"

    def _eager(self, ws: torch.Tensor, noise_mode: str | None = None,
               noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.G.synthesis(ws, noise_mode=noise_mode or self.noise_mode,
                                force_fp32=self.force_fp32, noise=noise)

    def __call__(self, ws: torch.Tensor, noise_mode: str | None = None,
                 force_fp32: bool | None = None,
                 noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``ws [batch_size, num_ws, w_dim]`` -> image, called like ``G.synthesis`` (so a
        ``FrameGenerator`` can use it as its synthesis). Another ``noise_mode`` is compiled on
        first use (one graph per mode); another batch size or ``force_fp32`` runs eager.
        ``noise``: per-convolution maps (``SynthesisNetwork.forward``), inputs of the graph. The
        result of a CUDA graph is a copy: the graph's own output is overwritten by the next
        call, and a live frame stays on screen longer than that."""
        if (force_fp32 is not None and force_fp32 != self.force_fp32) \
                or ws.shape[0] != self.batch_size:
            self.eager_calls += self.compiled
            with torch.inference_mode():
                return self.G.synthesis(ws, noise_mode=noise_mode or self.noise_mode,
                                        force_fp32=self.force_fp32 if force_fp32 is None
                                        else force_fp32, noise=noise)
        mode = noise_mode or self.noise_mode
        with torch.inference_mode():
            if not self.compiled:
                return self._fn(ws, mode, noise)
            # plain tensors from callers outside the live path (benchmarks, scripts) as
            # inference tensors, which is what was compiled: a copy of a few KB, not a guard miss
            if not ws.is_inference():
                ws = ws.clone()
            if noise is not None and not all(m.is_inference() for m in noise):
                noise = [m if m.is_inference() else m.clone() for m in noise]
            if input_signature(ws, mode, noise) != self._signature:
                # inputs the compile did not see (another layout, noise or none): eager
                self.eager_calls += 1
                return self._eager(ws, mode, noise)
            try:
                with torch.compiler.set_stance(self.stance):
                    out = self._fn(ws, mode, noise)
            except Exception as exc:  # noqa: BLE001 - a compiled call that fails: eager on
                if self.stance == "fail_on_recompile":
                    raise                        # tests want to see it
                self.compiled, self._fn = False, self._eager
                self.reason = f"compiled call failed, eager from now on ({type(exc).__name__}: " \
                    f"{str(exc)[:200]})"
                log.error("live synthesis: %s", self.reason)
                return self._eager(ws, mode, noise)
        return out.clone() if out.is_cuda else out


class CudaGraphCall:
    """A compiled synthesis captured in one CUDA graph, called like ``LiveSynthesis._eager``.

    The capture reads ``ws`` and the noise maps from static buffers this object owns; a call
    copies the caller's tensors into them (on the caller's current stream), replays the graph
    there and returns the static output, which the next call overwrites. Replaying is a CUDA
    call like any other: any thread may do it (one at a time), which CUDA graph trees are not
    (see the module's docstring)."""

    def __init__(self, fn, ws: torch.Tensor, noise_mode: str,
                 noise: list[torch.Tensor] | None, warmup_calls: int = 3) -> None:
        self.ws = ws.clone()
        self.noise = None if noise is None else [m.clone() for m in noise]
        device = ws.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):        # warm-up (Triton autotuning, cuDNN plans) off the
            for _ in range(warmup_calls):    # default stream, as capture requires
                fn(self.ws, noise_mode, self.noise)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: the live show keeps rendering eager frames on its worker thread while
        # the compile thread captures; "global" would make their CUDA calls fail meanwhile
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.out = fn(self.ws, noise_mode, self.noise)

    def __call__(self, ws: torch.Tensor, noise_mode: str | None = None,
                 noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        self.ws.copy_(ws)
        if self.noise is not None and noise is not None:
            for static, new in zip(self.noise, noise):
                static.copy_(new)
        self.graph.replay()
        return self.out


def compile_plan(device_type: str, mode: str | None) -> tuple[str, dict]:
    """How ``compile_for_live`` compiles on a device: ``("ahead", inductor configs)`` for an
    AOTInductor package built in a child process (the CPU: ``aot.py`` says why),
    ``("graph", torch.compile kwargs)`` for a compile captured in a CUDA graph (CUDA), or
    ``("compile", torch.compile kwargs)`` for a plain torch.compile (an explicit ``mode``,
    other devices)."""
    if mode is not None:
        return "compile", {"mode": mode}      # the caller's choice, as torch.compile gives it
    if device_type == "cuda":
        return "graph", {"mode": "default"}
    if device_type == "cpu":
        return "ahead", dict(aot.INDUCTOR_CONFIGS)
    return "compile", {"mode": "default"}


def input_signature(ws: torch.Tensor, noise_mode: str,
                    noise: list[torch.Tensor] | None) -> tuple:
    """What a compiled synthesis is specialised on: each input's shape, layout, dtype, device
    and whether it is an inference tensor (another dispatch key set to dynamo), and the
    calling thread's torch thread count (a guard of dynamo's too; it is per thread)."""
    def of(t: torch.Tensor) -> tuple:
        return (tuple(t.shape), t.stride(), t.dtype, t.device, t.is_inference())

    return (of(ws), noise_mode, None if noise is None else tuple(of(m) for m in noise),
            torch.get_num_threads())


def warmup_noise(G: nn.Module, batch_size: int, device: torch.device
                 ) -> list[torch.Tensor] | None:
    """One seeded ``[batch, 1, R, R]`` map per noise convolution: what a compile is traced
    and checked with. None for a net without noise, or whose learned noise strengths are all
    0 (builtin:abstract): the live path renders those with ``noise_mode="none"``, no maps."""
    layers = [m for m in G.synthesis.modules() if getattr(m, "use_noise", False)]
    with torch.no_grad():
        if not any(float(m.noise_strength) != 0.0 for m in layers):
            return None
    rng = torch.Generator(device="cpu").manual_seed(0)
    with torch.inference_mode():     # inference tensors, as the live path's maps are
        return [torch.randn([batch_size, 1, m.resolution, m.resolution],
                            generator=rng).to(device) for m in layers]


def compile_for_live(G: nn.Module, batch_size: int = 1, noise_mode: str = "const",
                     force_fp32: bool = False, mode: str | None = None,
                     enable: bool = True, nice: int = 0,
                     use_cache: bool = True) -> LiveSynthesis:
    """Compile ``G.synthesis`` for repeated calls at one batch size; fall back cleanly.

    ``mode``: None = this device's plan (``compile_plan``: on CUDA a CUDA graph around
    inductor's default mode, on the CPU an AOTInductor package built in a child process at
    ``nice`` and cached unless ``use_cache`` is false); a torch.compile mode is used as given
    (``"reduce-overhead"`` then only works on the thread that compiled).
    ``noise_mode='random'`` is compiled too (the RNG call is traced), but a CUDA graph replays
    the same draw, so the live path uses 'const' with its own maps.
    """
    live = LiveSynthesis(G, batch_size, noise_mode, force_fp32)
    if not enable:
        live.reason = "compilation disabled"
        return live
    device = G.device if hasattr(G, "device") else next(G.parameters()).device
    kind, how = compile_plan(device.type, mode)

    with torch.inference_mode():
        # an inference tensor, as the live path's ws are (FrameGenerator makes them in
        # inference mode): a plain tensor here is another dispatch key set, a guard the first
        # live frame would fail
        ws = G.mapping.w_avg.reshape(1, 1, -1).expand(batch_size, G.num_ws, -1).clone()
    # the live path hands noise maps in every call (FrameGenerator): compile it that way, with
    # a random pattern so the agreement check below covers the noise inputs too
    noise = warmup_noise(G, batch_size, device) if noise_mode == "const" else None
    if noise_mode == "const" and noise is None:
        live.noise_mode = "none"      # no noise to add: the live path asks for none
    try:
        capture = kind == "graph"
        if kind == "ahead":
            fn, built = aot.compiled_synthesis(
                G.synthesis, tuple(ws.shape), live.noise_mode,
                None if noise is None else [tuple(m.shape) for m in noise], force_fp32,
                nice=nice, use_cache=use_cache)
        else:
            compiled = torch.compile(live._eager, dynamic=False, fullgraph=False, **how)
        with torch.inference_mode():
            reference = live._eager(ws, live.noise_mode, noise).clone()
            # called as __call__ calls it (noise_mode and noise given): another argument is
            # another dynamo guard, and the first live frame would compile again
            if kind != "ahead":
                fn = CudaGraphCall(compiled, ws, live.noise_mode, noise) if capture \
                    else compiled
            for _ in range(1 if kind != "compile" else 3):
                out = fn(ws, live.noise_mode, noise)
            diff = (out.float() - reference.float()).abs().max().item()
            # other ws through the same call: a graph or package must read its inputs, not
            # what it was built with (w_avg's rows are all alike: a random offset, not a flip)
            rng = torch.Generator(device="cpu").manual_seed(1)
            other = ws + torch.randn(ws.shape, generator=rng).to(device)
            out = fn(other, live.noise_mode, noise)
            diff = max(diff, (out.float() - live._eager(other, live.noise_mode, noise)
                              .float()).abs().max().item())
    except aot.BuildStopped as exc:      # the show ended first: nothing failed
        live.reason = str(exc)
        log.info("live synthesis: %s", live.reason)
        return live
    except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eager
        what = "an ahead-of-time compile" if kind == "ahead" else "torch.compile"
        live.reason = f"{what} unavailable ({type(exc).__name__}: {str(exc)[:300]})"
        log.warning("live synthesis runs eager: %s", live.reason)
        return live
    dtype = torch.float16 if any(getattr(b, "use_fp16", False) for b in G.synthesis.blocks()) \
        and device.type == "cuda" and not force_fp32 else torch.float32
    if not diff <= _AGREE_ATOL[dtype]:
        live.reason = f"compiled output differs from eager by {diff:.3g}"
        log.warning("live synthesis runs eager: %s", live.reason)
        return live
    live._fn = fn
    live.compiled = True
    live._signature = input_signature(ws, live.noise_mode, noise)
    live.static_noise = noise is not None
    if kind == "ahead":
        live.reason = f"AOTInductor package, {built} (" + ", ".join(
            f"{k}={v}" for k, v in how.items()) + ")"
    else:
        live.reason = f"torch.compile mode={how['mode']}" + (", captured in a CUDA graph"
                                                            if capture else "")
    return live
