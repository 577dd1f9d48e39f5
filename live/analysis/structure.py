"""Song structure, heard causally: section changes, bar and phrase position, builds, drops and
breaks.

The per-hop features (level, bands, onsets) say what the music does *now*; a show that only
follows them pulses on the beat and never goes anywhere. This module listens on the scale of
bars: it summarises the spectrum in short blocks (``block_ms``, 100 ms) and compares the last
second with the seconds before it.

- **novelty / section**: the block features are log energies in eight log-spaced bands
  (timbre, loudness, which instruments play; a band 30 dB or more below the loudest reads as
  that) and a 12-bin chroma (harmony, at a quarter of the weight: chords change within
  sections). Novelty is how far the mean of the recent window (``novelty_recent_s``) is from
  the *nearest* window of the same length in the past (``novelty_past_s``, sliding by a
  block), bands in units of 3 dB. That is a self-similarity view, causally: the recent window
  against each earlier stretch of the song. Material that keeps changing in a pattern (a chord
  every bar, an instrument every other bar, a fill) finds its match in the past and reads as
  steady; a build finds the second before it; a new section finds nothing near. Windows that
  straddle the last section change are left out (half of one section and half of another can
  look like a third). A section event fires when the novelty crosses ``novelty_threshold``,
  about half a second into a new section (within a bar at any tempo up to 200 BPM), and not
  again until it has fallen below half of that and ``section_min_s`` passed.
- **bar and phrase**: the tempo tracker's beats are counted into bars of ``beats_per_bar`` and
  phrases of ``phrase_bars``. A tracker knows the beat, not the downbeat, so the count is
  re-anchored at each section event: the beat nearest to where the change began (where the
  novelty started to rise) becomes the first beat of a bar and of a phrase, and beats
  are counted on the clock from there (a tracker that locks only after the change still
  counts from it). Music whose sections start on phrase boundaries then has its phrase grid
  in the right place.
- **build**: loudness, brightness (log2 of the spectral centroid) and onset rate over the last
  ``build_window_s``, in eight segments; a build is one of them rising all along (Kendall's
  tau of the segment means over time: a step up reads about 0.5 and does not count) by a
  musical amount (6 dB, 2/3 octave or 4 onsets a second for a full 1.0). 0..1.
- **breakdown**: the last second is ``break_db`` or more below the song's reference level, a
  follower that rises within a second and falls over a minute (an intro sets the reference; a
  quiet passage after louder ones is a break). 0..1.
- **drop**: a sudden rise (the last half second at least ``drop_db`` louder than the two
  seconds before it, or its bass region one and a half times that) during or right after a
  build; it ends the build.

Everything is per hop and causal with no lookahead beyond the analyzer's own; the block work
(two small matrix products and window statistics) runs once per block, so a hop costs a vector
add and a few comparisons.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from phosphene.live.analysis.envelopes import smoothing_retain

N_BANDS = 8
BAND_FMIN_HZ = 60.0
BAND_FMAX_HZ = 12000.0
CHROMA_FMIN_HZ = 80.0
CHROMA_FMAX_HZ = 4000.0
FLOOR_DB = -100.0            # a silent block's band energy (every band: silence is one timbre)
BAND_RANGE_DB = 30.0         # bands more than this below the loudest read as that
BAND_SPREAD_DB = 3.0         # the unit a band's shift is measured in: 3 dB is a small change
CHROMA_SPREAD = 0.06         # ... and a chroma bin's (chroma sums to 1 over 12 bins)
BUILD_SEGMENTS = 8            # a build is judged on this many segments of its window
RISE_FROM = 0.1              # a change began where the novelty rose past this share of the threshold
CHROMA_WEIGHT = 0.25         # harmony counts a quarter as much as timbre: chords change within sections


@dataclass(frozen=True, slots=True)
class StructureFrame:
    """What ``StructureTracker.process`` reports for one hop."""

    novelty: float = 0.0        # 0..1, 0.5 at the section threshold
    section: bool = False       # a section change was detected in this hop
    bar: bool = False           # a bar starts in this hop (its first beat)
    bar_phase: float = 0.0      # 0..1 position within the bar
    bar_index: int = 0          # bars since the last anchor (the last section change)
    phrase: bool = False        # a phrase (``phrase_bars`` bars) starts in this hop
    phrase_phase: float = 0.0   # 0..1 position within the phrase
    build: float = 0.0          # 0..1, rising level/brightness/onset rate
    drop: bool = False          # a sudden rise after a build or a break, in this hop
    breakdown: float = 0.0      # 0..1, well below the song's reference level


def _band_matrix(freqs: np.ndarray, sample_rate: int) -> np.ndarray:
    top = min(BAND_FMAX_HZ, 0.45 * sample_rate)
    edges = np.geomspace(BAND_FMIN_HZ, top, N_BANDS + 1)
    rows = [(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges[:-1], edges[1:])]
    return np.stack(rows).astype(np.float64)


def _chroma_matrix(freqs: np.ndarray, sample_rate: int) -> np.ndarray:
    top = min(CHROMA_FMAX_HZ, 0.45 * sample_rate)
    m = np.zeros((12, len(freqs)))
    ok = (freqs >= CHROMA_FMIN_HZ) & (freqs < top)
    # pitch class of each bin's centre (A = 0); coarse at low frequencies, which is fine for
    # telling one section's harmony from another's
    pitch = np.round(12.0 * np.log2(np.where(ok, freqs, 1.0) / 440.0)).astype(np.int64) % 12
    m[pitch[ok], np.nonzero(ok)[0]] = 1.0
    return m


class StructureTracker:
    """Per-hop structure features from the analyzer's spectrum, level, onsets and beats."""

    def __init__(self, *, sample_rate: int, frame_rate: float, freqs: np.ndarray,
                 block_ms: float = 100.0, novelty_recent_s: float = 1.0,
                 novelty_past_s: float = 10.0, novelty_threshold: float = 3.0,
                 section_min_s: float = 4.0, beats_per_bar: int = 4, phrase_bars: int = 8,
                 build_window_s: float = 8.0, break_db: float = 6.0, drop_db: float = 4.0):
        self.hops_per_block = max(1, int(round(block_ms / 1000.0 * frame_rate)))
        self.block_s = self.hops_per_block / frame_rate
        blocks = lambda s: max(1, int(round(s / self.block_s)))  # noqa: E731
        self._recent = blocks(novelty_recent_s)
        self._past = blocks(novelty_past_s)
        self._threshold = novelty_threshold
        self._section_min_blocks = blocks(section_min_s)
        self._build_segment = blocks(build_window_s / BUILD_SEGMENTS)
        self._drop_recent = blocks(0.5)
        self._drop_before = blocks(2.0)
        self._break_recent = blocks(1.0)
        self._break_db = break_db
        self._drop_db = drop_db
        self.beats_per_bar = beats_per_bar
        self.phrase_bars = phrase_bars

        self._bands = _band_matrix(freqs, sample_rate)
        self._chroma = _chroma_matrix(freqs, sample_rate)
        dims = N_BANDS + 12
        self._spread_floor = np.array([BAND_SPREAD_DB] * N_BANDS + [CHROMA_SPREAD] * 12) ** 2
        self._weights = np.array([1.0] * N_BANDS + [CHROMA_WEIGHT] * 12)
        self._weights /= self._weights.sum()

        # the per-hop accumulators of the block being filled
        self._power_sum = np.zeros(len(freqs))
        self._mean_square = 0.0
        self._log_centroid = 0.0
        self._sounding_hops = 0
        self._onsets = 0
        self._hops = 0

        # block history (ring buffers long enough for every window)
        self._size = max(self._recent + self._past, BUILD_SEGMENTS * self._build_segment,
                         self._drop_recent + self._drop_before, self._break_recent) + 1
        self._feat = np.zeros((self._size, dims))
        self._loud = np.zeros(self._size)
        self._low = np.zeros(self._size)
        self._bright = np.zeros(self._size)
        self._rate = np.zeros(self._size)
        self._blocks = 0

        # events and states
        self._armed = True
        self._blocks_since_section = self._section_min_blocks
        self._novelty_trail: deque[float] = deque(maxlen=2 * self._recent)
        self._rise_blocks = 0
        self._section_start = -10 ** 9   # block where the last section change began
        self._novelty = 0.0
        self._build = 0.0
        self._build_release = smoothing_retain(self.block_s, 2.0)
        self._recent_build_blocks = 10 ** 9     # blocks since the build was last above 0.3
        self._reference_db: float | None = None
        self._ref_fall = smoothing_retain(self.block_s, 60.0)
        self._ref_rise = smoothing_retain(self.block_s, 1.0)
        self._breakdown = 0.0
        self._breakdown_retain = smoothing_retain(self.block_s, 0.5)
        self._blocks_since_drop = 10 ** 9
        self._pending_section = False
        self._pending_drop = False

        # beat counting
        self._beats = -1                 # beats since the anchor (-1: none yet)
        self._anchor_s: float | None = None   # where bar and phrase counting starts
        self._beat_s = 0.0               # the beat period while locked
        self._beat_times: list[float] = []
        self._time_s = 0.0
        self._hop_s = 1.0 / frame_rate

    # -- per hop --------------------------------------------------------------------------------
    def process(self, power: np.ndarray, mean_square: float, centroid_hz: float, onset: bool,
                beat: bool, beat_phase: float, tempo_bpm: float, gated: bool) -> StructureFrame:
        """One hop: the power spectrum (``|X|^2``), the hop's mean square (raw, before the
        gain), centroid, onset and beat flags, the tracker's beat phase and tempo."""
        self._time_s += self._hop_s
        self._beat_s = 60.0 / tempo_bpm if tempo_bpm > 0.0 else 0.0
        if not gated:
            self._power_sum += power
            self._mean_square += mean_square
            if centroid_hz > 0.0:
                self._log_centroid += math.log2(centroid_hz)
                self._sounding_hops += 1
        self._onsets += bool(onset)
        self._hops += 1
        section = drop = False
        if self._hops >= self.hops_per_block:
            self._end_block()
            section, drop = self._pending_section, self._pending_drop
            self._pending_section = self._pending_drop = False
        if section:
            self._anchor()

        bar = phrase = False
        if tempo_bpm <= 0.0:
            bar_phase = phrase_phase = 0.0
            bar_index = 0
        else:
            if beat:
                if self._anchor_s is None:
                    self._anchor_s = self._time_s
                self._beat_times = self._beat_times[-7:] + [self._time_s]
                # beats since the anchor, counted on the clock so that a tracker that locks
                # (or locks again after a break) after the section began still counts from it
                self._beats = int(round((self._time_s - self._anchor_s) * tempo_bpm / 60.0))
                bar = self._beats % self.beats_per_bar == 0
                phrase = self._beats % (self.beats_per_bar * self.phrase_bars) == 0
            beats = max(self._beats, 0) + beat_phase
            bar_phase = (beats % self.beats_per_bar) / self.beats_per_bar
            phrase_beats = self.beats_per_bar * self.phrase_bars
            phrase_phase = (beats % phrase_beats) / phrase_beats
            bar_index = max(self._beats, 0) // self.beats_per_bar
        return StructureFrame(
            novelty=self._novelty / (self._novelty + self._threshold), section=section,
            bar=bar, bar_phase=bar_phase, bar_index=bar_index, phrase=phrase,
            phrase_phase=phrase_phase, build=self._build, drop=drop,
            breakdown=self._breakdown)

    def _anchor(self) -> None:
        """A section began where the novelty started to rise: that moment (the nearest beat,
        when one is near) is the first beat of a bar and of a phrase from now on."""
        start = self._time_s - self._rise_blocks * self.block_s
        if self._beat_times:
            nearest = min(self._beat_times, key=lambda t: abs(t - start))
            if abs(nearest - start) <= 0.5:
                start = nearest
        self._anchor_s = start
        self._beats = int(round((self._time_s - start) / self._beat_s)) if self._beat_s else -1

    # -- per block ------------------------------------------------------------------------------
    def _end_block(self) -> None:
        hops = self._hops
        mean_power = self._power_sum / hops
        band_power = self._bands @ mean_power
        band_db = 10.0 * np.log10(band_power + 1e-10)
        # a band far below the loudest holds nothing that matters, only noise: its level is
        # read as the loudest less BAND_RANGE_DB
        np.maximum(band_db, max(float(band_db.max()) - BAND_RANGE_DB, FLOOR_DB), out=band_db)
        # the bass region (the two lowest bands, 60-230 Hz) before the relative floor: what
        # a drop brings back
        low = max(10.0 * math.log10(float(band_power[:2].sum()) + 1e-10), FLOOR_DB)
        chroma = self._chroma @ mean_power
        total = float(chroma.sum())
        chroma = chroma / total if total > 1e-12 else np.full(12, 1.0 / 12.0)
        ms = self._mean_square / hops
        loud = max(10.0 * math.log10(ms), FLOOR_DB) if ms > 1e-10 else FLOOR_DB
        bright = (self._log_centroid / self._sounding_hops if self._sounding_hops
                  else (self._bright[(self._blocks - 1) % self._size] if self._blocks else 0.0))
        rate = self._onsets / (hops * self._hop_s)

        i = self._blocks % self._size
        self._feat[i, :N_BANDS] = band_db
        self._feat[i, N_BANDS:] = chroma
        self._loud[i] = loud
        self._low[i] = low
        self._bright[i] = bright
        self._rate[i] = rate
        self._blocks += 1
        self._power_sum[:] = 0.0
        self._mean_square = self._log_centroid = 0.0
        self._sounding_hops = self._onsets = self._hops = 0

        self._update_novelty()
        self._update_build()
        self._update_breakdown_and_drop()

    def _window(self, ring: np.ndarray, start_back: int, length: int) -> np.ndarray:
        """``length`` blocks ending ``start_back`` blocks before the newest (0 = ending with
        the newest), oldest first."""
        end = self._blocks - start_back
        idx = np.arange(end - length, end) % self._size
        return ring[idx]

    def _update_novelty(self) -> None:
        self._blocks_since_section += 1
        past = min(self._past, self._blocks - self._recent)
        if past < 2 * self._recent:
            self._novelty = 0.0
            self._novelty_trail.append(0.0)
            return
        history = self._window(self._feat, 0, past + self._recent)
        # the mean of every window as long as the recent one, sliding by a block: the last is
        # the recent window, the others are the past it is compared with
        sums = np.cumsum(np.vstack([np.zeros((1, history.shape[1])), history]), axis=0)
        means = (sums[self._recent:] - sums[:-self._recent]) / self._recent
        recent, before = means[-1], means[:-self._recent]
        # how far the recent window is from the *nearest* past one: material that keeps
        # changing in a pattern (chords, a fill, an instrument every other bar) finds its
        # match in the past; a build finds the second before it; a new section finds none.
        # Windows across the last section change are left out: half of one section and half
        # of another can look like a third.
        distance = ((before - recent) ** 2 / self._spread_floor) @ self._weights
        first = self._blocks - past - self._recent     # block where window 0 starts
        starts = first + np.arange(len(before))
        across = (starts < self._section_start) & (self._section_start < starts + self._recent)
        self._novelty = float(distance[~across].min()) if not across.all() else 0.0
        if self._novelty < 0.5 * self._threshold:
            self._armed = True
        if (self._armed and self._novelty >= self._threshold
                and self._blocks_since_section >= self._section_min_blocks):
            self._armed = False
            self._blocks_since_section = 0
            self._pending_section = True
            # the change began where this rise of the novelty did: a big change crosses the
            # threshold within a few blocks, a small one takes most of the recent window
            # (and no earlier than a recent window ago: the recent window is what is new)
            self._rise_blocks = 1 + next(
                (k for k, v in enumerate(reversed(self._novelty_trail))
                 if v < RISE_FROM * self._threshold or k >= self._recent - 1),
                len(self._novelty_trail))
            self._section_start = self._blocks - self._rise_blocks
        self._novelty_trail.append(self._novelty)

    def _update_build(self) -> None:
        seg = self._build_segment
        target = 0.0
        # (after a drop the window still holds the rise into it: not a new build)
        if self._blocks >= BUILD_SEGMENTS * seg and self._blocks_since_drop >= BUILD_SEGMENTS * seg:
            upper = np.triu(np.ones((BUILD_SEGMENTS, BUILD_SEGMENTS), bool), 1)
            # (ring, what a full build rises by over the window: 6 dB, 2/3 octave, 4 onsets/s;
            # differences below a twelfth of that are ties, not a direction)
            for ring, scale in ((self._loud, 6.0), (self._bright, 0.67), (self._rate, 4.0)):
                means = self._window(ring, 0, BUILD_SEGMENTS * seg).reshape(
                    BUILD_SEGMENTS, seg).mean(axis=1)
                # rising all along, not one step up: Kendall's tau of the segment means over
                # time (a step halfway reads about 0.5, a steady rise 1.0)
                diff = (means[None, :] - means[:, None])[upper]
                order = np.where(np.abs(diff) < scale / 12.0, 0.0, np.sign(diff))
                tau = float(order.mean())
                rise = float(means[-2:].mean() - means[:2].mean()) / scale
                target = max(target, min(max((tau - 0.7) / 0.25, 0.0), 1.0)
                             * min(max(rise, 0.0), 1.0))
        # rises at once, falls over ~2 s, so a drop right after the build still sees it
        self._build = max(target, self._build * self._build_release)
        self._recent_build_blocks = 0 if self._build >= 0.3 else self._recent_build_blocks + 1

    def _rise(self, ring: np.ndarray) -> float:
        """dB from the two seconds before the last half second to the last half second."""
        recent = float(self._window(ring, 0, self._drop_recent).mean())
        before = float(self._window(ring, self._drop_recent, self._drop_before).mean())
        return recent - before

    def _update_breakdown_and_drop(self) -> None:
        loud_now = float(self._window(self._loud, 0, min(self._break_recent, self._blocks)).mean())
        ref = self._reference_db
        if ref is None:
            ref = loud_now
        else:
            coef = self._ref_rise if loud_now > ref else self._ref_fall
            ref = loud_now + coef * (ref - loud_now)
        self._reference_db = ref
        deficit = ref - loud_now
        # 0 at half of break_db below the reference, 0.5 at break_db, 1 at one and a half
        target = min(max((deficit - 0.5 * self._break_db) / self._break_db, 0.0), 1.0)
        self._breakdown = target + self._breakdown_retain * (self._breakdown - target)

        self._blocks_since_drop += 1
        need = self._drop_recent + self._drop_before
        if self._blocks < need:
            return
        rise = max(self._rise(self._loud), self._rise(self._low) / 1.5)
        if (rise >= self._drop_db and self._recent_build_blocks <= self._drop_before
                and self._blocks_since_drop >= self._section_min_blocks):
            self._blocks_since_drop = 0
            self._pending_drop = True
            # the drop resolves the build: what follows is the new level, not more rising
            self._build = 0.0
            self._recent_build_blocks = 10 ** 9
