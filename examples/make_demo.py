"""Make examples/demo.flac: 16 s of synthetic music to try phosphene without a microphone.

A 120 BPM groove that shows what the analyzer hears: a quiet pad intro (level and brightness
only), then kick/snare/hats (onsets, beats, tempo), a bass line (low band), and a bright lead
in the second half (high band, centroid). Everything is made here from sine waves and noise, so
the file carries no one's rights. Run: python examples/make_demo.py
"""

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
BPM = 120
BEAT = 60 / BPM
DURATION_S = 16.0
rng = np.random.default_rng(2026)


def envelope(n, attack_s, decay_per_s):
    t = np.arange(n) / SR
    return np.minimum(t / max(attack_s, 1e-4), 1.0) * np.exp(-t * decay_per_s)


def tone(freq_hz, seconds, decay_per_s=3.0, attack_s=0.005, harmonics=(1.0, 0.4, 0.2)):
    n = int(seconds * SR)
    t = np.arange(n) / SR
    wave = sum(a * np.sin(2 * np.pi * freq_hz * (k + 1) * t) for k, a in enumerate(harmonics))
    return wave * envelope(n, attack_s, decay_per_s)


def kick():
    n = int(0.3 * SR)
    t = np.arange(n) / SR
    return np.sin(2 * np.pi * (50 * t + 2.4 * (1 - np.exp(-30 * t)))) * np.exp(-t * 9)


def snare():
    n = int(0.22 * SR)
    t = np.arange(n) / SR
    return (0.7 * rng.normal(0, 1, n) + 0.4 * np.sin(2 * np.pi * 185 * t)) * np.exp(-t * 22)


def hat():
    n = int(0.06 * SR)
    return 0.5 * np.diff(rng.normal(0, 1, n + 1)) * np.exp(-np.arange(n) / SR * 80)


def place(track, sound, at_s, gain):
    i = int(round(at_s * SR))
    n = min(len(sound), len(track) - i)
    if n > 0:
        track[i:i + n] += gain * sound[:n]


def main():
    x = np.zeros(int(DURATION_S * SR))
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6),
              (196.0, 246.9, 329.6)]
    bass_notes = [55.0, 49.0, 43.7, 49.0]
    bar = 4 * BEAT
    for b in range(int(DURATION_S / bar)):
        start = b * bar
        for f in chords[b % 4]:  # soft pad, the whole piece
            place(x, tone(f, bar, decay_per_s=0.6, attack_s=0.4), start, 0.06)
        if b >= 1:  # drums and bass from bar 2
            for beat in range(4):
                t = start + beat * BEAT
                place(x, kick() if beat % 2 == 0 else snare(), t, 0.55 if beat % 2 == 0 else 0.35)
                place(x, hat(), t + BEAT / 2, 0.25)
                place(x, tone(bass_notes[b % 4], BEAT * 0.9, decay_per_s=4, harmonics=(1, .5)),
                      t, 0.25)
        if b >= 4:  # a bright lead in the second half
            for step, mult in enumerate((4, 6, 5, 8, 6, 5, 4, 3)):
                place(x, tone(bass_notes[b % 4] * mult * 2, BEAT / 2, decay_per_s=6,
                              harmonics=(1, .6, .4, .3)), start + step * BEAT / 2, 0.08)
    x *= 0.8 / np.max(np.abs(x))
    out = Path(__file__).with_name("demo.flac")
    sf.write(out, x.astype(np.float32), SR, subtype="PCM_16")
    print(f"wrote {out} ({DURATION_S:.0f} s, {BPM} BPM)")


if __name__ == "__main__":
    main()
