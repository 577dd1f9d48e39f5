"""``phosphene pregen voice``: a cloned voice speaking a text (YourTTS through coqui-tts).

YourTTS (Casanova et al., 2022) is a multilingual VITS conditioned on a language id and on a
speaker embedding (d-vector) from a speaker encoder; given a few seconds of someone's voice
it speaks English, French or Brazilian Portuguese in that voice. We drive coqui-tts's own
``Synthesizer`` so the numerics are the library's; this module does the parts around it:
finding the files, checking the reference recordings, splitting and joining sentences, and
writing the clip into the bank with its provenance.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.models.device import pick_device
from phosphene.models.pregen.reference_audio import load_reference
from phosphene.models.pregen.sentences import split_sentences

log = logging.getLogger(__name__)

COQUI_NAME = "tts_models/multilingual/multi-dataset/your_tts"
ALIASES = {"your_tts": COQUI_NAME, "yourtts": COQUI_NAME, COQUI_NAME: COQUI_NAME}
LANGUAGES = ("en", "fr-fr", "pt-br")

# The files of a model directory as coqui-tts writes it (ModelManager._update_paths), by the
# config field that points at each. The first existing candidate wins.
_CHECKPOINTS = ("model_file.pth", "model_file.pth.tar", "model.pth", "checkpoint.pth",
                "best_model.pth")
_PATH_FIELDS = {
    "d_vector_file": ("speakers.json", "speakers.pth"),
    "speakers_file": ("speaker_ids.json", "speaker_ids.pth"),
    "language_ids_file": ("language_ids.json",),
    "speaker_encoder_model_path": ("model_se.pth", "model_se.pth.tar"),
    "speaker_encoder_config_path": ("config_se.json",),
}
_REQUIRED = ("language_ids_file", "speaker_encoder_model_path", "speaker_encoder_config_path")


@dataclass
class VoiceRequest:
    text: str
    speaker_wavs: list[Path]
    language: str
    model: str = "your_tts"
    seed: int = 0
    gap_s: float = 0.3
    device: str = "auto"


def resolve_model_dir(model: str) -> Path:
    """A local YourTTS directory, or the coqui model name downloaded by coqui-tts (online)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if model in ALIASES:
        from TTS.utils.manage import ModelManager
        log.info("fetching %s through coqui-tts (first use downloads ~400 MB)", ALIASES[model])
        try:
            model_path, _config, _item = ModelManager(progress_bar=True).download_model(ALIASES[model])
        except Exception as exc:  # network errors come in many types
            raise PhospheneError(f"could not get {ALIASES[model]} through coqui-tts ({exc}); "
                                 "download it on a machine with internet and pass the folder "
                                 "with --model DIR") from exc
        return Path(model_path).parent if Path(model_path).is_file() else Path(model_path)
    raise PhospheneError(f"--model {model!r} is neither a folder nor a known model name "
                         f"(use a YourTTS folder, or {COQUI_NAME})")


def localised_config(model_dir: Path, out_dir: Path) -> tuple[Path, Path]:
    """(checkpoint, config) for ``model_dir``, the config's file paths pointed at the files
    in ``model_dir`` (configs carry the absolute paths of the machine that wrote them)."""
    checkpoint = next((model_dir / c for c in _CHECKPOINTS if (model_dir / c).is_file()), None)
    config_path = model_dir / "config.json"
    if checkpoint is None or not config_path.is_file():
        raise PhospheneError(f"{model_dir} is not a YourTTS folder: expected config.json and a "
                             f"checkpoint ({' or '.join(_CHECKPOINTS)})")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PhospheneError(f"{config_path} is not valid JSON: {exc}") from exc
    model_args = config.setdefault("model_args", {})
    found = {}
    for key, candidates in _PATH_FIELDS.items():
        named = [Path(v).name for v in (config.get(key), model_args.get(key))
                 if isinstance(v, str) and v]
        named += [Path(v[0]).name for v in (config.get(key), model_args.get(key))
                  if isinstance(v, list) and v]
        target = next((model_dir / n for n in (*named, *candidates) if (model_dir / n).is_file()),
                      None)
        if target is None:
            continue
        found[key] = target
        for section in (config, model_args):
            if key in section:
                section[key] = [str(target)] if isinstance(section[key], list) else str(target)
    missing = [k for k in _REQUIRED if k not in found]
    if missing:
        names = ", ".join(" or ".join(_PATH_FIELDS[k]) for k in missing)
        raise PhospheneError(f"{model_dir} lacks what YourTTS needs: {names}")
    out = out_dir / "config.json"
    out.write_text(json.dumps(config, indent=2))
    return checkpoint, out


@dataclass
class LoadedVoiceModel:
    """A coqui-tts synthesizer and what reading the references needs, loaded once."""

    synth: object
    encoder_rate: int
    files: tempfile.TemporaryDirectory   # the localised config it was loaded from


def load_voice_model(model_dir: Path, device: str) -> LoadedVoiceModel:
    from TTS.utils import synthesizer as coqui_synth  # heavy: coqui-tts, torch

    files = tempfile.TemporaryDirectory(prefix="phosphene-voice-model-")
    checkpoint, config_path = localised_config(model_dir, Path(files.name))
    encoder_config = json.loads(
        Path(json.loads(config_path.read_text())["model_args"]
             ["speaker_encoder_config_path"]).read_text())
    log.info("loading YourTTS from %s on %s", model_dir, device)
    synth = coqui_synth.Synthesizer(tts_checkpoint=checkpoint, tts_config_path=config_path,
                                    use_cuda=device == "cuda")
    return LoadedVoiceModel(synth, int(encoder_config["audio"]["sample_rate"]), files)


def synthesize(request: VoiceRequest, progress: bool = True,
               models: dict | None = None) -> tuple[np.ndarray, int, dict]:
    """Speak ``request.text`` in the reference voice. Returns (mono float32, sr, provenance).
    ``models``: a cache of loaded models kept by the caller (a batch worker loads each once)."""
    import soundfile
    import torch
    from tqdm import tqdm
    from TTS.utils import synthesizer as coqui_synth

    if request.language not in LANGUAGES:
        raise PhospheneError(f"--language {request.language!r}: YourTTS speaks "
                             f"{', '.join(LANGUAGES)}")
    sentences = split_sentences(request.text, request.language)
    if not sentences:
        raise PhospheneError("the text is empty")
    if not request.speaker_wavs:
        raise PhospheneError("give at least one --speaker-wav recording of the voice to clone")
    model_dir = resolve_model_dir(request.model)
    device = str(pick_device(request.device, allow_mps=False))
    key = ("yourtts", str(model_dir), device)
    loaded = models.get(key) if models is not None else None
    if loaded is None:
        loaded = load_voice_model(model_dir, device)
        if models is not None:
            models[key] = loaded
    synth, encoder_rate = loaded.synth, loaded.encoder_rate
    with tempfile.TemporaryDirectory(prefix="phosphene-voice-") as tmp:
        tmp = Path(tmp)
        references = [load_reference(p, encoder_rate) for p in request.speaker_wavs]
        reference_files = []
        for i, ref in enumerate(references):
            # coqui's encoder reads files; hand it the checked, resampled mono version
            reference_files.append(str(tmp / f"reference{i}.wav"))
            soundfile.write(reference_files[-1], ref.samples, encoder_rate, subtype="FLOAT")

        languages = list(synth.tts_model.language_manager.language_names)
        if request.language not in languages:
            raise PhospheneError(f"the model in {model_dir} does not speak {request.language!r} "
                                 f"(it knows {', '.join(languages)})")
        # The speaker encoder is the slow part on a CPU: embed the references once, into
        # coqui's voice cache in our temp folder, and synthesise every sentence from it.
        voice_dir = tmp / "voices"
        synth.tts_model.clone_voice(reference_files, "reference", voice_dir)
        rate = int(synth.output_sample_rate)
        gap = np.zeros(int(round(request.gap_s * rate)), dtype=np.float32)
        pieces = []
        for i, sentence in enumerate(tqdm(sentences, desc="pregen voice: sentences",
                                          unit="sentence", disable=not progress)):
            # one seed per sentence: the same text and seed give the same clip
            torch.manual_seed(request.seed + i)
            wav = synth.tts(sentence, speaker_name="reference", language_name=request.language,
                            speaker_wav=None, voice_dir=voice_dir, split_sentences=False)
            wav = np.asarray(wav, dtype=np.float32)
            # Synthesizer.tts pads every sentence with PAD_SILENCE_SAMPLES zeros; we join
            # sentences with our own (shorter, configurable) gap instead.
            pad = coqui_synth.PAD_SILENCE_SAMPLES
            if len(wav) > pad and not np.any(wav[-pad:]):
                wav = wav[:-pad]
            if pieces:
                pieces.append(gap)
            pieces.append(wav)
    audio = np.concatenate(pieces)
    provenance = {
        "backend": "yourtts",
        "model": str(model_dir if Path(request.model).expanduser().is_dir() else request.model),
        "text": request.text,
        "sentences": sentences,
        "language": request.language,
        "speaker_files": [{"file": r.path.name, "sha256": r.sha256,
                           "duration_s": round(r.duration_s, 3),
                           "original_sample_rate": r.original_sample_rate,
                           "warnings": list(r.warnings)} for r in references],
        "seed": request.seed,
        "model_sample_rate": rate,
        "device": device,
    }
    return audio, rate, provenance
