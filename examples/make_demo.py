"""Make examples/demo.flac: 16 s of synthetic music to try phosphene without a microphone.

A 120 BPM piece in the sections a show should follow, one bar (2 s) or more each: an intro
(a soft pad: level and brightness only), a verse (kick/snare/hats for onsets, beats and tempo,
a bass line for the low band), a build (a snare roll speeding up, a noise riser, everything
getting louder and brighter), a drop (four-on-the-floor kick, a bright lead: high band and
centroid) and a break (the pad alone). Everything is made here from sine waves and noise, so
the file carries no one's rights. Run: python examples/make_demo.py (it also writes
demo.sections.json, the sections' start times).

``arrange`` is shared with ``make_song.py`` (the 3-minute song of ``phosphene bench motion``).
"""

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
BPM = 120
BEAT = 60 / BPM
BAR = 4 * BEAT

# (section, bars): 8 bars = 16 s
DEMO_SECTIONS = (("intro", 1), ("verse", 2), ("build", 2), ("drop", 2), ("break", 1))

CHORDS = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6),
          (196.0, 246.9, 329.6)]
BASS_NOTES = [55.0, 49.0, 43.7, 49.0]


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


def snare(rng):
    n = int(0.22 * SR)
    t = np.arange(n) / SR
    return (0.7 * rng.normal(0, 1, n) + 0.4 * np.sin(2 * np.pi * 185 * t)) * np.exp(-t * 22)


def hat(rng):
    n = int(0.06 * SR)
    return 0.5 * np.diff(rng.normal(0, 1, n + 1)) * np.exp(-np.arange(n) / SR * 80)


def riser(rng, seconds):
    """Noise that gets louder and brighter (a first difference of more and more of it)."""
    n = int(seconds * SR)
    ramp = np.linspace(0.0, 1.0, n)
    noise = rng.normal(0, 1, n + 1)
    bright = np.diff(noise)                 # tilted up: hiss
    return (ramp ** 2) * (0.5 * (1 - ramp) * noise[1:] + ramp * bright)


def place(track, sound, at_s, gain):
    i = int(round(at_s * SR))
    n = min(len(sound), len(track) - i)
    if n > 0:
        track[i:i + n] += gain * sound[:n]


def _pad(x, start, b, gain=0.06):
    for f in CHORDS[b % 4]:
        place(x, tone(f, BAR, decay_per_s=0.6, attack_s=0.4), start, gain)


def _groove(x, start, b, rng, *, kick_gain=0.55, bass_gain=0.25):
    for beat in range(4):
        t = start + beat * BEAT
        place(x, kick() if beat % 2 == 0 else snare(rng), t, kick_gain if beat % 2 == 0 else 0.35)
        place(x, hat(rng), t + BEAT / 2, 0.25)
        place(x, tone(BASS_NOTES[b % 4], BEAT * 0.9, decay_per_s=4, harmonics=(1, .5)), t,
              bass_gain)


def _lead(x, start, b, gain=0.08):
    for step, mult in enumerate((4, 6, 5, 8, 6, 5, 4, 3)):
        place(x, tone(BASS_NOTES[b % 4] * mult * 2, BEAT / 2, decay_per_s=6,
                      harmonics=(1, .6, .4, .3)), start + step * BEAT / 2, gain)


def _bar(x, name, start, b, k, n, rng):
    """Bar ``k`` of ``n`` of a section called ``name``, starting at ``start`` s; ``b`` counts
    bars from the top of the piece (the chord)."""
    if name == "intro":
        _pad(x, start, b)
        if k >= n - 2 and n > 2:            # a long intro hints at the hats before the verse
            for step in range(8):
                place(x, hat(rng), start + step * BEAT / 2, 0.08)
    elif name == "verse":
        _pad(x, start, b)
        _groove(x, start, b, rng)
    elif name == "build":
        # the bass and hats stop; a kick on every beat, a snare roll in eighths (sixteenths
        # on the last beat), a noise riser over the whole build, everything rising
        _pad(x, start, b, 0.05 + 0.03 * k / max(n, 1))
        progress0, progress1 = k / n, (k + 1) / n
        for beat in range(4):
            p = progress0 + (progress1 - progress0) * beat / 4
            place(x, kick(), start + beat * BEAT, 0.25 + 0.25 * p)
            steps = 4 if (k == n - 1 and beat == 3) else 2
            for s in range(steps):
                place(x, snare(rng), start + (beat + s / steps) * BEAT, 0.12 + 0.3 * p)
        if k == 0:
            seg = riser(rng, n * BAR)
            place(x, 0.3 * seg / max(1e-9, np.max(np.abs(seg))), start, 1.0)
        for step in range(8):
            p = progress0 + (progress1 - progress0) * step / 8
            place(x, tone(BASS_NOTES[b % 4] * 8 * 2 ** p, BEAT / 2, decay_per_s=6,
                          harmonics=(1, .5)), start + step * BEAT / 2, 0.03 + 0.05 * p)
    elif name == "drop":
        _pad(x, start, b, 0.07)
        for beat in range(4):
            place(x, kick(), start + beat * BEAT, 0.8)
            if beat % 2:
                place(x, snare(rng), start + beat * BEAT, 0.45)
            for s in range(4):
                place(x, hat(rng), start + (beat + s / 4) * BEAT, 0.22 if s % 2 else 0.12)
            place(x, tone(BASS_NOTES[b % 4] * 2, BEAT * 0.9, decay_per_s=3,
                          harmonics=(1, .8, .5, .3)), start + beat * BEAT, 0.3)
        _lead(x, start, b, 0.12)
    elif name == "break":
        _pad(x, start, b, 0.05)
        _lead(x, start, b, 0.03)
    elif name == "outro":
        _pad(x, start, b, 0.06 * (1 - k / n))
    else:
        raise ValueError(f"unknown section {name!r}")


def arrange(sections, seed=2026):
    """The piece for ``sections`` (``(name, bars)`` pairs): float32 mono in [-0.8, 0.8] at
    ``SR``, and the sections' start times in seconds."""
    rng = np.random.default_rng(seed)
    total_bars = sum(n for _, n in sections)
    x = np.zeros(int(total_bars * BAR * SR))
    starts = []
    b = 0
    for name, n in sections:
        starts.append((name, b * BAR))
        for k in range(n):
            _bar(x, name, (b + k) * BAR, b + k, k, n, rng)
        b += n
    x *= 0.8 / np.max(np.abs(x))
    return x.astype(np.float32), starts


def write_sections(path, starts, duration_s):
    """The sections' names and start times (what ``phosphene bench motion`` checks the
    picture's scene changes against)."""
    doc = {"bpm": BPM, "duration_s": duration_s,
           "sections": [{"name": name, "start_s": t} for name, t in starts]}
    path.write_text(json.dumps(doc, indent=1) + "\n")


def main():
    x, starts = arrange(DEMO_SECTIONS)
    out = Path(__file__).with_name("demo.flac")
    sf.write(out, x, SR, subtype="PCM_16")
    write_sections(out.with_name("demo.sections.json"), starts, len(x) / SR)
    print(f"wrote {out} ({len(x) / SR:.0f} s, {BPM} BPM; sections: "
          + ", ".join(f"{name} {t:g} s" for name, t in starts) + ")")


if __name__ == "__main__":
    main()
