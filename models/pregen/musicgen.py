"""``--backend musicgen``: a clip from a text prompt with MusicGen (Copet et al., 2023) through
transformers' ``MusicgenForConditionalGeneration``. Minutes rather than Jukebox's hours."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.models.device import pick_device

log = logging.getLogger(__name__)


def _progress_streamer(total: int, enabled: bool):
    """A generation streamer that advances a tqdm bar by one per decoding step."""
    from tqdm import tqdm
    from transformers.generation.streamers import BaseStreamer

    class _Progress(BaseStreamer):
        def __init__(self):
            self.bar = tqdm(total=total, unit="step", desc="pregen music (musicgen)",
                            disable=not enabled)
            self.first = True

        def put(self, value):
            if self.first:  # the prompt's decoder start tokens, not a generated step
                self.first = False
                return
            self.bar.update(1)

        def end(self):
            self.bar.close()

    return _Progress()


def generate_musicgen(request) -> tuple[np.ndarray, int, dict]:
    import torch
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    if not request.prompt:
        raise PhospheneError("--backend musicgen needs --prompt \"...\"")
    device = str(pick_device(request.device, allow_mps=False))
    path = Path(request.model).expanduser()
    source = str(path) if path.is_dir() else request.model
    try:
        model = MusicgenForConditionalGeneration.from_pretrained(source).eval().to(device)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise PhospheneError(f"cannot load a MusicGen model from {source}: {exc}") from exc
    audio_config = model.config.audio_encoder
    rate = int(audio_config.sampling_rate)
    frame_rate = float(audio_config.frame_rate)
    n_frames = int(round(request.seconds * rate))
    # The codebook delay pattern costs (num_codebooks - 1) steps before the first full frame.
    steps = int(np.ceil(request.seconds * frame_rate)) + model.decoder.num_codebooks
    max_steps = model.decoder.config.max_position_embeddings
    if steps > max_steps:
        raise PhospheneError(f"--seconds {request.seconds}: this MusicGen model generates at most "
                             f"{(max_steps - model.decoder.num_codebooks) / frame_rate:.0f} s")
    inputs = tokenizer([request.prompt] * request.samples, return_tensors="pt", padding=True)
    inputs = {k: inputs[k].to(device) for k in ("input_ids", "attention_mask")}
    torch.manual_seed(request.seed)
    with torch.no_grad():
        values = model.generate(**inputs, do_sample=True, guidance_scale=request.guidance,
                                max_new_tokens=steps,
                                streamer=_progress_streamer(steps, request.progress))
    audio = values[:, 0, :].float().cpu().numpy()  # (samples, frames); mono models
    if audio.shape[1] < n_frames:
        raise PhospheneError(f"MusicGen produced {audio.shape[1] / rate:.2f} s, fewer than the "
                             f"{request.seconds} s asked for")
    audio = audio[:, :n_frames]
    provenance = {"backend": "musicgen", "model": str(request.model), "prompt": request.prompt,
                  "seconds": n_frames / rate, "model_sample_rate": rate, "seed": request.seed,
                  "guidance_scale": request.guidance, "device": device}
    return audio, rate, provenance
