"""Every knob of the streaming analyzer, named with its unit, validated, settable from a preset.

Times are in milliseconds (``*_ms``) or seconds (``*_s``), frequencies in Hz, levels in dBFS or
dB; they are converted to hops and bins once, when an ``Analyzer`` is built for a sample rate, so
the same preset behaves the same at 44.1, 48 or 96 kHz.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Each onset detector's values for the onset_* knobs a preset leaves unset (bands_per_octave 0:
# the onset_bands mel bands). "classic" is the analyzer's path before issue 15; "superflux" is
# the same SuperFlux signal path tuned on the training split of the onset corpus
# (tools/make_onset_corpus.py, tools/tune_onsets.py: coordinate descent on the mean F over the
# four target groups) and checked on its validation split. There the 24-per-octave filterbank
# and the 3-band maximum filter scored below 80 mel bands without it, a stronger log
# compression (lambda 1e3) and comparing with the frame one whole window back (diff_ratio 0:
# 4 hops) gained most; lambda 1e4 scored as well on validation but made noisy speech-like
# bursts (tests/test_analyzer.py) flicker, so 1e3 it is.
ONSET_DETECTOR_DEFAULTS = {
    "classic": {"bands_per_octave": 0, "log_multiplier": 100.0, "max_filter_bands": 3,
                "diff_ratio": 0.5, "delta": 0.05, "mean_weight": 1.0, "mean_ms": 100.0,
                "max_ms": 30.0, "min_interval_ms": 50.0},
    "superflux": {"bands_per_octave": 0, "log_multiplier": 1000.0, "max_filter_bands": 1,
                  "diff_ratio": 0.0, "delta": 0.08, "mean_weight": 1.25, "mean_ms": 100.0,
                  "max_ms": 50.0, "min_interval_ms": 50.0},
    # the small causal network of neural_onsets.py (weights: onset_net.npz, trained by
    # tools/train_onset_net.py); its activation is 0..1 and the peak picker's threshold on it
    # is a plain level (mean_weight 0), chosen on the corpus's validation split. The flux knobs
    # do not apply: the net carries its own front end.
    "neural": {"delta": 0.15, "mean_weight": 0.0, "mean_ms": 100.0, "max_ms": 50.0,
               "min_interval_ms": 50.0},
}
# the knobs of the SuperFlux signal path, which the neural detector does not have
FLUX_KNOBS = ("bands_per_octave", "log_multiplier", "max_filter_bands", "diff_ratio")


class AnalyzerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- framing ------------------------------------------------------------------------------
    hop_length: int = Field(256, ge=16, le=8192,
                            description="samples per hop: one FeatureFrame per hop")
    window_ms: float = Field(21.3, gt=1.0, le=200.0,
                             description="STFT window length; rounded to a power-of-two FFT "
                             "size (1024 samples at 48 kHz)")
    dc_block_hz: float = Field(10.0, ge=0.0, le=200.0,
                               description="corner of the DC-blocking high-pass (0 = off)")

    # -- level, gain and gate -----------------------------------------------------------------
    level_attack_ms: float = Field(5.0, ge=0.0, description="envelope follower attack")
    level_release_ms: float = Field(150.0, ge=0.0, description="envelope follower release")
    agc_target_dbfs: float = Field(-20.0, le=0.0, description="level the automatic gain aims "
                                   "for; it maps to 0.8 on the normalised level scale")
    agc_rise_s: float = Field(8.0, gt=0.0, description="time constant for the gain to come up "
                              "when the input gets quieter")
    agc_fall_s: float = Field(1.0, gt=0.0, description="time constant for the gain to come "
                              "down when the input gets louder")
    agc_max_gain_db: float = Field(40.0, ge=0.0, description="most the automatic gain may add")
    agc_min_gain_db: float = Field(-20.0, le=0.0, description="most it may take away")
    agc_enabled: bool = True
    level_range_db: float = Field(40.0, gt=0.0, description="dynamic range mapped onto the "
                                  "normalised 0..1 scale (below target - range*0.8 is 0)")
    gate_dbfs: float = Field(-60.0, le=0.0, description="noise floor: below it (raw RMS) the "
                             "input counts as silence: level and bands fall to 0, no onsets, "
                             "gain frozen")
    gate_hysteresis_db: float = Field(3.0, ge=0.0, description="the gate closes this far "
                                      "below gate_dbfs, so it does not chatter")

    # -- bands --------------------------------------------------------------------------------
    band_edges_hz: tuple[float, float] = Field((250.0, 2000.0), description="low|mid and "
                                               "mid|high crossover frequencies")
    band_attack_ms: float = Field(5.0, ge=0.0)
    band_release_ms: float = Field(200.0, ge=0.0)
    band_agc_s: float = Field(6.0, gt=0.0, description="time constant of each band's own slow "
                              "normalisation, so treble is as playable as bass")

    # -- onsets (SuperFlux: Böck & Widmer, DAFx 2013) -----------------------------------------
    onset_detector: Literal["superflux", "classic", "neural"] = Field(
        "superflux", description="superflux: octave-spaced filterbank and thresholds tuned on "
        "the onset corpus (tools/make_onset_corpus.py); classic: the 80-mel-band path of "
        "phosphene before it; neural: a small causal network (neural_onsets.py) trained on "
        "the corpus, its onset_delta a threshold on its 0..1 activation. The onset_* knobs "
        "left unset take the chosen detector's values (ONSET_DETECTOR_DEFAULTS)")
    onset_bands: int = Field(80, ge=8, le=256, description="mel (log-frequency) filterbank "
                             "bands the flux is computed on, when onset_bands_per_octave is 0")
    onset_bands_per_octave: int | None = Field(None, ge=0, le=48, description="bands per "
                                               "octave of SuperFlux's octave-spaced "
                                               "filterbank; 0: onset_bands mel bands instead")
    onset_fmin_hz: float = Field(30.0, ge=0.0)
    onset_fmax_hz: float = Field(16000.0, gt=0.0, description="capped at Nyquist")
    onset_log_multiplier: float | None = Field(None, gt=0.0, description="lambda in log(1 + "
                                               "lambda * |X|): how strongly quiet partials "
                                               "count")
    onset_max_filter_bands: int | None = Field(None, ge=1, le=15, description="width of the "
                                               "maximum filter over frequency that suppresses "
                                               "vibrato")
    onset_diff_ratio: float | None = Field(None, ge=0.0, le=1.0, description="compare with the "
                                           "frame whose window overlaps this one by at most "
                                           "this ratio")
    onset_delta: float | None = Field(None, ge=0.0, description="threshold above the moving "
                                      "mean, in units of the (gain-normalised) flux")
    onset_mean_weight: float | None = Field(None, ge=0.0, le=10.0, description="the threshold "
                                            "is onset_mean_weight * moving mean + onset_delta")
    onset_mean_ms: float | None = Field(None, gt=0.0, description="span of the moving mean")
    onset_max_ms: float | None = Field(None, ge=0.0, description="a peak must be the maximum "
                                       "of this much past")
    onset_min_interval_ms: float | None = Field(None, ge=0.0, description="minimum time "
                                                "between two onsets (the combination window)")
    onset_norm_release_s: float = Field(10.0, gt=0.0, description="release of the running peak "
                                        "that scales onset_strength to 0..1")

    # -- tempo and beat -----------------------------------------------------------------------
    tempo_min_bpm: float = Field(60.0, gt=10.0)
    tempo_max_bpm: float = Field(200.0, gt=10.0)
    tempo_prior_bpm: float = Field(120.0, gt=10.0, description="centre of the (broad) "
                                   "preference used when two tempi explain the rhythm equally")
    tempo_band_edges_hz: tuple[float, float] = Field((250.0, 2000.0), description="low|mid "
                                                     "and mid|high crossovers of the regions "
                                                     "whose flux counts equally in the accent "
                                                     "the tempo is read from (a kick in a few "
                                                     "low bands weighs as much as hats across "
                                                     "many high ones)")
    tempo_history_s: float = Field(8.0, ge=2.0, le=30.0, description="onset history the tempo "
                                   "is estimated from")
    tempo_update_s: float = Field(0.5, gt=0.0, description="how often the tempo is re-estimated")
    tempo_hold_s: float = Field(8.0, ge=0.0, description="how long a locked tempo is held "
                                "through a break before it is dropped")
    beat_phase_gain: float = Field(0.5, ge=0.0, le=1.0, description="how far each estimate "
                                   "pulls the beat phase toward the onset stream")

    # -- structure (see structure.py) -----------------------------------------------------------
    structure_block_ms: float = Field(100.0, ge=20.0, le=1000.0, description="the spectrum is "
                                      "summarised in blocks this long for the structure features")
    novelty_recent_s: float = Field(1.0, gt=0.0, le=8.0, description="the recent window a "
                                    "section change is judged on (a change is detected about "
                                    "half of it later)")
    novelty_past_s: float = Field(10.0, gt=0.0, le=60.0, description="the past the recent window "
                                  "is compared with (long enough for a cycle of chords)")
    novelty_threshold: float = Field(3.0, gt=0.0, description="novelty (the recent window's "
                                     "mean squared distance from the nearest past window, bands "
                                     "in units of 3 dB) that is a section change; the novelty "
                                     "source reads 0.5 there")
    section_min_s: float = Field(4.0, ge=0.0, description="least time between two section "
                                 "changes (and between two drops)")
    beats_per_bar: int = Field(4, ge=1, le=16)
    phrase_bars: int = Field(8, ge=1, le=64, description="bars in a phrase (the phrase and "
                             "phrase_phase features)")
    build_window_s: float = Field(8.0, ge=1.0, le=60.0, description="a build is level, "
                                  "brightness and onset rate rising across this window")
    break_db: float = Field(6.0, gt=0.0, description="a break: the last second this far below "
                            "the song's reference level (breakdown reads 0.5)")
    drop_db: float = Field(4.0, gt=0.0, description="a drop: the last half second this far "
                           "above the two seconds before (its bass region 1.5 times as "
                           "far), during or right after a build")

    def onset_params(self) -> dict:
        """The onset knobs in effect: each one set here, else the detector's default."""
        params = dict(ONSET_DETECTOR_DEFAULTS[self.onset_detector])
        for name in params:
            value = getattr(self, f"onset_{name}")
            if value is not None:
                params[name] = value
        return params

    @model_validator(mode="after")
    def _check_ranges(self):
        lo, hi = self.band_edges_hz
        if not 0.0 < lo < hi:
            raise ValueError(f"band_edges_hz must be two increasing positive frequencies, "
                             f"got {self.band_edges_hz}")
        lo, hi = self.tempo_band_edges_hz
        if not 0.0 < lo < hi:
            raise ValueError(f"tempo_band_edges_hz must be two increasing positive frequencies, "
                             f"got {self.tempo_band_edges_hz}")
        if not self.tempo_min_bpm < self.tempo_max_bpm:
            raise ValueError("tempo_min_bpm must be below tempo_max_bpm")
        if self.onset_fmin_hz >= self.onset_fmax_hz:
            raise ValueError("onset_fmin_hz must be below onset_fmax_hz")
        if self.onset_detector == "neural":
            flux_set = [f"onset_{k}" for k in FLUX_KNOBS
                        if getattr(self, f"onset_{k}") is not None]
            if flux_set:
                raise ValueError(f"{', '.join(flux_set)}: SuperFlux knobs, which "
                                 "onset_detector neural does not use (it has its own front "
                                 "end); leave them unset or choose superflux/classic")
        return self
