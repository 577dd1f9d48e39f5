"""Onset detection: SuperFlux onset strength and causal adaptive peak picking.

SuperFlux (Böck & Widmer, "Maximum filter vibrato suppression for onset detection", DAFx 2013):
spectral flux on a log-magnitude, log-frequency spectrogram, where each frame is compared with a
frame ``mu`` hops earlier that has been maximum-filtered across frequency. The maximum filter
makes vibrato and slow glides (a partial moving to a neighbouring band) produce no flux, so
singing does not flood the visuals with false onsets, while a new note or a hit still does.

Alongside the flux (the mean over all bands) the same band differences give a *tempo accent*:
the mean flux of each frequency region (low / mid / high), averaged with equal weight per region
(the band-wise accent of Klapuri, Eronen & Astola, "Analysis of the meter of acoustic musical
signals", 2006). In the plain mean a hi-hat, spread over the many high mel bands, outweighs a
kick in the few low ones; metre lives in kicks and snares, so the tempo tracker reads the accent.

The peak picker is the online variant: a value is an onset when it is the maximum of the last
``onset_max_ms``, not smaller than the next value (one hop of lookahead: the analyzer's latency),
above ``mean_weight`` times the moving mean plus ``delta``, and far enough from the previous
onset. Which filterbank and which values (the ``classic`` path or the corpus-tuned
``superflux`` one) is the analyzer settings' choice (``settings.ONSET_DETECTOR_DEFAULTS``).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import maximum_filter1d


def log_filterbank(sample_rate: int, n_fft: int, n_bands: int, fmin_hz: float,
                   fmax_hz: float) -> np.ndarray:
    """Mel-spaced triangular filters, each row summing to 1: ``(n_bands, n_fft // 2 + 1)``.

    At low sample rates / short windows some mel triangles fall between FFT bins; those empty
    rows are dropped rather than left as dead bands that would dilute the flux.
    """
    import librosa

    fmax_hz = min(fmax_hz, sample_rate / 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns about the empty filters we drop below
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_bands, fmin=fmin_hz,
                                 fmax=fmax_hz, norm=None, dtype=np.float64)
    sums = fb.sum(axis=1)
    fb = fb[sums > 0] / sums[sums > 0, None]
    return np.ascontiguousarray(fb)


def octave_filterbank(sample_rate: int, n_fft: int, bands_per_octave: int, fmin_hz: float,
                      fmax_hz: float) -> np.ndarray:
    """Triangular filters centred ``bands_per_octave`` per octave, each row summing to 1:
    ``(n_bands, n_fft // 2 + 1)`` -- the filterbank of SuperFlux (Böck & Widmer 2013; madmom's
    ``LogarithmicFilterbank``). Centres are snapped to FFT bins and duplicates dropped, so
    where the bins are wider than the bands (the low octaves) each band is about one bin: no
    band repeats another and none is empty."""
    fmax_hz = min(fmax_hz, sample_rate / 2.0)
    n_octaves = np.log2(fmax_hz / fmin_hz)
    centres_hz = fmin_hz * 2.0 ** (np.arange(int(n_octaves * bands_per_octave) + 1)
                                   / bands_per_octave)
    bins = np.unique(np.round(centres_hz * n_fft / sample_rate).astype(int))
    bins = bins[(bins > 0) & (bins <= n_fft // 2)]
    fb = np.zeros((len(bins) - 2, n_fft // 2 + 1))
    for row, (lo, mid, hi) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        fb[row, lo:mid + 1] = np.linspace(0.0, 1.0, mid - lo + 1)
        fb[row, mid:hi + 1] = np.linspace(1.0, 0.0, hi - mid + 1)
        if hi - lo < 2:  # adjacent bins: a one-bin band
            fb[row, mid] = 1.0
    fb /= fb.sum(axis=1, keepdims=True)
    return np.ascontiguousarray(fb)


def region_weights(filterbank: np.ndarray, sample_rate: int, n_fft: int,
                   edges_hz: tuple[float, ...]) -> np.ndarray:
    """Per-band weights ``(n_bands,)`` so that ``diff @ weights`` is the mean over frequency
    regions (split at ``edges_hz``, by each band's centre frequency) of each region's mean;
    regions holding no band (e.g. above Nyquist) are left out."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    centres = filterbank @ freqs  # rows sum to 1: the centre of mass of each filter
    region = np.searchsorted(np.asarray(edges_hz, float), centres, side="right")
    counts = np.bincount(region)
    used = np.count_nonzero(counts)
    return 1.0 / (used * counts[region])


class SuperFlux:
    """Onset strength of one STFT frame at a time. ``process(mag, gain)`` -> flux (>= 0); the
    tempo accent of the same frame is left in ``accent``."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_bands: int,
                 fmin_hz: float, fmax_hz: float, log_multiplier: float, max_filter_bands: int,
                 diff_ratio: float, accent_edges_hz: tuple[float, ...] = (250.0, 2000.0),
                 bands_per_octave: int | None = None):
        """``bands_per_octave`` given: SuperFlux's octave-spaced filterbank (``n_bands`` is
        then unused); otherwise ``n_bands`` mel bands."""
        if bands_per_octave:
            self.filterbank = octave_filterbank(sample_rate, n_fft, bands_per_octave, fmin_hz,
                                                fmax_hz)
        else:
            self.filterbank = log_filterbank(sample_rate, n_fft, n_bands, fmin_hz, fmax_hz)
        n = self.filterbank.shape[0]
        self._accent_weights = region_weights(self.filterbank, sample_rate, n_fft,
                                              accent_edges_hz)
        self.accent = 0.0
        # mu: compare with the frame whose window overlaps this one by at most diff_ratio
        # (SuperFlux eq. 4), at least one hop back.
        self.diff_frames = max(1, int(round(n_fft * (1.0 - diff_ratio) / hop_length)))
        self._log_multiplier = log_multiplier
        self._max_size = max_filter_bands
        self._bands = np.zeros(n)
        self._diff = np.zeros(n)
        # ring of the last diff_frames maximum-filtered log spectra; slot k holds frame k mod mu
        self._past = np.zeros((self.diff_frames, n))
        self._slot = 0
        self._inv_bands = 1.0 / n

    def process(self, mag: np.ndarray, gain: float) -> float:
        bands = self._bands
        np.dot(self.filterbank, mag, out=bands)
        bands *= gain * self._log_multiplier
        np.log1p(bands, out=bands)
        reference = self._past[self._slot]  # the frame mu hops ago (max-filtered)
        np.subtract(bands, reference, out=self._diff)
        np.maximum(self._diff, 0.0, out=self._diff)
        flux = float(self._diff.sum()) * self._inv_bands
        self.accent = float(self._diff.dot(self._accent_weights))
        maximum_filter1d(bands, self._max_size, output=reference, mode="nearest")
        self._slot = (self._slot + 1) % self.diff_frames
        return flux


class OnlinePeakPicker:
    """Causal peak picking over an onset-strength stream with one value of lookahead.

    ``process(value)`` returns True when the *previous* value was an onset.
    """

    def __init__(self, delta: float, mean_frames: int, max_frames: int, min_interval_frames: int,
                 mean_weight: float = 1.0):
        """The threshold is ``mean_weight * moving mean + delta``: a weight above 1 makes it
        scale with the material (dense, loud flux needs a clearer peak), delta keeps small
        wiggles out in quiet passages."""
        self.delta = delta
        self.mean_weight = mean_weight
        self._mean_frames = max(1, mean_frames)
        self._max_frames = max(1, max_frames)
        self._min_interval = max(1, min_interval_frames)
        size = max(self._mean_frames, self._max_frames) + 2
        # mirrored history: every value is written twice, so the last k values are one slice
        self._size = size
        self._hist = np.zeros(2 * size)
        self._pos = 0
        self._count = 0
        self._since_onset = 1 << 30

    def process(self, value: float) -> bool:
        size, pos, hist = self._size, self._pos, self._hist
        hist[pos] = value
        hist[pos + size] = value
        self._pos = pos = (pos + 1) % size
        self._count += 1
        self._since_onset += 1
        if self._count < 3:
            return False
        end = pos + size            # one past the newest value
        candidate = hist[end - 2]
        if candidate < value or candidate <= 0.0:
            return False
        if candidate < hist[end - 1 - self._max_frames:end - 1].max():
            return False
        # moving mean of the mean_frames values ending at the candidate
        mean = hist[end - 1 - self._mean_frames:end - 1].sum() / self._mean_frames
        if candidate < self.mean_weight * mean + self.delta:
            return False
        if self._since_onset - 1 < self._min_interval:
            return False
        self._since_onset = 1  # the onset was one hop ago
        return True
