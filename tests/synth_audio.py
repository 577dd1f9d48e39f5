"""Test material with known ground truth, made here (no recordings needed).

Each maker returns ``(signal float32 mono, onset_times_s)``; rhythms are exact so tempo is known.
"""

from __future__ import annotations

import numpy as np

SR = 48000


def _place(x, event, t, sr):
    i = int(round(t * sr))
    n = min(len(event), len(x) - i)
    if n > 0:
        x[i:i + n] += event[:n]


def clicks(times, duration_s, sr=SR, amp=0.8, width=48):
    x = np.zeros(int(duration_s * sr))
    for t in times:
        _place(x, np.full(width, amp), t, sr)
    return x.astype(np.float32), np.asarray(times, float)


def click_track(bpm, duration_s, sr=SR, start_s=0.25, amp=0.8):
    times = np.arange(start_s, duration_s - 0.1, 60.0 / bpm)
    return clicks(times, duration_s, sr, amp)


def kick(sr=SR):
    t = np.arange(int(0.25 * sr)) / sr
    return np.sin(2 * np.pi * (45 * t + 120 / 25 * (1 - np.exp(-25 * t)))) * np.exp(-t * 12)


def snare(rng, sr=SR):
    t = np.arange(int(0.2 * sr)) / sr
    return (0.6 * rng.normal(0, 1, len(t)) + 0.5 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 25)


def hat(rng, sr=SR):
    t = np.arange(int(0.08 * sr)) / sr
    noise = np.diff(rng.normal(0, 1, len(t) + 1))  # brighter than white
    return 0.4 * noise * np.exp(-t * 70)


def drums_in_noise(bpm=110, duration_s=12.0, sr=SR, noise_dbfs=-40.0, seed=0):
    """Kick on 1 and 3, snare on 2 and 4, hats on the off-beats, in steady white noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10 ** (noise_dbfs / 20), int(duration_s * sr))
    beat = 60.0 / bpm
    onsets = []
    t, k = 0.3, 0
    while t < duration_s - 0.3:
        _place(x, 0.7 * (kick(sr) if k % 2 == 0 else snare(rng, sr)), t, sr)
        onsets.append(t)
        _place(x, 0.5 * hat(rng, sr), t + beat / 2, sr)
        onsets.append(t + beat / 2)
        t += beat
        k += 1
    return np.clip(x, -1, 1).astype(np.float32), np.array(onsets)


# drum patterns over one 4/4 bar: (position in beats, instrument)
PATTERNS = {
    # kick on 1 and 3, snare on 2 and 4, hats on the off-beats (as drums_in_noise)
    "backbeat": [(0, "kick"), (1, "snare"), (2, "kick"), (3, "snare")]
                + [(b + 0.5, "hat") for b in range(4)],
    # swung: hats on every beat and on the last triplet of each beat (ride-style), so the
    # off-beat events sit 2/3 of the way through the beat instead of half-way
    "swing": [(0, "kick"), (1, "snare"), (2, "kick"), (3, "snare")]
             + [(b + d, "hat") for b in range(4) for d in (0, 2 / 3)],
    # syncopated: the second kick anticipates beat 3 (on the "and" of 2), another kick on the
    # "and" of 3; straight eighth-note hats
    "syncopated": [(0, "kick"), (1, "snare"), (1.5, "kick"), (2.5, "kick"), (3, "snare")]
                  + [(e / 2, "hat") for e in range(8)],
}


def drum_loop(bpm, duration_s=12.0, pattern="backbeat", sr=SR, noise_dbfs=-40.0, seed=0,
              start_s=0.3):
    """A drum ``pattern`` (see PATTERNS) looped at ``bpm`` in steady white noise.

    Returns ``(signal, onset_times_s, beat_times_s)``: every hit, and the quarter-note beats
    (where a listener taps, and where the tracker's beats should fall)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10 ** (noise_dbfs / 20), int(duration_s * sr))
    beat_s = 60.0 / bpm
    events = sorted(PATTERNS[pattern])
    n_bars = int(np.ceil((duration_s - start_s) / (4 * beat_s)))
    onsets = []
    for bar in range(n_bars):
        for position, instrument in events:
            t = start_s + (4 * bar + position) * beat_s
            if t >= duration_s - 0.3:
                continue
            if instrument == "kick":
                _place(x, 0.7 * kick(sr), t, sr)
            elif instrument == "snare":
                _place(x, 0.7 * snare(rng, sr), t, sr)
            else:
                _place(x, 0.5 * hat(rng, sr), t, sr)
            if not onsets or t - onsets[-1] > 1e-9:  # a hat on a kick is one onset
                onsets.append(t)
    beats = np.arange(start_s, duration_s - 0.3, beat_s)
    return np.clip(x, -1, 1).astype(np.float32), np.array(onsets), beats


def tone_notes(duration_s=8.0, note_s=0.5, sr=SR, seed=1):
    """A sustained harmonic tone (legato, no gap) changing pitch every ``note_s``; the onsets
    are the note changes (and the first note)."""
    rng = np.random.default_rng(seed)
    n_notes = int(duration_s / note_s)
    midi = 57 + rng.choice([0, 2, 3, 5, 7, 8, 10, 12], n_notes)
    for i in range(1, n_notes):  # every change is a real change
        if midi[i] == midi[i - 1]:
            midi[i] += 2
    freqs = np.repeat(440 * 2 ** ((midi - 69) / 12), int(note_s * sr))
    phase = 2 * np.pi * np.cumsum(freqs) / sr
    x = sum(np.sin(h * phase) / h for h in range(1, 6)) * 0.2
    lead = int(0.2 * sr)
    x = np.concatenate([np.zeros(lead), x])
    x[lead:lead + 480] *= np.linspace(0, 1, 480)
    return x.astype(np.float32), 0.2 + np.arange(n_notes) * note_s


def speech_like(duration_s=8.0, sr=SR, seed=2):
    """Syllable-like bursts: noise and a buzzy voice source through two formants, fast attack,
    slower decay, irregular gaps."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    x = np.zeros(int(duration_s * sr))
    onsets = []
    t = 0.3
    while t < duration_s - 0.5:
        length = rng.uniform(0.12, 0.3)
        n = int(length * sr)
        tt = np.arange(n) / sr
        f0 = rng.uniform(110, 220)
        source = np.sign(np.sin(2 * np.pi * f0 * tt)) * 0.5 + rng.normal(0, 0.3, n)
        for formant in (rng.uniform(400, 800), rng.uniform(1000, 2200)):
            r = 0.98
            w = 2 * np.pi * formant / sr
            source = lfilter([1 - r], [1, -2 * r * np.cos(w), r * r], source)
        env = np.minimum(tt / 0.01, 1.0) * np.exp(-tt / (length / 2.5))
        burst = source * env
        burst *= 0.3 / (np.abs(burst).max() + 1e-9)
        _place(x, burst, t, sr)
        onsets.append(t)
        t += length + rng.uniform(0.1, 0.35)
    return x.astype(np.float32), np.array(onsets)


# -- songs with sections ----------------------------------------------------------------------
def _pad(duration_s, sr, freqs=(220.0, 277.2, 329.6), amp=0.05):
    t = np.arange(int(duration_s * sr)) / sr
    return amp * sum(np.sin(2 * np.pi * f * t) for f in freqs)


def section_audio(kind, bars, bpm=120, sr=SR, seed=0):
    """``bars`` bars of one steady kind of material (the same loop over and over), float64:

    ``pad`` (a soft chord), ``groove`` (pad + kick/snare/hats + bass), ``full`` (a louder,
    brighter four-on-the-floor with a lead), ``build`` (kick on every beat, a snare roll and
    noise that rise steadily over the section), ``break`` (the pad, quieter)."""
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    n_beats = 4 * bars
    x = np.zeros(int(round(n_beats * beat * sr)))
    total = len(x) / sr
    if kind in ("pad", "groove", "full"):
        x += _pad(total, sr)
    if kind == "break":
        x += _pad(total, sr, amp=0.015)
    t_bass = np.arange(int(0.9 * beat * sr)) / sr
    for b in range(n_beats):
        t = b * beat
        progress = b / n_beats
        if kind == "groove":
            _place(x, 0.6 * (kick(sr) if b % 2 == 0 else snare(rng, sr)), t, sr)
            _place(x, 0.4 * hat(rng, sr), t + beat / 2, sr)
            _place(x, 0.2 * np.sin(2 * np.pi * 55 * t_bass) * np.exp(-t_bass * 3), t, sr)
        elif kind == "full":
            _place(x, 0.9 * kick(sr), t, sr)
            for s in range(4):
                _place(x, 0.35 * hat(rng, sr), t + s * beat / 4, sr)
            _place(x, 0.35 * np.sin(2 * np.pi * 110 * t_bass) * np.exp(-t_bass * 2), t, sr)
            lead = np.sin(2 * np.pi * 880 * t_bass[: len(t_bass) // 2]) * 0.12
            _place(x, lead, t, sr)
        elif kind == "build":
            gain = 0.3 + 0.4 * progress
            _place(x, gain * kick(sr), t, sr)
            for s in range(2):
                _place(x, gain * snare(rng, sr), t + s * beat / 2, sr)
    if kind == "build":
        ramp = np.linspace(0.3, 1.0, len(x))     # a noise riser, steadily louder
        x += 0.25 * ramp * np.diff(rng.normal(0, 1, len(x) + 1))
    return x


def sectioned_song(sections, bpm=120, sr=SR, seed=0):
    """A song of ``(kind, bars)`` sections (see ``section_audio``): float32 mono scaled to
    0.8 peak, and each section's start in seconds."""
    parts, starts, t = [], [], 0.0
    for i, (kind, bars) in enumerate(sections):
        part = section_audio(kind, bars, bpm, sr, seed + i)
        starts.append(t)
        parts.append(part)
        t += len(part) / sr
    x = np.concatenate(parts)
    return (0.8 * x / np.max(np.abs(x))).astype(np.float32), starts
