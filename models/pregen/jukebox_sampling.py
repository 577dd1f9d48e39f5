"""Jukebox sampling the way the original does it, window by window, checkpointed.

The top-level prior generates codes conditioned on artist, genre, lyrics and timing; a clip
longer than its context (``n_ctx`` tokens) is sampled in overlapping windows that advance by
``hop_fraction * n_ctx`` (``get_starts``). For ``--levels all`` the two upsampling priors then
refine the codes level by level, each conditioned on the level above. Finally the VQ-VAE
decoder turns the finest codes into audio. (Dhariwal et al., 2020, "Jukebox", section 4;
openai/jukebox ``sample.py``.)

We call transformers' own per-window primitives (``JukeboxModel.sample_single_window`` /
``sample_partial_window``) and own only the loop around them, so that:

- after every window the tokens of all levels are saved atomically (``tokens.npz``) with the
  position reached, and ``--resume`` continues from there;
- the random generator is reseeded before every window from (seed, level, window), so a
  resumed run draws exactly the numbers the uninterrupted run would have drawn: the tokens
  are identical, not just similar.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.models.bank.atomic import write_bytes_atomic

log = logging.getLogger(__name__)

CHECKPOINT = "tokens.npz"
# openai/jukebox sample.py: the top prior samples in batches of 3, upsamplers of 16, and the
# upsamplers always use temperature 0.99.
TOP_MAX_BATCH = 3
UPSAMPLER_MAX_BATCH = 16
UPSAMPLER_TEMPERATURE = 0.99
TOP_CHUNK_SIZE = 32
UPSAMPLER_CHUNK_SIZE = 16


class SamplingStopped(Exception):
    """Raised when ``max_windows`` is reached: the checkpoint is saved, the run is resumable."""


@dataclass(frozen=True)
class Window:
    level: int        # prior index in transformers' order: 0 = top, last = finest
    index: int        # window number within the level
    start: int | None  # token position of a full window; None for a partial (short) window


def window_seed(seed: int, level: int, index: int) -> int:
    """The RNG seed for one window: a pure function of (run seed, level, window)."""
    return int(np.random.SeedSequence([seed, level, index]).generate_state(1)[0])


def _window_conditioning(prior, music_tokens, start, end):
    """The upper level's codes under window [start, end) of ``prior``'s level.

    Replaces ``JukeboxPrior.get_music_tokens_conds`` of transformers 4.57, which slices the
    window but then returns the upper level's *whole* code sequence: once the clip is longer
    than one upsampler window the conditioning no longer lines up with the window (broadcast
    garbage, NaN logits). This is openai/jukebox's ``get_z_conds``, with zero padding for a
    window the upper level does not fill yet (a clip shorter than one window).
    """
    import torch
    if prior.level == 0:
        return None
    upper = music_tokens[prior.level - 1]
    cond = upper[:, start // prior.cond_downsample:end // prior.cond_downsample]
    missing = prior.n_ctx // prior.cond_downsample - cond.shape[1]
    if missing > 0:
        pad = torch.zeros(cond.shape[0], missing, dtype=cond.dtype, device=cond.device)
        cond = torch.cat([cond, pad], dim=1)
    return [cond]


def use_window_conditioning(model) -> None:
    """Make every upsampler of ``model`` condition on its window (see above)."""
    import types
    for prior in model.priors[1:]:
        prior.get_music_tokens_conds = types.MethodType(_window_conditioning, prior)


def plan_windows(model, levels: list[int], total_length: int) -> list[Window]:
    """Every window the run will sample, in order (mirrors ``JukeboxModel.sample_level``)."""
    from transformers.models.deprecated.jukebox.modeling_jukebox import get_starts
    windows = []
    for level in levels:
        prior = model.priors[level]
        tokens = total_length // int(prior.raw_to_tokens)
        hop = int(model.config.hop_fraction[level] * prior.n_ctx)
        if tokens >= prior.n_ctx:
            windows += [Window(level, i, s) for i, s in enumerate(get_starts(tokens, prior.n_ctx, hop))]
        else:
            windows.append(Window(level, 0, None))
    return windows


class TokenCheckpoint:
    """``tokens.npz`` in the work dir: one int array per level, the windows done, and the
    run's fingerprint (so a checkpoint is never resumed into a different run)."""

    def __init__(self, work_dir: Path):
        self.work_dir = Path(work_dir)
        self.path = self.work_dir / CHECKPOINT

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, tokens: list, windows_done: int, fingerprint: dict, done: bool) -> None:
        arrays = {f"level_{i}": t.cpu().numpy().astype(np.int64) for i, t in enumerate(tokens)}
        meta = {"windows_done": windows_done, "fingerprint": fingerprint, "done": done}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path, buffer.getvalue())

    def load(self) -> tuple[list[np.ndarray], int, dict, bool]:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                levels = sorted((k for k in data.files if k.startswith("level_")),
                                key=lambda k: int(k.split("_")[1]))
                tokens = [data[k] for k in levels]
        except (OSError, ValueError, KeyError) as exc:
            raise PhospheneError(f"checkpoint {self.path} is unreadable ({exc}); delete it to "
                                 "start over") from exc
        return tokens, int(meta["windows_done"]), meta["fingerprint"], bool(meta["done"])


def sample_tokens(model, labels: list, *, levels: list[int], total_length: int, n_samples: int,
                  seed: int, temperature: float, checkpoint: TokenCheckpoint, fingerprint: dict,
                  resume: bool, prime_tokens: list | None = None, max_windows: int | None = None,
                  progress: bool = True) -> list:
    """Sample (or continue sampling) the codes of ``levels``; returns one LongTensor per prior
    level (transformers' order). Raises ``SamplingStopped`` after ``max_windows`` windows."""
    import torch
    from tqdm import tqdm

    if not progress:  # transformers' own per-token bars too
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    device = next(model.parameters()).device
    n_levels = len(model.priors)
    windows = plan_windows(model, levels, total_length)
    done = 0
    if checkpoint.exists():
        if not resume:
            raise PhospheneError(f"{checkpoint.path} holds an earlier run's tokens: pass --resume "
                                 "to continue it, or delete the work dir to start over")
        saved, done, saved_fingerprint, _finished = checkpoint.load()
        if saved_fingerprint != fingerprint:
            changed = sorted(k for k in set(fingerprint) | set(saved_fingerprint)
                             if fingerprint.get(k) != saved_fingerprint.get(k))
            raise PhospheneError(f"{checkpoint.path} is from a different run (differs in: "
                                 f"{', '.join(changed)}); use another --work-dir or delete it")
        tokens = [torch.as_tensor(t, dtype=torch.long, device=device) for t in saved]
        log.info("resuming: %d of %d windows already sampled", done, len(windows))
    elif prime_tokens is not None:
        tokens = [t.to(device) for t in prime_tokens]
    else:
        tokens = [torch.zeros(n_samples, 0, dtype=torch.long, device=device)
                  for _ in range(n_levels)]

    # JukeboxModel's window functions read the clip length from this attribute.
    model.total_length = total_length
    use_window_conditioning(model)
    bar = tqdm(total=len(windows), initial=done, unit="window", disable=not progress,
               desc="pregen music")
    sampled_now = 0
    started = time.monotonic()
    with torch.no_grad():
        for position in range(done, len(windows)):
            if max_windows is not None and sampled_now >= max_windows:
                bar.close()
                raise SamplingStopped(f"stopped after {sampled_now} windows "
                                      f"({position}/{len(windows)} done)")
            window = windows[position]
            prior = model.priors[window.level]
            bar.set_description(f"pregen music: level {window.level} "
                                f"({'top' if window.level == 0 else 'upsampler'}) "
                                f"window {window.index + 1}")
            kwargs = {"temp": temperature if window.level == 0 else UPSAMPLER_TEMPERATURE,
                      "chunk_size": TOP_CHUNK_SIZE if window.level == 0 else UPSAMPLER_CHUNK_SIZE,
                      "sample_tokens": None}
            max_batch = TOP_MAX_BATCH if window.level == 0 else UPSAMPLER_MAX_BATCH
            level_labels = labels[window.level]
            torch.manual_seed(window_seed(seed, window.level, window.index))
            if window.start is not None:
                tokens = model.sample_single_window(tokens, level_labels, 0, kwargs,
                                                    window.level, window.start, max_batch)
            else:
                missing = total_length // int(prior.raw_to_tokens) - tokens[window.level].shape[1]
                if missing > 0:
                    tokens = model.sample_partial_window(tokens, level_labels, 0, kwargs,
                                                         window.level, missing, max_batch)
            sampled_now += 1
            checkpoint.save(tokens, position + 1, fingerprint, done=position + 1 == len(windows))
            bar.update(1)
    bar.close()
    if windows and sampled_now:
        log.info("sampled %d windows in %.1f s", sampled_now, time.monotonic() - started)
    if not windows or done == len(windows):
        checkpoint.save(tokens, len(windows), fingerprint, done=True)
    return tokens


def decode(model, tokens: list, finest_level: int) -> np.ndarray:
    """Audio (n_samples, frames) from the codes of prior level ``finest_level``."""
    import torch
    vq_level = len(model.priors) - 1 - finest_level  # the VQ-VAE numbers levels bottom-up
    codes = tokens[finest_level]
    with torch.no_grad():
        audio = model.vqvae.decode([codes], start_level=vq_level, end_level=vq_level + 1,
                                   bs_chunks=codes.shape[0])
    return audio[..., 0].float().cpu().numpy()


def encode_prime(model, audio: np.ndarray, n_samples: int) -> list:
    """Codes of every level for a priming recording (mono, at the model's rate), repeated for
    each sample, in transformers' prior order (top first)."""
    import torch
    x = torch.as_tensor(audio, dtype=torch.float32, device=next(model.parameters()).device)
    x = x[None, :, None].repeat(n_samples, 1, 1)
    n = len(model.priors)
    with torch.no_grad():
        vq_tokens = model.vqvae.encode(x, start_level=0, end_level=n, bs_chunks=n_samples)
    return [vq_tokens[n - 1 - level] for level in range(n)]
