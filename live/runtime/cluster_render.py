"""``phosphene render ... --cluster``: the offline render split into chunks of video frames that
Ray workers render, joined in order into the one MP4 (or PNG sequence) the driver writes.

Why the frames are the same as a local render's, byte for byte:

- the show is a pure function of the audio and the recorded events: every worker runs the
  analyzer and the show from the file's first sample (cheap next to the generator), so the
  state at frame ``k`` is the state a local render has at frame ``k``;
- chunks start on multiples of ``--batch``, so the generator sees the same batches as a local
  render (batch composition can change a convolution's rounding);
- one H.264 encoder, on the driver, encodes the joined frames, exactly as a local render does
  (encoding chunks apart and concatenating would give other decoded pixels).

The effect chain is the one part with memory from frame to frame (trail effects read their
own previous output; a replay may switch presets, which rebuilds the chain). So:

- ``pixels`` mode (no effect with history, no recorded events): each worker draws its frames
  through its own headless chain (EGL), which holds nothing from one frame to the next;
- ``images`` mode (otherwise): workers return the generator frames (the expensive part) and
  the driver draws them through one chain in order, as a local render does.

A worker lost mid-chunk is restarted by Ray and the chunk is rendered again (actor restarts
and task retries); the driver writes chunks in order, so nothing is written twice.
"""

from __future__ import annotations

import logging
import os
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from phosphene.cluster import connect, import_ray, wants_gpu, worker_device
from phosphene.errors import PhospheneError
from phosphene.live.runtime.offline import (EffectStage, OfflineRender, RenderResult,
                                            render_video)
from phosphene.live.runtime.session import ShowSource
from phosphene.render.effects import resolve_effect

log = logging.getLogger(__name__)

CHUNK_S = 2.0                   # video seconds per chunk (rounded to whole batches)
CHUNK_BYTES = 256 * 2 ** 20     # ...but no more pixels than this in one chunk (4K: ~10 frames)
RETRIES = 3                     # restarts of a lost worker, and retries of its chunk


def chunk_plan(n_frames: int, batch: int, chunk_frames: int) -> list[tuple[int, int]]:
    """(first, count) of each chunk; every chunk but the last a whole number of batches."""
    size = max(batch, chunk_frames // batch * batch)
    return [(first, min(size, n_frames - first)) for first in range(0, n_frames, size)]


def default_chunk_frames(job: OfflineRender) -> int:
    w, h = job.size
    by_time = int(CHUNK_S * float(job.fps))
    by_bytes = CHUNK_BYTES // (w * h * 3)
    return max(1, min(by_time, by_bytes))


def needs_driver_chain(source: ShowSource) -> bool:
    """Whether the chain must run in one piece on the driver (see the module doc)."""
    return bool(source.events) or any(resolve_effect(e.name).uses_history
                                      for e in source.preset.effects)


class ChunkRenderer:
    """One worker: the audio, the show and the generator, loaded once, and chunks on request.
    Made a Ray actor by ``render_on_cluster`` (Ray is imported only there)."""

    def __init__(self, audio: list, suffix: str, source: ShowSource, settings: Any,
                 torch_threads: int):
        """``audio``: [a Ray reference to the audio file's bytes] (nested in a list, Ray hands
        it over unresolved: a restarted worker fetches it again from the driver's copy)."""
        import ray  # this class runs as a Ray actor

        # A CPU convolution's rounding depends on how many threads split it, and Ray gives a
        # worker one (OMP_NUM_THREADS=1): use the driver's count, as its local render would
        # (also set in the worker's environment, so every thread of the process has it).
        self.torch_threads = torch_threads
        # the audio travels with the job (the driver's path need not exist on this node)
        fd, name = tempfile.mkstemp(prefix="phosphene-render-", suffix=suffix)
        with os.fdopen(fd, "wb") as handle:
            handle.write(ray.get(audio[0]))
        self.audio_path = Path(name)
        weakref.finalize(self, self.audio_path.unlink, missing_ok=True)   # also at exit
        self.source, self.settings = source, settings
        self.job: OfflineRender | None = None
        self.next_frame = 0

    def _job(self, first: int) -> OfflineRender:
        import torch  # the worker's generator runs on it

        torch.set_num_threads(self.torch_threads)   # in the thread that runs the chunk
        # the show only goes forward: a chunk before the last one starts a fresh show (the
        # model stays loaded)
        if self.job is None or first < self.next_frame:
            model = None if self.job is None else self.job.generator.G
            self.job = OfflineRender(self.audio_path, self.source, self.settings, generator=model)
        return self.job

    def pid(self) -> int:
        return os.getpid()

    def pixels(self, first: int, count: int) -> np.ndarray:
        """Final frames ``first .. first+count-1``, (count, H, W, 3) uint8."""
        job = self._job(first)
        out = np.stack([p.copy() for p in job.frames(first, count)])
        self.next_frame = first + count
        return out

    def images(self, first: int, count: int) -> np.ndarray:
        """Generator frames ``first ..``, (count, C, H, W) as the generator made them."""
        job = self._job(first)
        states = [state for _, state in job.states(first, count)]
        batch = job.settings.batch
        out = np.concatenate([
            job.generator.generate([s.request for s in states[i:i + batch]]).cpu().numpy()
            for i in range(0, count, batch)])
        self.next_frame = first + count
        return out


def _drawn_on_driver(job: OfflineRender, images: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The driver's half of ``images`` mode: workers' generator frames (CHW, in timeline
    order) through one chain."""
    import torch  # the chain uploads tensors as a local render hands them over

    stage = EffectStage(*job.size, job.settings.fit, job.sample_rate)
    try:
        for (k, state), image in zip(job.states(0, job.n_frames), images):
            # a copy: Ray hands out read-only arrays, which torch will not wrap
            out = stage.render(torch.from_numpy(image[None].copy()), state, job.frame_time_s(k))
            if out is not None:
                yield out
        yield from stage.drain()
    finally:
        stage.close()


def _in_order(chunks: Iterator[Any]) -> Iterator[np.ndarray]:
    """The chunks' frames one by one, in timeline order (Ray's errors as one line)."""
    from ray.exceptions import RayError, RayTaskError  # optional extra, imported with Ray

    try:
        for result in chunks:
            yield from result
    except RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, PhospheneError) else None
        if cause is not None:
            raise cause from None
        raise PhospheneError(f"a render worker failed: {exc}".splitlines()[0]) from None
    except RayError as exc:
        raise PhospheneError(f"a render worker was lost {RETRIES} times: "
                             f"{exc}".splitlines()[0]) from None


def render_on_cluster(job: OfflineRender, audio_path: str | Path, output: Path | None,
                      frames_dir: Path | None, cluster: str, *, device: str = "auto",
                      chunk_frames: int | None = None,
                      temp_dir: str | Path | None = None) -> RenderResult:
    """``render_video`` with the frames rendered by the workers of ``cluster`` (an address
    for ``phosphene.cluster.connect``) on ``device``. ``job`` is the driver's own copy of the
    render (it checked the settings, and knows the frame count, the size and the audio; its
    generator may sit on the driver's CPU: workers make the frames)."""
    ray = import_ray()
    import torch  # the driver's thread count is the workers' (see ChunkRenderer)
    from ray.util import ActorPool  # optional extra, imported with Ray

    plan = chunk_plan(job.n_frames, job.settings.batch, chunk_frames or default_chunk_frames(job))
    on_driver = needs_driver_chain(job.source)
    with connect(cluster, temp_dir=temp_dir) as info:
        use_gpu = wants_gpu(device, info)
        settings = replace(job.settings, device=worker_device(device, use_gpu),
                           progress=False)
        count = min(info.workers(use_gpu), len(plan))
        threads = torch.get_num_threads()
        actor = ray.remote(ChunkRenderer).options(
            num_cpus=1, num_gpus=1 if use_gpu else 0, max_restarts=RETRIES,
            max_task_retries=RETRIES,
            # several workers on one machine then share its cores: OpenMP threads that
            # sleep rather than spin while they wait keep them from starving each other
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads),
                                      "MKL_NUM_THREADS": str(threads),
                                      "OMP_WAIT_POLICY": "PASSIVE"}})
        audio = ray.put(Path(audio_path).read_bytes())
        workers = [actor.remote([audio], Path(audio_path).suffix, job.source, settings, threads)
                   for _ in range(count)]
        pool = ActorPool(workers)
        method = "images" if on_driver else "pixels"
        log.info("render on %s: %d chunks on %d workers (%s)", info.address, len(plan), count,
                 "generator on workers, chain here" if on_driver else "frames on workers")
        results = pool.map(lambda w, chunk: getattr(w, method).remote(*chunk), plan)
        frames = _in_order(results)
        if on_driver:
            frames = _drawn_on_driver(job, frames)
        where = "GPU" if use_gpu else "CPU"
        return render_video(job, output, frames_dir, frames=frames,
                            desc=f"render: {len(plan)} chunks, {count} {where} workers")
