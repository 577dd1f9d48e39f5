"""``phosphene bench generator``: synthesis frames/s per resolution, precision and batch size."""

from __future__ import annotations

import statistics
import time

import torch

from phosphene.errors import PhospheneError
from phosphene.models.builtin import build_abstract
from phosphene.models.loading import load_generator
from phosphene.models.stylegan2 import Generator, GeneratorConfig
from phosphene.models.stylegan2.fast import compile_for_live, warmup_noise


def config_f(img_resolution: int):
    """StyleGAN2 config-f at ``img_resolution`` (NVlabs' stylegan2 preset: 512 channels,
    8 mapping layers, the 4 highest resolutions in fp16 with conv_clamp 256)."""
    return GeneratorConfig(z_dim=512, w_dim=512, img_resolution=img_resolution,
                           channel_base=32768, channel_max=512, mapping_layers=8,
                           num_fp16_res=4, conv_clamp=256)


def _bench_nets(model: str | None, sizes: list[int], arch: str):
    """(label, generator) pairs to time, on the CPU (moved later)."""
    if model is not None:
        if model.startswith("builtin:abstract") and sizes:
            # the builtin's architecture at each requested size
            return [(f"builtin:abstract@{s}", build_abstract(img_resolution=s)) for s in sizes]
        return [(model, load_generator(model))]
    nets = []
    for size in sizes:
        if size < 4 or size & (size - 1):
            raise PhospheneError(f"--size {size}: resolutions must be powers of two >= 4")
        if arch == "config-f":
            torch.manual_seed(0)
            nets.append((f"config-f@{size}", Generator(config_f(size)).eval().requires_grad_(False)))
        else:
            nets.append((f"builtin:abstract@{size}", build_abstract(img_resolution=size)))
    return nets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_synthesis(fn, ws: torch.Tensor, device: torch.device, frames: int | None,
                   min_seconds: float = 2.0) -> float:
    """Seconds per call of ``fn(ws)`` (after warm-up), timing ``frames`` calls or ~min_seconds."""
    with torch.inference_mode():
        for _ in range(3):
            fn(ws)
        _sync(device)
        count, start = 0, time.perf_counter()
        while True:
            fn(ws)
            count += 1
            if frames is not None and count >= frames:
                break
            if frames is None and count >= 3:
                _sync(device)
                if time.perf_counter() - start >= min_seconds:
                    break
        _sync(device)
        return (time.perf_counter() - start) / count


def time_interleaved(fns: list, ws: torch.Tensor, device: torch.device,
                     frames: int | None, min_seconds: float = 4.0) -> list[float]:
    """Median seconds per call of each ``fn(ws)``, the calls alternating (a, b, a, b, ...).

    A speed-up is a ratio of two timings; taken in turns, both see the same machine (a shared
    or throttling CPU drifts by tens of percent over seconds, which sequential runs would
    credit to one side)."""
    times: list[list[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for fn in fns:
            for _ in range(3):
                fn(ws)
        _sync(device)
        start = time.perf_counter()
        while True:
            for fn, record in zip(fns, times):
                t0 = time.perf_counter()
                fn(ws)
                _sync(device)
                record.append(time.perf_counter() - t0)
            done = len(times[0])
            if (frames is not None and done >= frames) or \
                    (frames is None and done >= 5 and time.perf_counter() - start >= min_seconds):
                break
    return [statistics.median(record) for record in times]


def run_generator_bench(model, sizes, arch, device, precisions, batches, frames=None,
                        include_compiled=False, threads=None, out=print) -> list[dict]:
    """Print and return one row per (net, precision, batch): ms per batch and images/s."""
    if threads is not None:
        torch.set_num_threads(threads)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    out(f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    out(f"{'net':<26}{'precision':<11}{'batch':>5}{'ms/batch':>11}{'images/s':>11}")
    rows = []
    for label, G in _bench_nets(model, sizes, arch):
        G = G.to(device)
        configured_fp16 = G.config.num_fp16_res
        for precision in precisions:
            if precision == "fp16":
                G.synthesis.set_num_fp16_res(configured_fp16 or 4)
            force_fp32 = precision == "fp32"
            cases = [(b, False) for b in batches] + ([(1, True)] if include_compiled else [])
            for batch, compiled in cases:
                gen = torch.Generator(device="cpu").manual_seed(batch)
                z = torch.randn([batch, G.z_dim], generator=gen).to(device)
                c = torch.zeros([batch, G.c_dim], device=device) if G.c_dim else None
                if c is not None:
                    c[:, 0] = 1
                with torch.inference_mode():
                    ws = G.mapping(z, c).contiguous()

                def eager(ws, G=G, force_fp32=force_fp32):
                    return G.synthesis(ws, force_fp32=force_fp32)
                if compiled:
                    live = compile_for_live(G, batch_size=1, force_fp32=force_fp32)
                    noise = warmup_noise(G, 1, device)

                    def fn(ws, live=live, noise=noise):     # as the live path calls it
                        return live(ws, noise=noise)
                    tag = "compiled" if live.compiled else "eager-fallback"
                    with torch.inference_mode():    # the same frame, eager: how close?
                        diff = (fn(ws) - G.synthesis(ws, force_fp32=force_fp32,
                                                     noise=noise)).abs().max().item()
                    # the ratio from alternating eager and compiled frames of the same ws
                    eager_s, seconds = time_interleaved([eager, fn], ws, device, frames)
                else:
                    tag = ""
                    seconds = time_synthesis(eager, ws, device, frames)
                row = {"net": label, "precision": precision + (f" {tag}" if tag else ""),
                       "batch": batch, "ms_per_batch": seconds * 1e3,
                       "images_per_s": batch / seconds}
                if compiled:
                    row["max_abs_diff_vs_eager"] = diff
                    row["eager_ms_interleaved"] = eager_s * 1e3
                    row["speedup_vs_eager"] = eager_s / seconds
                rows.append(row)
                out(f"{row['net']:<26}{row['precision']:<11}{batch:>5}"
                    f"{row['ms_per_batch']:>11.1f}{row['images_per_s']:>11.1f}"
                    + (f"   {row['speedup_vs_eager']:.2f}x eager ({row['eager_ms_interleaved']:.1f} ms"
                       " in turns)" if "speedup_vs_eager" in row else "")
                    + (f", max |diff| {diff:.1e}" if compiled else ""))
        G.synthesis.set_num_fp16_res(configured_fp16)
        G.to("cpu")
    return rows
