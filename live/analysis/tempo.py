"""Causal tempo and beat-phase tracking from the onset-accent stream, plus tap tempo.

The input is the analyzer's tempo accent (see ``onsets.py``): band-wise flux with equal weight
per frequency region, so kicks and snares, which carry the metre, are not outweighed by hi-hats
spread over many high bands. (On the plain flux a kick-hat-snare-hat loop reads as eighth notes
at 60-75 BPM and as half notes at 150-180 BPM; on the accent it reads as quarter notes.)

Every ``update`` hops the tracker looks at the last few seconds of accent:
- tempo: the autocorrelation of that history, read at the first multiples of each candidate
  beat period (a comb). A candidate's score is the *mean* over its multiples, so a period twice
  too short (half its multiples fall between the hits) scores low; when a period and its double
  explain the rhythm nearly equally (a click track; a drum loop whose bar repeats every
  two beats), the faster one is the beat. Only the first 8 multiples count: the long lags add
  little about the beat and, summed over many bars, let a 3/2 period (a dotted-quarter pulse
  the kicks of a syncopated bar suggest) outscore the beat.
- phase: the offset that puts a comb of that period on the most accent.
Between updates a free-running oscillator advances the phase by one hop, so beats are flagged
every hop with no lookahead; each update pulls the phase toward the estimate. A new tempo is
taken only when two estimates in a row agree on it (hysteresis: one odd estimate does not flip
the metrical level). Through a break (weak or no onsets) the last tempo and phase keep running
for ``hold_s``, then the tracker unlocks.
"""

from __future__ import annotations

import math

import numpy as np


class TempoTracker:
    AGREE = 0.04       # two estimates within 4% are the same tempo
    MIN_CONFIDENCE = 0.25

    def __init__(self, frame_rate: float, min_bpm: float, max_bpm: float, prior_bpm: float,
                 history_s: float, update_s: float, hold_s: float, phase_gain: float):
        self.frame_rate = frame_rate  # hops per second
        self._size = int(round(history_s * frame_rate))
        self._hist = np.zeros(2 * self._size)  # mirrored, see OnlinePeakPicker
        self._pos = 0
        self._filled = 0
        self._update_every = max(1, int(round(update_s * frame_rate)))
        self._since_update = 0
        self._hold_frames = hold_s * frame_rate
        self._phase_gain = phase_gain
        self._min_fill = int(round(min(3.0, history_s) * frame_rate))
        self._nfft = 1 << (2 * self._size - 1).bit_length()
        self._max_lag = self._size * 2 // 3      # lags whose estimate rests on >= 1/3 of history
        # candidate periods (frames) on a 0.5% log grid, and the multiples read for each
        bpms = np.exp(np.arange(math.log(min_bpm), math.log(max_bpm), math.log(1.005)))
        self._cand_bpm = bpms
        self._cand_period = 60.0 * frame_rate / bpms
        self._prior = np.exp(-0.5 * (np.log2(bpms / prior_bpm) / 1.5) ** 2)  # broad: 1.5 oct
        self._tempo_bpm = 0.0
        self._period = 0.0
        self.phase = 0.0
        self._frames_since_confident = math.inf
        self._pending_bpm = 0.0
        self.confidence = 0.0

    @property
    def tempo_bpm(self) -> float:
        return self._tempo_bpm

    def process(self, accent: float) -> tuple[float, float, bool]:
        """Feed one hop's onset accent; returns (tempo_bpm or 0, beat_phase 0..1, beat)."""
        size, pos = self._size, self._pos
        self._hist[pos] = accent
        self._hist[pos + size] = accent
        self._pos = (pos + 1) % size
        if self._filled < size:
            self._filled += 1
        self._frames_since_confident += 1
        beat = False
        if self._period > 0.0:
            self.phase += 1.0 / self._period
            if self.phase >= 1.0:
                self.phase -= math.floor(self.phase)
                beat = True
        self._since_update += 1
        if self._since_update >= self._update_every and self._filled >= self._min_fill:
            self._since_update = 0
            self._estimate()
        if self._tempo_bpm > 0.0 and self._frames_since_confident > self._hold_frames:
            self._unlock()
        if self._tempo_bpm <= 0.0:
            return 0.0, 0.0, False
        return self._tempo_bpm, self.phase, beat

    def tap(self, bpm: float, phase: float = 0.0) -> None:
        """Set tempo and phase from outside (tap tempo): the tracker continues from here."""
        self._set_tempo(bpm)
        self.phase = phase % 1.0
        self._frames_since_confident = 0
        self._pending_bpm = 0.0

    # -- internals ----------------------------------------------------------------------------
    def _history(self) -> np.ndarray:
        end = self._pos + self._size
        return self._hist[end - self._filled:end]

    def _estimate(self) -> None:
        x = self._history()
        x = x - x.mean()
        energy = float(x.dot(x))
        if energy <= 1e-12:
            return
        n = len(x)
        spec = np.fft.rfft(x, self._nfft)
        acf = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, self._nfft)[:n]
        max_lag = min(self._max_lag, n * 2 // 3)
        acf = acf[:max_lag + 2] / (acf[0] * (n - np.arange(max_lag + 2)) / n)  # unbiased, 0..1
        # widen the narrow peaks a little so a period off by a fraction of a hop still reads them
        acf = np.convolve(acf, (0.25, 0.5, 0.25), mode="same")
        scores = self._comb_scores(acf, max_lag)
        weighted = scores * self._prior
        top = float(weighted.max())
        # local maxima of the score; the beat is the fastest peak explaining 85% as much
        # as the best one (candidates are in increasing tempo order)
        peaks = np.nonzero((weighted[1:-1] >= weighted[:-2]) & (weighted[1:-1] >= weighted[2:])
                           & (weighted[1:-1] >= 0.85 * top))[0] + 1
        best = int(peaks[-1]) if len(peaks) else int(np.argmax(weighted))
        confidence = float(scores[best])
        self.confidence = confidence
        if confidence < self.MIN_CONFIDENCE:
            return
        bpm = self._refine(scores, best)
        self._frames_since_confident = 0
        self._accept(bpm)
        if self._period > 0.0:
            self._correct_phase(x)

    def _comb_scores(self, acf: np.ndarray, max_lag: int) -> np.ndarray:
        periods = self._cand_period
        ks = np.arange(1, 9)  # the first 8 multiples (see the module docstring)
        lags = periods[:, None] * ks[None, :]
        valid = lags <= max_lag
        lags = np.where(valid, lags, 0.0)
        i0 = lags.astype(np.int64)
        frac = lags - i0
        values = acf[i0] * (1.0 - frac) + acf[i0 + 1] * frac
        counts = valid.sum(axis=1)
        scores = np.where(counts > 0, (values * valid).sum(axis=1) / np.maximum(counts, 1), 0.0)
        return scores

    def _refine(self, scores: np.ndarray, i: int) -> float:
        """Parabolic interpolation of the score peak on the log-tempo grid."""
        if 0 < i < len(scores) - 1:
            a, b, c = scores[i - 1], scores[i], scores[i + 1]
            denom = a - 2 * b + c
            if denom < 0:
                offset = 0.5 * (a - c) / denom
                return float(self._cand_bpm[i] * 1.005 ** max(-0.5, min(0.5, offset)))
        return float(self._cand_bpm[i])

    def _accept(self, bpm: float) -> None:
        current = self._tempo_bpm
        if current > 0.0 and abs(bpm / current - 1.0) < self.AGREE:
            self._set_tempo(0.5 * (current + bpm))
            self._pending_bpm = 0.0
        elif self._pending_bpm > 0.0 and abs(bpm / self._pending_bpm - 1.0) < self.AGREE:
            # the same new tempo twice in a row: switch (or lock for the first time)
            self._set_tempo(0.5 * (self._pending_bpm + bpm))
            self._pending_bpm = 0.0
        else:
            self._pending_bpm = bpm

    def _correct_phase(self, x: np.ndarray) -> None:
        period = self._period
        n = len(x)
        beats = int(min(8, (n - 1) // period))
        if beats < 1:
            return
        offsets = np.arange(int(math.ceil(period)))
        # index of the newest frame is n - 1; a beat "offset" frames ago and every period before
        idx = (n - 1 - offsets[:, None] - np.round(np.arange(beats)[None, :] * period)).astype(
            np.int64)
        comb = x[np.clip(idx, 0, n - 1)].sum(axis=1)
        since_beat = int(np.argmax(comb))
        estimate = (since_beat / period) % 1.0
        error = (estimate - self.phase + 0.5) % 1.0 - 0.5
        self.phase = (self.phase + self._phase_gain * error) % 1.0

    def _set_tempo(self, bpm: float) -> None:
        if self._tempo_bpm <= 0.0:
            self.phase = 0.0
        self._tempo_bpm = bpm
        self._period = 60.0 * self.frame_rate / bpm

    def _unlock(self) -> None:
        self._tempo_bpm = 0.0
        self._period = 0.0
        self.phase = 0.0
        self._pending_bpm = 0.0
