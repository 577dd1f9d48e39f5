"""``phosphene pregen music``: Jukebox (artist, genre, lyrics) or MusicGen (a text prompt)
into the bank.

Jukebox runs for hours per minute of audio on a large GPU, so this module checks everything
that can be checked before the first window is sampled (names free in the bank, artist and
genre known to the model, prime readable), and only writes to the bank once the audio is
complete. Sampling itself lives in ``jukebox_sampling`` (windows, checkpoints, resume).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.models.bank.loudness import resample
from phosphene.models.bank.names import validate_name
from phosphene.models.device import pick_device
from phosphene.models.pregen import jukebox_sampling as js
from phosphene.models.pregen.musicgen import generate_musicgen

log = logging.getLogger(__name__)


@dataclass
class MusicRequest:
    backend: str
    model: str
    seconds: float
    artist: str | None = None
    genre: str | None = None
    lyrics: str = ""
    prompt: str | None = None
    levels: str = "all"
    prime: Path | None = None
    prime_seconds: float | None = None
    samples: int = 1
    seed: int = 0
    temperature: float = 0.98
    guidance: float = 3.0
    device: str = "auto"
    work_dir: Path | None = None
    resume: bool = False
    max_windows: int | None = None
    progress: bool = True


def clip_names(name: str, samples: int) -> list[str]:
    names = [name] if samples == 1 else [f"{name}-{i + 1}" for i in range(samples)]
    return [validate_name(n) for n in names]


def generate_into_bank(request: MusicRequest, bank, name: str, tags: list[str],
                       overwrite: bool = False):
    """Generate ``request.samples`` clips and add them to ``bank``. Returns their entries, or
    None when the run stopped at ``max_windows`` (checkpointed; resume later)."""
    names = clip_names(name, request.samples)
    taken = [n for n in names if n in bank]
    if taken and not overwrite:
        raise PhospheneError(f"the bank already has {', '.join(taken)} (choose another --name, "
                             "or pass --overwrite)")
    work_dir = request.work_dir or (bank.path / ".work" / name)
    try:
        audio, rate, provenance = generate_audio(request, work_dir)
    except js.SamplingStopped as stop:
        log.warning("%s; tokens are in %s", stop, work_dir)
        return None
    entries = []
    for i, clip_name in enumerate(names):
        source = dict(provenance, sample_index=i)
        entries.append(bank.add(clip_name, audio[i], rate, source=source, tags=tags,
                                overwrite=overwrite))
    return entries


def generate_audio(request: MusicRequest, work_dir: Path,
                   models: dict | None = None) -> tuple[np.ndarray, int, dict]:
    """(audio (samples, frames), rate, provenance) for ``request``; Jukebox checkpoints its
    tokens in ``work_dir``. ``models``: a cache of loaded models kept by the caller (a batch
    worker loads each model once). Raises ``js.SamplingStopped`` at ``max_windows``."""
    if request.backend == "musicgen":
        return generate_musicgen(request)
    if request.backend == "jukebox":
        return generate_jukebox(request, work_dir, models=models)
    raise PhospheneError(f"unknown backend {request.backend!r}")


# -- Jukebox --------------------------------------------------------------------------------

def load_jukebox(model: str, device: str):
    """(model, tokenizer) from a save_pretrained folder, or a hub name (downloads; online)."""
    try:
        from transformers.models.deprecated.jukebox import JukeboxModel, JukeboxTokenizer
    except ImportError as exc:
        raise PhospheneError("Jukebox needs transformers 4.x (pip install 'phosphene[pregen]'); "
                             f"it was removed in transformers 5 ({exc})") from exc
    path = Path(model).expanduser()
    source = str(path) if path.is_dir() else model
    if not path.is_dir() and ("/" not in model or model.startswith((".", "/", "~"))):
        raise PhospheneError(f"--model {model}: no such folder (and not a hub name such as "
                             "openai/jukebox-1b-lyrics)")
    try:
        # min_duration=0 as in transformers' own sampling examples: clips of any length
        jukebox = JukeboxModel.from_pretrained(source, min_duration=0).eval().to(device)
        tokenizer = JukeboxTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise PhospheneError(f"cannot load a Jukebox model from {source}: {exc}") from exc
    return jukebox, tokenizer


def _vocabulary_key(tokenizer, value: str) -> str:
    """How the tokenizer looks up an artist or genre (JukeboxTokenizer.prepare_for_tokenization)."""
    if tokenizer.version[0] == "v3":
        return value.lower()
    return tokenizer._normalize(value) + ".v2"


def _display(key: str) -> str:
    return key[:-3].replace("_", " ") if key.endswith(".v2") else key


def validate_choice(kind: str, value: str | None, vocabulary: dict, key_of) -> str:
    """Check ``value`` against the model's list; raise with close matches when unknown."""
    if not value:
        raise PhospheneError(f"--{kind} is required for Jukebox")
    key = key_of(value)
    if key in vocabulary:
        return key
    known = [_display(k) for k in vocabulary if k not in ("unknown", "<unk>")]
    close = difflib.get_close_matches(_display(key), known, n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}?" if close else f" ({len(known)} {kind}s known)"
    raise PhospheneError(f"--{kind} {value!r} is not one of this model's {kind}s{hint}")


def _fingerprint(request: MusicRequest, total_length: int, levels: list[int],
                 prime_info: dict | None) -> dict:
    return {
        "model": str(request.model), "artist": request.artist, "genre": request.genre,
        "lyrics_sha256": hashlib.sha256(request.lyrics.encode()).hexdigest(),
        "total_length": total_length, "levels": levels, "samples": request.samples,
        "seed": request.seed, "temperature": request.temperature,
        "prime": prime_info,
    }


def generate_jukebox(request: MusicRequest, work_dir: Path,
                     models: dict | None = None) -> tuple[np.ndarray, int, dict]:
    device = str(pick_device(request.device, allow_mps=False))
    key = ("jukebox", str(request.model), device)
    if models is not None and key in models:
        model, tokenizer = models[key]
    else:
        model, tokenizer = load_jukebox(request.model, device)
        if models is not None:
            models[key] = (model, tokenizer)
    rate = int(model.config.sampling_rate)
    artist = validate_choice("artist", request.artist, tokenizer.artists_encoder,
                             lambda v: _vocabulary_key(tokenizer, v))
    for genre in (request.genre or "").split("_") if tokenizer.version[0] != "v3" else [request.genre]:
        validate_choice("genre", genre, tokenizer.genres_encoder,
                        lambda v: _vocabulary_key(tokenizer, v))
    top = model.priors[0]
    hop = int(top.raw_to_tokens)
    frames = int(round(request.seconds * rate))
    if frames < hop:
        raise PhospheneError(f"--seconds {request.seconds} is shorter than one top-level code")
    # Jukebox samples whole top-level codes: cover the request, trim the decoded audio.
    total_length = -(-frames // hop) * hop
    if request.seconds > model.config.max_duration:
        raise PhospheneError(f"--seconds {request.seconds}: the model is conditioned on songs "
                             f"of at most {model.config.max_duration:.0f} s")
    levels = [0] if request.levels == "top" else list(range(len(model.priors)))

    prime_tokens, prime_info = None, None
    if request.prime is not None:
        import soundfile
        try:
            prime, prime_rate = soundfile.read(request.prime, dtype="float32", always_2d=True)
        except Exception as exc:  # libsndfile error types vary
            raise PhospheneError(f"cannot read --prime {request.prime}: {exc}") from exc
        prime = resample(prime.mean(axis=1, keepdims=True), prime_rate, rate)[:, 0]
        want = request.prime_seconds if request.prime_seconds is not None else len(prime) / rate
        n = min(int(want * rate), len(prime), total_length - hop) // hop * hop
        if n <= 0:
            raise PhospheneError("--prime: the priming audio must be shorter than --seconds and "
                                 "at least one top-level code long")
        prime = prime[:n]
        prime_tokens = js.encode_prime(model, prime, request.samples)
        prime_info = {"file": request.prime.name, "seconds": n / rate,
                      "sha256": hashlib.sha256(request.prime.read_bytes()).hexdigest()}

    encoded = tokenizer(artist=request.artist, genres=request.genre, lyrics=request.lyrics)
    labels = [ids.repeat(request.samples, 1).to(device) for ids in encoded["input_ids"]]
    fingerprint = _fingerprint(request, total_length, levels, prime_info)
    tokens = js.sample_tokens(
        model, labels, levels=levels, total_length=total_length, n_samples=request.samples,
        seed=request.seed, temperature=request.temperature,
        checkpoint=js.TokenCheckpoint(work_dir), fingerprint=fingerprint, resume=request.resume,
        prime_tokens=prime_tokens, max_windows=request.max_windows, progress=request.progress)
    audio = js.decode(model, tokens, levels[-1])[:, :frames]
    provenance = {
        "backend": "jukebox", "model": str(request.model), "artist": request.artist,
        "genre": request.genre, "artist_key": artist, "lyrics": request.lyrics,
        "levels": request.levels, "seconds": frames / rate, "model_sample_rate": rate,
        "seed": request.seed, "temperature": request.temperature, "prime": prime_info,
        "tokens_file": str(Path(work_dir) / js.CHECKPOINT), "device": device,
    }
    return audio, rate, provenance
