"""The streaming analyzer: one hop of samples in, one ``FeatureFrame`` out.

Causal and hop-by-hop, so live input and an offline file give the same frames (offline just
feeds the file's hops faster). Everything that depends on the sample rate — FFT size, window,
filterbanks, smoothing coefficients — is computed once in ``__init__``; ``process`` reuses
preallocated buffers and costs the same every hop (the tempo re-estimate every
``tempo_update_s`` is the one exception: a few FFTs over seconds of onset history).

Signal path per hop::

    block -> sanitize (finite, in [-1, 1]) -> DC blocker -> RMS dBFS -> gate (noise floor)
          -> slow AGC gain
          -> STFT frame (window_ms, Hann) -> |X| -> SuperFlux onset strength -> peak picker
                                           (or neural_onsets.py's activation, per preset)
                                           -> low/mid/high band energies -> envelopes
                                           -> spectral centroid, flatness
          band-wise flux (tempo accent) -> tempo / beat phase tracker
          |X|^2, level, onsets, beats -> structure (structure.py: sections, bars and
                                          phrases, builds, drops, breaks; per 100 ms block)

Numerics: the analyzer must survive any input for hours, including digital silence after
sound, where every decaying state (the DC blocker, the envelopes) would otherwise sink into
subnormal numbers -- slow, and one hop's energy divided by the hop length rounds to 0.0. So no
logarithm on this path takes a value that can be zero (``power_db`` and the explicit floors
below), and decaying states are flushed to exact zero below ``FLUSH_BELOW``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
from scipy.signal import lfilter, lfilter_zi

from phosphene.audio_file import sanitize_audio
from phosphene.errors import PhospheneError
from phosphene.live.analysis.settings import (FLUX_KNOBS, ONSET_DETECTOR_DEFAULTS,
                                              AnalyzerSettings)
from phosphene.live.analysis.envelopes import (FLUSH_BELOW, EnvelopeFollower, SlowGain,
                                               smoothing_retain)
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.analysis.neural_onsets import NeuralOnsets
from phosphene.live.analysis.onsets import OnlinePeakPicker, SuperFlux
from phosphene.live.analysis.structure import StructureTracker
from phosphene.live.analysis.tap_tempo import TapTempo
from phosphene.live.analysis.tempo import TempoTracker

MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000

# A mean square below this reads as silence (-inf dBFS): 1e-30 is -300 dBFS, far below any
# converter's noise (24 bits: -144 dBFS) yet far above where float64 loses precision.
SILENT_POWER = 1e-30


def power_db(power: float) -> float:
    """``10 log10(power)`` (a mean square, 1.0 = full scale) in dB; ``-inf`` for silence --
    a power below ``SILENT_POWER``, zero included -- so the log never sees 0.0."""
    return 10.0 * math.log10(power) if power >= SILENT_POWER else -math.inf


def fft_size_for(window_ms: float, sample_rate: int) -> int:
    """The power-of-two FFT size closest (in log terms) to ``window_ms`` at ``sample_rate``."""
    samples = window_ms * sample_rate / 1000.0
    return max(64, 1 << int(round(math.log2(max(samples, 2.0)))))


class Analyzer:
    """Streaming feature extractor for one mono stream at ``sample_rate`` Hz.

    ``process(block)`` takes exactly ``settings.hop_length`` samples (float, any scale where
    1.0 is full scale) and returns the ``FeatureFrame`` for that hop, stamped with the sample
    index at the end of the hop.
    """

    def __init__(self, sample_rate: int, settings: AnalyzerSettings | None = None):
        if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
            raise PhospheneError(f"analyzer: sample rate {sample_rate} Hz is outside the "
                                 f"supported {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
        self.settings = s = settings or AnalyzerSettings()
        self.sample_rate = sr = int(sample_rate)
        self.hop_length = hop = s.hop_length
        self.n_fft = n_fft = max(fft_size_for(s.window_ms, sr), 1 << (hop - 1).bit_length())
        hop_s = hop / sr
        self.frame_rate = sr / hop

        # framing buffers (float64: the FFT works in double anyway, so no conversions per hop)
        self._hop = np.zeros(hop)
        self._frame = np.zeros(n_fft)
        self._windowed = np.zeros(n_fft)
        # Hann window scaled so a full-scale sinusoid reads ~1.0 in its bin
        self._window = np.hanning(n_fft + 1)[:-1]
        self._window *= 2.0 / self._window.sum()
        self._spectrum = np.zeros(n_fft // 2 + 1, dtype=np.complex128)
        self._mag = np.zeros(n_fft // 2 + 1)
        self._power = np.zeros(n_fft // 2 + 1)
        self._log_power = np.zeros(n_fft // 2 + 1)
        self._freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)

        # DC blocker: first-order high-pass (zero at DC, pole just inside the unit circle)
        if s.dc_block_hz > 0.0:
            r = math.exp(-2.0 * math.pi * s.dc_block_hz / sr)
            self._dc_b, self._dc_a = np.array([1.0, -1.0]), np.array([1.0, -r])
            self._dc_zi = lfilter_zi(self._dc_b, self._dc_a) * 0.0
        else:
            self._dc_b = None

        # level, gain, gate
        self._agc = SlowGain(s.agc_target_dbfs, s.agc_rise_s, s.agc_fall_s, s.agc_min_gain_db,
                             s.agc_max_gain_db, hop_s)
        self._level_env = EnvelopeFollower(s.level_attack_ms, s.level_release_ms, hop_s)
        self._level_floor_db = s.agc_target_dbfs - 0.8 * s.level_range_db
        self._gate_open = False

        # bands: rows of a 0/1 matrix over FFT bins, each band's energy is one dot product
        nyquist = sr / 2.0
        lo, hi = (min(e, nyquist) for e in s.band_edges_hz)
        f = self._freqs
        self._band_matrix = np.stack([(f > 0) & (f < lo), (f >= lo) & (f < hi),
                                      (f >= hi)]).astype(np.float64)
        self._band_power = np.zeros(3)
        self._band_env = [EnvelopeFollower(s.band_attack_ms, s.band_release_ms, hop_s)
                          for _ in range(3)]
        self._band_avg_db = [None, None, None]
        # each band's running average rises within a second (a loud entry is not pinned at 1
        # for long) and falls with band_agc_s (a pause does not pump the floor up)
        self._band_avg_rise = smoothing_retain(hop_s, min(1.0, s.band_agc_s))
        self._band_avg_fall = smoothing_retain(hop_s, s.band_agc_s)
        self._band_floor_db = s.gate_dbfs - 20.0

        # onsets. The tempo accent always comes from the classic mel-band flux (the tempo
        # tracker was tuned on it); the onsets come from the chosen detector's flux, the same
        # object when its filterbank and flux knobs are the classic ones.
        op = s.onset_params()
        classic = ONSET_DETECTOR_DEFAULTS["classic"]
        self._accent_flux = SuperFlux(sr, n_fft, hop, s.onset_bands, s.onset_fmin_hz,
                                      s.onset_fmax_hz, classic["log_multiplier"],
                                      classic["max_filter_bands"], classic["diff_ratio"],
                                      s.tempo_band_edges_hz)
        self._flux = None
        if s.onset_detector == "neural":
            # the network's activation takes the flux's place (the same process(mag, gain))
            self._flux = NeuralOnsets(sr, n_fft)
        elif any(op[k] != classic[k] for k in FLUX_KNOBS):
            self._flux = SuperFlux(sr, n_fft, hop, s.onset_bands, s.onset_fmin_hz,
                                   s.onset_fmax_hz, op["log_multiplier"],
                                   op["max_filter_bands"], op["diff_ratio"],
                                   bands_per_octave=op["bands_per_octave"] or None)
        frames = lambda ms: int(round(ms / 1000.0 * self.frame_rate))  # noqa: E731
        self._picker = OnlinePeakPicker(op["delta"], frames(op["mean_ms"]),
                                        frames(op["max_ms"]), frames(op["min_interval_ms"]),
                                        op["mean_weight"])
        self._odf_peak = 0.0
        self._odf_peak_coef = smoothing_retain(hop_s, s.onset_norm_release_s)

        # tempo
        self._tempo = TempoTracker(self.frame_rate, s.tempo_min_bpm, s.tempo_max_bpm,
                                   s.tempo_prior_bpm, s.tempo_history_s, s.tempo_update_s,
                                   s.tempo_hold_s, s.beat_phase_gain)
        self._tap_tempo = TapTempo(sr, max_taps=5, reset_s=2.0)

        # structure: sections, bars and phrases, builds, drops and breaks
        self._structure = StructureTracker(
            sample_rate=sr, frame_rate=self.frame_rate, freqs=self._freqs,
            block_ms=s.structure_block_ms, novelty_recent_s=s.novelty_recent_s,
            novelty_past_s=s.novelty_past_s, novelty_threshold=s.novelty_threshold,
            section_min_s=s.section_min_s, beats_per_bar=s.beats_per_bar,
            phrase_bars=s.phrase_bars, build_window_s=s.build_window_s, break_db=s.break_db,
            drop_db=s.drop_db)

        self.sample_index = 0
        self.nonfinite_hops = 0  # hops that carried NaN/inf (replaced by silence)

    # -- timing -------------------------------------------------------------------------------
    @property
    def latency_samples(self) -> int:
        """Lookahead: an onset is flagged one hop after the hop whose flux peaked."""
        return self.hop_length

    @property
    def onset_delay_samples(self) -> int:
        """Typical delay from a sound's onset to the hop that flags it: the transient must
        reach the middle of the analysis window, plus the one-hop lookahead. Offline reports
        subtract it so printed onset times line up with the audio."""
        return self.n_fft // 2 + self.hop_length // 2

    # -- the per-hop path ---------------------------------------------------------------------
    def process(self, block: np.ndarray) -> FeatureFrame:
        s = self.settings
        hop = self._hop
        if block.shape != hop.shape:
            raise ValueError(f"analyzer expects blocks of {self.hop_length} mono samples, "
                             f"got shape {block.shape}")
        hop[:] = block
        if not math.isfinite(float(hop.dot(hop))):
            self.nonfinite_hops += 1
        # a broken driver or file: the bad samples become silence, and nothing reaches the
        # filters beyond full scale; the show keeps going (the entry points sanitize too)
        sanitize_audio(hop, out=hop)
        if self._dc_b is not None:
            filtered, self._dc_zi = lfilter(self._dc_b, self._dc_a, hop, zi=self._dc_zi)
            if abs(self._dc_zi[0]) < FLUSH_BELOW:
                # after sound, digital silence leaves the blocker ringing down toward
                # subnormals for seconds: stop it at exact zero
                self._dc_zi[0] = 0.0
        else:
            filtered = hop
        mean_square = float(filtered.dot(filtered)) / self.hop_length
        rms_dbfs = power_db(mean_square)

        # STFT frame: shift in the new hop, window, magnitude spectrum
        frame = self._frame
        frame[:-self.hop_length] = frame[self.hop_length:]
        frame[-self.hop_length:] = filtered
        np.multiply(frame, self._window, out=self._windowed)
        np.fft.rfft(self._windowed, out=self._spectrum)
        np.abs(self._spectrum, out=self._mag)

        # gate with hysteresis, then the slow gain (frozen while gated)
        if self._gate_open:
            self._gate_open = rms_dbfs >= s.gate_dbfs - s.gate_hysteresis_db
        else:
            self._gate_open = rms_dbfs >= s.gate_dbfs
        gated = not self._gate_open
        if s.agc_enabled:
            gain_db = self._agc.gain_db if gated else self._agc.update(rms_dbfs)
        else:
            gain_db = 0.0
        gain = 10.0 ** (gain_db / 20.0)

        # onsets
        flux = self._accent_flux.process(self._mag, gain)
        accent = self._accent_flux.accent  # what the tempo tracker reads (see onsets.py)
        if self._flux is not None:
            flux = self._flux.process(self._mag, gain)
        if gated:
            flux = accent = 0.0
        onset = self._picker.process(flux)
        self._odf_peak = max(flux, self._odf_peak * self._odf_peak_coef)
        if self._odf_peak < FLUSH_BELOW:
            self._odf_peak = 0.0
        onset_strength = min(flux / self._odf_peak, 1.0) if self._odf_peak > 1e-9 else 0.0

        # level (normalised dB scale, then attack/release)
        if gated:
            level_target = 0.0
        else:
            level_target = (rms_dbfs + gain_db - self._level_floor_db) / s.level_range_db
            level_target = min(max(level_target, 0.0), 1.0)
        level = self._level_env.process(level_target)

        # spectrum shape and bands
        np.multiply(self._mag, self._mag, out=self._power)
        total = float(self._mag.sum())
        if total > 1e-12 and not gated:
            centroid_hz = float(self._freqs.dot(self._mag)) / total
            self._power += 1e-12
            np.log(self._power, out=self._log_power)
            flatness = math.exp(float(self._log_power.mean())) / float(self._power.mean())
        else:
            centroid_hz = 0.0
            flatness = 0.0
        np.dot(self._band_matrix, self._power, out=self._band_power)
        bands = [0.0, 0.0, 0.0]
        for i in range(3):
            db = 10.0 * math.log10(self._band_power[i] + 1e-20)
            db = max(db, self._band_floor_db)
            avg = self._band_avg_db[i]
            if gated:
                value = 0.0
            else:
                # each band is normalised by its own slow average: 0.6 at its usual level
                if avg is None:
                    avg = db
                coef = self._band_avg_rise if db > avg else self._band_avg_fall
                avg = db + coef * (avg - db)
                self._band_avg_db[i] = avg
                value = min(max(0.6 + (db - avg) / 30.0, 0.0), 1.0)
            bands[i] = self._band_env[i].process(value)

        tempo_bpm, beat_phase, beat = self._tempo.process(accent)
        st = self._structure.process(self._power, mean_square, centroid_hz, onset, beat,
                                     beat_phase, tempo_bpm, gated)

        self.sample_index += self.hop_length
        return FeatureFrame(sample_index=self.sample_index, sample_rate=self.sample_rate,
                            rms_dbfs=rms_dbfs, level=level, onset_strength=onset_strength,
                            onset=onset, low=bands[0], mid=bands[1], high=bands[2],
                            centroid_hz=centroid_hz, flatness=min(flatness, 1.0),
                            tempo_bpm=tempo_bpm, beat_phase=beat_phase, beat=beat, gated=gated,
                            novelty=st.novelty, section=st.section, bar=st.bar,
                            bar_phase=st.bar_phase, bar_index=st.bar_index, phrase=st.phrase,
                            phrase_phase=st.phrase_phase, build=st.build, drop=st.drop,
                            breakdown=st.breakdown)

    def run(self, blocks: Iterable[np.ndarray]) -> Iterator[FeatureFrame]:
        """Analyze a stream of hop-sized blocks (e.g. ``FileSource.blocks()`` or
        ``AudioIn.blocks()``), yielding one frame per block."""
        for block in blocks:
            yield self.process(block)

    # -- tap tempo ----------------------------------------------------------------------------
    def tap(self) -> float:
        """An external trigger (key, MIDI note, OSC) marks a beat *now*. Two or more taps less
        than 2 s apart set the tempo (``TapTempo``: median of the last intervals) and put the
        phase on the beat. Returns the tapped tempo in BPM, or 0.0 after a first tap (or a
        second tap in the same hop, which carries no interval)."""
        bpm = self._tap_tempo.tap(self.sample_index)
        if bpm is None:
            return 0.0
        self._tempo.tap(bpm, phase=0.0)
        return bpm

    @property
    def tempo_confidence(self) -> float:
        return self._tempo.confidence
