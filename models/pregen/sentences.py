"""Split text into sentences for per-sentence synthesis (VITS degrades on long inputs)."""

from __future__ import annotations

# YourTTS language ids -> pySBD segmenter languages (pySBD has no Portuguese; its English
# rules handle Portuguese punctuation well enough, which is what coqui-tts does too).
_SEGMENTER_LANGUAGE = {"en": "en", "fr-fr": "fr", "pt-br": "en"}


def split_sentences(text: str, language: str) -> list[str]:
    """Sentences of ``text`` (stripped, empty ones dropped), split with pySBD's rules."""
    import pysbd
    segmenter = pysbd.Segmenter(language=_SEGMENTER_LANGUAGE.get(language, "en"), clean=True)
    return [s.strip() for s in segmenter.segment(" ".join(text.split())) if s.strip()]
