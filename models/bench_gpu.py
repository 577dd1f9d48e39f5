"""The synthesis network's part of ``phosphene bench gpu``: correctness checks and ms/frame.

Everything here runs on one device and compares against the same network run the plain way:
eager, fp32 (``force_fp32=True``), no graph -- how NVlabs' code runs it. Speed-ups are ratios
taken in one run, so the machine's clock and load cancel out.

- checks: CUDA fp32 against CPU fp32 (same weights, TF32 off so "fp32" means fp32), fp16
  against fp32, a captured CUDA graph against eager, ``compile_for_live`` against eager, and the
  compiled synthesis called from another thread than the one that compiled it (the live engine
  compiles on a background thread and renders on its worker thread) against the same call on
  the compiling thread. Each records the max abs difference, the output's scale and the
  tolerance it was held to.
- timings: per net and batch, the reference, then eager fp16, CUDA graph fp32/fp16 (cheap to
  capture) and, while the time cap allows, ``compile_for_live`` (expensive: one compile per net,
  batch and precision, most important first).

Variants that cannot exist on the device (fp16 and graphs off CUDA) are recorded as skipped
with the reason; failures are recorded as errors and the rest still runs.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from phosphene.models.bench import config_f, time_synthesis
from phosphene.models.builtin import build_abstract
from phosphene.models.loading import load_generator
from phosphene.models.stylegan2 import Generator, GeneratorConfig
from phosphene.models.stylegan2.fast import CudaGraphCall, compile_for_live, warmup_noise

# Tolerances, relative to the reference output's scale max(1, max|out|): an untrained net's
# output is not confined to [-1, 1], and a fixed atol would mean different things per net.
RTOL = {
    "cuda_vs_cpu_fp32": 1e-3,    # different kernels, same maths (TF32 off)
    "fp16_vs_fp32": 5e-2,        # NVlabs' fp16 blocks with clamping; as fast.py accepts
    "graph_vs_eager": 1e-5,      # the same kernels replayed: should be exact
    "compiled_vs_eager": 1e-3,   # fused kernels reorder sums (fast.py's fp32 tolerance)
    "compiled_vs_eager_fp16": 5e-2,
    "compiled_other_thread": 0.0,   # the same compiled code on the same inputs: identical
}
# Rough cost of one compile_for_live, to decide whether one still fits the time cap.
COMPILE_ESTIMATE_S = {"cuda": 60.0, "cpu": 20.0}
NOISE_MODE = "const"


def bench_nets(quick: bool) -> list[tuple[str, Callable[[], torch.nn.Module]]]:
    """(label, build) of the nets to time, smallest first; built lazily on the CPU."""
    if quick:
        # tiny stand-ins that exercise the same code: config-f's layout at 16x16 with few
        # channels, and the builtin's architecture at 16x16
        tiny = GeneratorConfig(**{**config_f(16).to_dict(), "channel_base": 1024,
                                  "channel_max": 32, "z_dim": 32, "w_dim": 32,
                                  "resample_filter": (1, 3, 3, 1)})
        return [("config-f@16 (32 ch, quick)", lambda: _seeded(tiny)),
                ("builtin:abstract@16 (quick)", lambda: build_abstract(img_resolution=16))]
    return [(f"config-f@{r}", lambda r=r: _seeded(config_f(r))) for r in (256, 512, 1024)] + \
        [("builtin:abstract", lambda: load_generator("builtin:abstract"))]


def _seeded(config: GeneratorConfig) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Generator(config).eval().requires_grad_(False)


def _ws(G: torch.nn.Module, batch: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(1000 + batch)
    z = torch.randn([batch, G.z_dim], generator=gen)
    with torch.inference_mode():    # an inference tensor, as the live path's ws are
        ws = G.mapping(z.to(next(G.parameters()).device), None)
        return ws.to(device).contiguous().clone()


def _diff(out: torch.Tensor, ref: torch.Tensor, rtol: float) -> dict[str, Any]:
    out, ref = out.detach().float().cpu(), ref.detach().float().cpu()
    max_abs = (out - ref).abs().max().item()
    scale = max(1.0, ref.abs().max().item())
    tolerance = rtol * scale
    ok = max_abs <= tolerance                      # False for NaN too
    return {"status": "pass" if ok else "fail", "max_abs_diff": max_abs,
            "mean_abs_diff": (out - ref).abs().mean().item(), "ref_max_abs": scale,
            "tolerance": tolerance, "rtol": rtol}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class CudaGraphSynthesis(CudaGraphCall):
    """``G.synthesis`` at one batch size captured as a CUDA graph (``fast.CudaGraphCall``, as
    the live path captures its compiled synthesis): static ws and noise maps in, static image
    out (overwritten by the next call). Eager kernels, one launch -- the cheap way to see what
    launch overhead costs, without a compiler."""

    def __init__(self, G: torch.nn.Module, ws: torch.Tensor, force_fp32: bool):
        def synthesis(ws, noise_mode, noise):
            return G.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32, noise=noise)

        with torch.inference_mode():
            super().__init__(synthesis, ws, NOISE_MODE,
                             warmup_noise(G, ws.shape[0], ws.device))

    @property
    def static_noise(self) -> list[torch.Tensor] | None:
        return self.noise

    def __call__(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None
                 ) -> torch.Tensor:
        return super().__call__(ws, NOISE_MODE, noise)


class SynthesisBench:
    """Builds nets, graphs and compiled syntheses once and shares them between the checks
    and the timings (a compile costs tens of seconds)."""

    def __init__(self, device: torch.device, quick: bool, progress: Callable[[str], None] = print):
        self.device = device
        self.quick = quick
        self.progress = progress
        self.is_cuda = device.type == "cuda"
        self.min_seconds = 0.0 if quick else 0.3       # per timed case, after warm-up
        self.frames = 3 if quick else None
        self._specs = bench_nets(quick)
        self._nets: dict[str, torch.nn.Module] = {}
        self._compiled: dict[tuple, Any] = {}
        self._graphs: dict[tuple, Any] = {}
        # Every compile_for_live compiles the same code (LiveSynthesis._eager and the blocks'
        # forwards) for another net, batch or precision; past dynamo's recompile limit (8) it
        # would quietly run eager and the "compiled" rows would time eager code.
        import torch._dynamo.config as dynamo_config

        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(dynamo_config, name):
                setattr(dynamo_config, name, max(getattr(dynamo_config, name), 64))

    # -- shared pieces ---------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self._specs]

    def net(self, label: str) -> torch.nn.Module:
        """The net on the device, with its fp16 blocks switched on (config-f has 4; the
        builtin has none, so it gets NVlabs' 4 for the fp16 rows). fp32 rows force fp32."""
        if label not in self._nets:
            G = dict(self._specs)[label]()
            G.synthesis.set_num_fp16_res(G.config.num_fp16_res or 4)
            self._nets[label] = G.to(self.device)
        return self._nets[label]

    def release(self, label: str) -> None:
        """Drop a net and whatever was built on it (frees device memory for the next)."""
        self._nets.pop(label, None)
        for cache in (self._compiled, self._graphs):
            for key in [k for k in cache if k[0] == label]:
                del cache[key]
        if self.is_cuda:
            torch.cuda.empty_cache()

    def eager(self, label: str, fp16: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        G = self.net(label)
        return lambda ws: G.synthesis(ws, noise_mode=NOISE_MODE, force_fp32=not fp16)

    def graph(self, label: str, batch: int, fp16: bool) -> CudaGraphSynthesis:
        key = (label, batch, fp16)
        if key not in self._graphs:
            self._graphs[key] = CudaGraphSynthesis(self.net(label),
                                                   _ws(self.net(label), batch, self.device),
                                                   force_fp32=not fp16)
        return self._graphs[key]

    def compiled(self, label: str, batch: int, fp16: bool):
        key = (label, batch, fp16)
        if key not in self._compiled:
            start = time.perf_counter()
            live = compile_for_live(self.net(label), batch_size=batch, noise_mode=NOISE_MODE,
                                    force_fp32=not fp16)
            live.compile_s = time.perf_counter() - start
            self._compiled[key] = live
        return self._compiled[key]

    def unavailable(self, variant: str, fp16: bool) -> str | None:
        """Why a variant cannot run on this device (None: it can)."""
        if fp16 and not self.is_cuda:
            return "fp16 blocks run only on CUDA"
        if variant == "graph" and not self.is_cuda:
            return "CUDA graphs need CUDA"
        return None

    # -- checks ----------------------------------------------------------------------------
    def checks(self, deadline: float) -> dict[str, dict[str, Any]]:
        """Each check: pass/fail with its figures, or skipped/error with the reason."""
        label = self.labels[0]      # the smallest config-f net: "a small config-f net"
        results: dict[str, dict[str, Any]] = {}

        def guarded(name: str, fn: Callable[[], dict[str, Any]], needs_s: float = 0.0) -> None:
            if time.monotonic() + needs_s > deadline:
                results[name] = {"status": "skipped", "reason": "time cap reached"}
            else:
                try:
                    results[name] = {"net": label, **fn()}
                except Exception as exc:  # noqa: BLE001 - recorded; the other checks run
                    results[name] = {"status": "error", "net": label,
                                     "reason": f"{type(exc).__name__}: {exc}"[:500]}
            r = results[name]
            self.progress(f"  check {name}: {r['status']}"
                          + (f" (max abs diff {r['max_abs_diff']:.3g}, tolerance "
                             f"{r['tolerance']:.3g})" if "max_abs_diff" in r else
                             f" ({r.get('reason', '')})"))

        G = self.net(label)
        ws = _ws(G, 1, self.device)
        with torch.inference_mode():
            eager32 = G.synthesis(ws, noise_mode=NOISE_MODE, force_fp32=True).clone()

        def cuda_vs_cpu():
            if not self.is_cuda:
                return {"status": "skipped", "reason": "the device is the CPU"}
            G_cpu = copy.deepcopy(G).to("cpu")
            matmul, cudnn = (torch.backends.cuda.matmul.allow_tf32,
                             torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            try:
                with torch.inference_mode():
                    out = G.synthesis(ws, noise_mode=NOISE_MODE, force_fp32=True)
                    ref = G_cpu.synthesis(ws.cpu(), noise_mode=NOISE_MODE, force_fp32=True)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = matmul
                torch.backends.cudnn.allow_tf32 = cudnn
            return {**_diff(out, ref, RTOL["cuda_vs_cpu_fp32"]), "tf32": "off for this check"}

        def fp16_vs_fp32():
            why = self.unavailable("eager", True)
            if why:
                return {"status": "skipped", "reason": why}
            with torch.inference_mode():
                out = G.synthesis(ws, noise_mode=NOISE_MODE, force_fp32=False)
            return _diff(out, eager32, RTOL["fp16_vs_fp32"])

        def graph_vs_eager():
            why = self.unavailable("graph", False)
            if why:
                return {"status": "skipped", "reason": why}
            fp16 = True
            with torch.inference_mode():
                graph = self.graph(label, 1, fp16)
                ref = G.synthesis(ws, noise_mode=NOISE_MODE, force_fp32=not fp16,
                                  noise=graph.static_noise)
                out = graph(ws)
            return {**_diff(out, ref, RTOL["graph_vs_eager"]), "precision": "fp16"}

        def compiled_vs_eager():
            fp16 = self.is_cuda            # the live path's precision on this device
            live = self.compiled(label, 1, fp16)
            noise = warmup_noise(G, 1, self.device)    # the live path hands noise maps in
            eager_before = live.eager_calls
            with torch.inference_mode():
                ref = G.synthesis(ws, noise_mode=NOISE_MODE, force_fp32=not fp16, noise=noise)
                out = live(ws, noise=noise)
            rtol = RTOL["compiled_vs_eager_fp16" if fp16 else "compiled_vs_eager"]
            result = {**_diff(out, ref, rtol), "precision": "fp16" if fp16 else "fp32",
                      "compiled": live.compiled, "how": live.reason,
                      "compile_s": round(live.compile_s, 1)}
            if not live.compiled:          # fell back to eager: nothing compiled was checked
                result["status"] = "fail" if "differs" in live.reason else "skipped"
                result["reason"] = live.reason
            elif live.eager_calls != eager_before:   # compiled, but this call was not
                result["status"] = "fail"
                result["reason"] = "the call ran eager (its inputs are not what was compiled)"
            return result

        def compiled_other_thread():
            fp16 = self.is_cuda
            live = self.compiled(label, 1, fp16)
            if not live.compiled:
                return {"status": "skipped", "reason": live.reason}
            noise = warmup_noise(G, 1, self.device)
            with torch.inference_mode():
                here = live(ws, noise=noise).clone()
            threads, eager_before = torch.get_num_threads(), live.eager_calls
            there: dict[str, Any] = {}

            def call() -> None:            # as the generator's worker thread calls it
                try:
                    torch.set_num_threads(threads)    # per thread; the compile guards on it
                    with torch.inference_mode():
                        there["out"] = live(ws, noise=noise).clone()
                except BaseException as exc:  # noqa: BLE001 - reported below
                    there["error"] = exc

            worker = threading.Thread(target=call, name="bench-worker")
            worker.start()
            worker.join()
            if "error" in there:
                raise there["error"]
            result = {**_diff(there["out"], here, RTOL["compiled_other_thread"]),
                      "how": live.reason}
            if not live.compiled or live.eager_calls != eager_before:
                result["status"] = "fail"      # it ran, but not the compiled code
                result["reason"] = f"the other thread's call ran eager: {live.reason}"
            return result

        guarded("cuda_vs_cpu_fp32", cuda_vs_cpu)
        guarded("fp16_vs_fp32", fp16_vs_fp32)
        guarded("graph_vs_eager", graph_vs_eager)
        guarded("compiled_vs_eager", compiled_vs_eager,
                needs_s=0.0 if self.quick else COMPILE_ESTIMATE_S[self.device.type])
        guarded("compiled_other_thread", compiled_other_thread)
        return results

    # -- timings ---------------------------------------------------------------------------
    def _cases(self, batches: list[int]) -> list[tuple[str, int, str, bool]]:
        """(net, batch, variant, fp16) in the order they run: every cheap case first (the
        reference of a net and batch before its variants), then the compiles, the goal's
        case (the biggest config-f at batch 1 in fp16) first."""
        cheap, compiled = [], []
        for label in self.labels:
            for batch in batches:
                cheap += [(label, batch, "reference", False), (label, batch, "eager", True),
                          (label, batch, "graph", False), (label, batch, "graph", True)]
        config_f_nets = [lb for lb in self.labels if lb.startswith("config-f")]
        others = [lb for lb in self.labels if lb not in config_f_nets]
        order = config_f_nets[::-1] + others           # 1024 first, then 512, 256, builtin
        for batch in batches:
            for label in order:
                compiled += [(label, batch, "compiled", True), (label, batch, "compiled", False)]
        if self.quick:
            # one compile is enough to exercise the path (a cold compile costs ~50 s here)
            compiled = [c for c in compiled if not self.unavailable("compiled", c[3])][:1]
        return cheap + compiled

    def timings(self, deadline: float, batches: list[int]) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        reference_ms: dict[tuple[str, int], float] = {}
        cases = self._cases(batches)
        for i, (label, batch, variant, fp16) in enumerate(cases):
            case = {"net": label, "batch": batch, "variant": variant,
                    "precision": "fp16" if fp16 else "fp32"}
            why = self.unavailable(variant, fp16)
            if why is None and time.monotonic() > deadline:
                why = "time cap reached"
            if why is None and variant == "compiled" and not self.quick and \
                    time.monotonic() + COMPILE_ESTIMATE_S[self.device.type] > deadline:
                why = (f"a compile (~{COMPILE_ESTIMATE_S[self.device.type]:.0f} s) no longer "
                       "fits the time cap")
            if why is not None:
                skipped.append({**case, "reason": why})
                continue
            try:
                ws = _ws(self.net(label), batch, self.device)
                extra: dict[str, Any] = {}
                if variant == "reference":
                    fn = self.eager(label, fp16=False)
                elif variant == "eager":
                    fn = self.eager(label, fp16)
                elif variant == "graph":
                    fn = self.graph(label, batch, fp16)
                else:
                    live = self.compiled(label, batch, fp16)
                    extra = {"compiled": live.compiled, "how": live.reason,
                             "compile_s": round(live.compile_s, 1)}
                    noise = warmup_noise(self.net(label), batch, self.device)

                    def fn(ws, live=live, noise=noise):     # as the live path calls it
                        return live(ws, noise=noise)
                eager_before = live.eager_calls if variant == "compiled" else 0
                seconds = time_synthesis(fn, ws, self.device, self.frames, self.min_seconds)
                if variant == "compiled" and live.eager_calls != eager_before:
                    extra["ran_eager"] = True    # an eager timing must not pass as compiled
                    extra["compiled"] = False
                ms = 1e3 * seconds
                if variant == "reference":
                    reference_ms[(label, batch)] = ms
                ref = reference_ms.get((label, batch))
                row = {**case, "ms_per_batch": round(ms, 3), "ms_per_frame": round(ms / batch, 3),
                       "frames_per_s": round(batch / seconds, 1),
                       "speedup_vs_reference": round(ref / ms, 2) if ref else None, **extra}
                rows.append(row)
                self.progress(f"  {label} b{batch} {variant} {case['precision']}: "
                              f"{row['ms_per_frame']:.2f} ms/frame"
                              + (f", {row['speedup_vs_reference']:.2f}x reference"
                                 if ref else ""))
            except Exception as exc:  # noqa: BLE001 - recorded; the next case runs
                reason = f"{type(exc).__name__}: {exc}"[:500]
                skipped.append({**case, "error": reason})
                self.progress(f"  {label} b{batch} {variant} {case['precision']}: error {reason}")
                if self.is_cuda:
                    torch.cuda.empty_cache()
            # a net's last case done: free its memory before the next net's
            if not any(c[0] == label for c in cases[i + 1:]):
                self.release(label)
        return {"rows": rows, "skipped": skipped}
