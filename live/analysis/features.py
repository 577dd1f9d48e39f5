"""FeatureFrame: what the analyzer hears in one hop, stamped with the audio sample clock.

This is the contract between the analyzer (producer) and everything that reacts to sound
(controls, director, effects, reports). Values named ``*_norm`` or listed in ``SOURCES`` are
normalised to roughly 0..1 after automatic gain and the noise gate, so a quiet voice and a loud
PA drive the same parameter range; raw measurements keep their units in the name.
"""

from __future__ import annotations

from dataclasses import dataclass

# Names a mapping can use as a source (``FeatureFrame.source(name)``), all ~0..1.
SOURCES = ("level", "onset", "onset_strength", "low", "mid", "high", "centroid", "flatness",
           "beat", "beat_phase", "novelty", "section", "bar", "bar_phase", "phrase",
           "phrase_phase", "build", "drop", "breakdown")
# the sources that are events (1.0 in the hop they happen, else 0.0)
_FLAGS = frozenset(("onset", "beat", "section", "bar", "phrase", "drop"))


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    sample_index: int        # stream sample index at the END of this hop (one clock for all)
    sample_rate: int         # Hz
    rms_dbfs: float          # raw RMS of the hop in dBFS (-inf..0), before gain and gate
    level: float             # normalised envelope (AGC + gate + attack/release), 0..1
    onset_strength: float    # normalised onset detection function value, 0..1
    onset: bool              # an onset event was picked in this hop
    low: float               # low-band energy envelope, normalised 0..1
    mid: float               # mid-band energy envelope, normalised 0..1
    high: float              # high-band energy envelope, normalised 0..1
    centroid_hz: float       # spectral centroid in Hz (brightness)
    flatness: float          # spectral flatness 0 (tonal) .. 1 (noise)
    tempo_bpm: float         # current tempo estimate, 0.0 when not locked
    beat_phase: float        # 0..1 position within the current beat (0 = on the beat)
    beat: bool               # a beat falls in this hop
    gated: bool = False      # True when the input is below the noise floor
    # song structure (structure.py): bars and seconds, not hops
    novelty: float = 0.0     # section-change novelty 0..1 (0.5 at the section threshold)
    section: bool = False    # a section change was detected in this hop
    bar: bool = False        # a bar starts in this hop
    bar_phase: float = 0.0   # 0..1 position within the bar
    bar_index: int = 0       # bars since the last section change (the phrase anchor)
    phrase: bool = False     # a phrase (AnalyzerSettings.phrase_bars bars) starts in this hop
    phrase_phase: float = 0.0  # 0..1 position within the phrase
    build: float = 0.0       # 0..1: level, brightness and onset rate rising over bars
    drop: bool = False       # a sudden rise after a build or a break, in this hop
    breakdown: float = 0.0   # 0..1: well below the song's reference level (a break)

    @property
    def time_s(self) -> float:
        return self.sample_index / self.sample_rate

    def source(self, name: str) -> float:
        """Value of a mapping source by name (see ``SOURCES``), as a float ~0..1."""
        if name in _FLAGS:
            return 1.0 if getattr(self, name) else 0.0
        if name == "centroid":
            # brightness on a log scale: 100 Hz -> 0, 10 kHz -> 1
            import math
            hz = max(self.centroid_hz, 1.0)
            return min(max((math.log10(hz) - 2.0) / 2.0, 0.0), 1.0)
        if name in SOURCES:
            return float(getattr(self, name))
        raise KeyError(f"unknown feature source {name!r}; known: {', '.join(SOURCES)}")

    @classmethod
    def silent(cls, sample_index: int, sample_rate: int) -> "FeatureFrame":
        """The frame of a silent (or missing) input: what the engine sees when a device is lost."""
        return cls(sample_index=sample_index, sample_rate=sample_rate, rms_dbfs=float("-inf"),
                   level=0.0, onset_strength=0.0, onset=False, low=0.0, mid=0.0, high=0.0,
                   centroid_hz=0.0, flatness=0.0, tempo_bpm=0.0, beat_phase=0.0, beat=False,
                   gated=True)
