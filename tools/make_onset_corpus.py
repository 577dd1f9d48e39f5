#!/usr/bin/env python3
"""Make the annotated onset corpus: MIDI with known note onsets, rendered by FluidSynth through
a General MIDI soundfont, then degraded the way a gig degrades sound.

    .venv/bin/python tools/make_onset_corpus.py OUT            # the whole corpus (~15 min)
    .venv/bin/python tools/make_onset_corpus.py OUT --pieces 2 --seconds 4   # a small one
    .venv/bin/python tools/make_onset_corpus.py OUT --subset tests/data/onsets \
        --voice-subset tests/data/onsets/voice_timgm                         # + CI subsets

Needs the ``fluidsynth`` CLI, a GM soundfont and a second one (Debian ``fluidsynth
fluid-soundfont-gm timgm6mb-soundfont``) and ``espeak-ng``; ``scripts/setup.sh --dev``
installs them. Everything is drawn from ``--seed``, so the same command makes the same corpus
(its first timbre set is the same as before the second set and the voices were added).

What it writes under OUT:

- ``midi/<piece>.mid``: the score; ``annotations/<piece>.onsets``: its onset times (s), one a
  line (the MIREX format mir_eval reads);
- ``audio/<piece>__<degradation>.flac``: 48 kHz mono renders, one per degradation;
- the second timbre set (TimGM6mb): ``audio/<piece>__<degradation>__timgm6mb.flac`` with
  ``annotations/<piece>__timgm6mb.onsets`` (its own patches' delays);
- voices: ``scores/<piece>.json`` (every syllable: text, voice, pitch, speed, placement,
  onset) instead of a MIDI file;
- ``index.json``: every audio file with its annotation, family, degradation, split, piece,
  ``soundfont`` and ``timbre_set`` (FluidR3_GM, TimGM6mb or espeak-ng).

Families (GM programs): piano, plucked (guitars, harp, pizzicato), bowed (strings, mostly
legato, some with vibrato), winds, organ/pads, voice (choir aahs, voice oohs, synth voice:
legato, vibrato), drums (full kits), band (drums + bass + chords + lead). Tempos 60-180 BPM,
legato and staccato, velocities 35-120. Every MIDI piece is rendered through both soundfonts.
Two more families are not MIDI: voice_speech (syllables said by espeak-ng, in words, several
languages and voices) and voice_sung (slow espeak-ng syllables at a pitch per note: legato
vowels, consonant-led, or mixed); their onsets come from the syllables' placement (see
"voices" below).

Ground truth. Each note's onset is its MIDI note-on time plus its patch's *audible-onset
delay*: the time from the note-on until the patch's envelope, rendered alone (middle pitch,
velocity 100), first comes within ``ONSET_DB`` dB of its peak. For a piano or a drum that is
a few ms (FluidSynth's own render latency included); for choir aahs, pads or bowed strings
with a slow attack it is tens of ms, which is when a listener hears the note begin -- and
when a visual flash would look right. Onsets closer than ``MERGE_S`` (chords, flams, strums)
are one onset, at the first.

Splits are by piece (one MIDI file or voice score), never by excerpt: every degradation and
both timbre sets of a piece land in the same split. Tune on ``train``, choose on
``validation``, report on ``test``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

SR = 48000
TICKS_PER_BEAT = 480
MIDI_TEMPO = 500000            # the file's own tempo (120 BPM): 960 ticks per second
TICKS_PER_S = TICKS_PER_BEAT * 1e6 / MIDI_TEMPO
MERGE_S = 0.030                # onsets closer than this are one onset
ONSET_DB = 15.0                # audible onset: the envelope within this of the note's peak
START_S = 0.4                  # silence before the first note
TAIL_S = 0.8                   # after the last note-off (release, reverb)
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
# the second timbre set (--second-soundfont): Debian timgm6mb-soundfont, else MuseScore's small
# GM font (musescore-general-soundfont-small)
SECOND_SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2",
                     "/usr/share/sounds/sf2/MuseScore_General_Lite.sf2")

# family -> (GM programs, 0-based; pitch range)
FAMILIES = {
    "piano": ((0, 1, 2, 4), (36, 96)),
    "plucked": ((24, 25, 26, 45, 46, 105), (40, 84)),
    "bowed": ((40, 41, 42, 48, 49), (43, 88)),
    "winds": ((56, 65, 68, 71, 73), (55, 86)),
    "organ_pad": ((16, 19, 88, 89), (40, 84)),
    "voice": ((52, 53, 54), (50, 76)),
    "drums": ((), ()),
    "band": ((), ()),
}
# spoken and sung syllables from espeak-ng (not MIDI: see "voices" below)
VOICE_FAMILIES = ("voice_speech", "voice_sung")
ALL_FAMILIES = tuple(FAMILIES) + VOICE_FAMILIES  # a family's index here seeds its pieces
# the target groups of issue 15
GROUPS = {"percussive": ("drums", "piano", "plucked"), "mixed": ("band",),
          "voice": ("voice",) + VOICE_FAMILIES, "legato": ("bowed", "winds", "organ_pad")}
DEGRADATIONS = ("clean", "reverb", "hiss_20db", "crowd_10db", "cheap_mic", "clipped",
                "quiet_40db")
SPLITS = (("test", 3), ("validation", 2))  # the first pieces of each family; the rest: train
DRUM_KEYS = {"kick": 36, "kick2": 35, "snare": 38, "snare2": 40, "hat": 42, "pedal_hat": 44,
             "open_hat": 46, "crash": 49, "ride": 51, "tom_lo": 45, "tom_mid": 47, "tom_hi": 50,
             "clap": 39}


@dataclass
class Note:
    start: float
    duration: float
    pitch: int
    velocity: int
    channel: int = 0


@dataclass
class Part:
    channel: int
    program: int                                 # -1: the drum channel
    notes: list[Note] = field(default_factory=list)
    vibrato: float = 0.0                         # depth in semitones (0: none)


# -- scores -------------------------------------------------------------------------------------

def _durations(rng, beat, shortest_s=0.11):
    grid = np.array([0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 1.5, 2.0])
    ok = grid[grid * beat >= shortest_s]
    return ok if len(ok) else np.array([1.0])


def melody(rng, tempo, seconds, lo, hi, legato, channel=0, rest_p=0.08):
    """A random-walk line: note lengths on a beat grid, legato (notes touch) or staccato."""
    beat = 60.0 / tempo
    grid = _durations(rng, beat)
    notes, t, pitch = [], START_S, int(rng.integers(lo + 6, hi - 6))
    while t < seconds - 0.3:
        ioi = float(rng.choice(grid)) * beat
        if rng.random() < rest_p and notes:
            t += ioi
            continue
        pitch = int(np.clip(pitch + rng.integers(-5, 6), lo, hi))
        length = ioi * (1.02 if legato else float(rng.uniform(0.25, 0.5)))
        notes.append(Note(t, length, pitch, int(rng.integers(35, 121)), channel))
        t += ioi
    return notes


def chords(rng, tempo, seconds, lo, hi, beats_choice=(1, 2, 2, 4), channel=1, legato=True,
           size=(3, 4)):
    """Block chords on the beat grid (all notes of a chord start together: one onset)."""
    beat = 60.0 / tempo
    notes, t = [], START_S
    while t < seconds - 0.3:
        span = float(rng.choice(beats_choice)) * beat
        root = int(rng.integers(lo, hi - 12))
        shape = rng.choice([[0, 4, 7, 12], [0, 3, 7, 10], [0, 5, 9, 12], [0, 4, 7, 11]])
        vel = int(rng.integers(35, 115))
        length = span * (1.0 if legato else 0.4)
        for iv in shape[:int(rng.integers(size[0], size[1] + 1))]:
            notes.append(Note(t, length, root + int(iv), vel, channel))
        t += span
    return notes


def drum_pattern(rng, tempo, seconds, channel=9):
    """A kit groove with variations and fills; velocities vary hit to hit."""
    beat = 60.0 / tempo
    style = rng.choice(["rock", "four", "half", "busy", "swing"])
    notes, bar_start, bar = [], START_S, 0
    while bar_start < seconds - 0.3:
        hits = []
        if style == "rock":
            hits = [(0, "kick"), (1, "snare"), (2, "kick"), (2.5, "kick"), (3, "snare")]
            hits += [(e / 2, "hat") for e in range(8)]
        elif style == "four":
            hits = [(b, "kick") for b in range(4)] + [(1, "clap"), (3, "clap")]
            hits += [(b + 0.5, "open_hat") for b in range(4)]
        elif style == "half":
            hits = [(0, "kick"), (2, "snare"), (3.5, "kick")] + [(b, "ride") for b in range(4)]
        elif style == "busy":
            hits = [(0, "kick"), (0.75, "kick"), (1, "snare"), (1.75, "snare2"), (2.5, "kick"),
                    (3, "snare")] + [(e / 4, "hat") for e in range(16) if e % 3 != 2]
        else:
            hits = [(0, "kick"), (1, "snare"), (2, "kick"), (3, "snare")]
            hits += [(b + d, "ride") for b in range(4) for d in (0, 2 / 3)]
        if bar % 4 == 3:  # a fill on the last bar of four
            hits = [h for h in hits if h[0] < 2]
            hits += [(2 + e / 4, str(rng.choice(["tom_hi", "tom_mid", "tom_lo", "snare"])))
                     for e in range(8)]
        if bar % 4 == 0 and bar:
            hits.append((0, "crash"))
        for pos, name in hits:
            if rng.random() < 0.06:   # a dropped hit: no grid can be assumed
                continue
            notes.append(Note(bar_start + pos * beat, 0.1, DRUM_KEYS[name],
                              int(rng.integers(40, 128)), channel))
        bar_start += 4 * beat
        bar += 1
    return notes


def make_score(family: str, rng: np.random.Generator, seconds: float) -> list[Part]:
    tempo = float(rng.uniform(60, 180))
    if family == "drums":
        return [Part(9, -1, drum_pattern(rng, tempo, seconds))]
    if family == "band":
        drums = Part(9, -1, drum_pattern(rng, tempo, seconds))
        bass = Part(0, int(rng.choice([32, 33, 34, 38])),
                    melody(rng, tempo, seconds, 28, 52, legato=bool(rng.random() < 0.5)))
        comp = Part(1, int(rng.choice([0, 4, 16, 25, 27, 48])),
                    chords(rng, tempo, seconds, 48, 72, channel=1,
                           legato=bool(rng.random() < 0.5)))
        lead = Part(2, int(rng.choice([56, 65, 73, 80, 81, 29])),
                    melody(rng, tempo, seconds, 60, 86, legato=bool(rng.random() < 0.5),
                           channel=2, rest_p=0.25))
        return [drums, bass, comp, lead]
    programs, (lo, hi) = FAMILIES[family]
    program = int(rng.choice(programs))
    legato = family in ("bowed", "voice", "organ_pad") or rng.random() < 0.5
    if family in ("bowed", "winds") and rng.random() < 0.3:
        legato = False
    vibrato = float(rng.choice([0.0, 0.25, 0.4])) if family in ("bowed", "winds", "voice") \
        else 0.0
    if family == "piano":
        right = melody(rng, tempo, seconds, 60, hi, legato=legato)
        left = chords(rng, tempo, seconds, lo, 60, channel=0, legato=legato, size=(2, 3))
        return [Part(0, program, right + left)]
    if family == "organ_pad":
        part = Part(0, program, chords(rng, tempo, seconds, lo, hi - 12, channel=0,
                                       beats_choice=(1, 2, 2, 3, 4)))
        if rng.random() < 0.5:
            part.notes += melody(rng, tempo, seconds, 64, hi, legato=True, channel=0)
        return [part]
    if family == "plucked" and rng.random() < 0.4:
        notes = chords(rng, tempo, seconds, lo, hi - 12, channel=0, legato=False, size=(3, 4))
        return [Part(0, program, notes + melody(rng, tempo, seconds, lo + 12, hi, legato))]
    notes = melody(rng, tempo, seconds, lo, hi, legato=legato)
    if family in ("voice", "bowed") and rng.random() < 0.4:  # a second, slower voice
        notes += melody(rng, tempo / 2, seconds, lo, lo + 14, legato=True)
    return [Part(0, program, notes, vibrato)]


# -- MIDI ---------------------------------------------------------------------------------------

def ticks(seconds: float) -> int:
    return int(round(seconds * TICKS_PER_S))


def write_midi(parts: list[Part], path: Path, end_s: float) -> None:
    """One track; times quantised to 1/960 s (the annotations are read back from the ticks)."""
    events = []  # (tick, order, message) -- note-offs before note-ons at the same tick
    for part in parts:
        if part.program >= 0:
            events.append((0, 0, mido.Message("program_change", channel=part.channel,
                                              program=part.program)))
        for n in part.notes:
            events.append((ticks(n.start), 2, mido.Message("note_on", channel=part.channel,
                                                           note=n.pitch, velocity=n.velocity)))
            events.append((ticks(n.start + n.duration), 1,
                           mido.Message("note_off", channel=part.channel, note=n.pitch)))
        if part.vibrato > 0:  # a 5.5 Hz pitch LFO through pitch bend (range +-2 semitones)
            depth = part.vibrato / 2.0 * 8191
            for t in np.arange(START_S, end_s - TAIL_S, 0.02):
                value = int(round(depth * np.sin(2 * np.pi * 5.5 * t)))
                events.append((ticks(t), 0, mido.Message("pitchwheel", channel=part.channel,
                                                         pitch=value)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO, time=0)])
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, ticks(end_s) - now)))
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(track)
    mid.save(path)


def note_ons(path: Path) -> list[tuple[float, int, int, int]]:
    """``(time_s, channel, program, note)`` of every note-on (velocity > 0) in a MIDI file."""
    programs, now, out = {}, 0.0, []
    for msg in mido.MidiFile(path):  # iterating a MidiFile yields times in seconds
        now += msg.time
        if msg.type == "program_change":
            programs[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            out.append((now, msg.channel, -1 if msg.channel == 9 else
                        programs.get(msg.channel, 0), msg.note))
    return out


def merge_onsets(times, window_s: float = MERGE_S) -> np.ndarray:
    """Sorted times with every cluster (each within ``window_s`` of its first) made one."""
    merged = []
    for t in sorted(times):
        if not merged or t - merged[-1] >= window_s:
            merged.append(t)
    return np.array(merged)


# -- rendering ----------------------------------------------------------------------------------

def find_soundfont(explicit: str | None, defaults=SOUNDFONTS,
                   package: str = "fluid-soundfont-gm") -> Path:
    for candidate in ([explicit] if explicit else defaults):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit("make_onset_corpus: no General MIDI soundfont found (looked for "
                     f"{', '.join([explicit] if explicit else defaults)}); install Debian's "
                     f"{package} (scripts/setup.sh --dev) or name one")


def render(midi: Path, soundfont: Path, wav: Path) -> np.ndarray:
    """FluidSynth, dry (its reverb and chorus off: the room is a degradation of its own)."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise SystemExit("make_onset_corpus: the fluidsynth CLI is not installed (Debian "
                         "package fluidsynth; scripts/setup.sh --dev installs it)")
    subprocess.run([exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(SR),
                    "-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(midi)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    x, sr = sf.read(wav, dtype="float64", always_2d=True)
    assert sr == SR, (sr, wav)
    return x.mean(axis=1)


def audible_delay(x: np.ndarray, note_on_s: float, onset_db: float = ONSET_DB) -> float:
    """Seconds from ``note_on_s`` until the 5 ms RMS envelope first comes within ``onset_db``
    of its peak over the following 1.5 s."""
    i0 = int(note_on_s * SR)
    seg = x[i0:i0 + int(1.5 * SR)] ** 2
    win = int(0.005 * SR)
    env = np.sqrt(np.convolve(seg, np.ones(win) / win, mode="full")[:len(seg)])
    if env.max() <= 0:
        return 0.0
    first = int(np.argmax(env >= env.max() * 10 ** (-onset_db / 20)))
    return max(0.0, (first - win / 2) / SR)  # the RMS window is centred half a window back


class DelayTable:
    """Audible-onset delay per (program, note class), measured once per soundfont by
    rendering the patch alone; drums per key."""

    def __init__(self, soundfont: Path, workdir: Path):
        self.soundfont, self.workdir, self.cache = soundfont, workdir, {}

    def delay(self, channel: int, program: int, note: int) -> float:
        key = (program, note) if channel == 9 else (program, 60)
        if key not in self.cache:
            part = Part(9 if channel == 9 else 0, program,
                        [Note(0.5, 0.1 if channel == 9 else 1.2, key[1], 100,
                              9 if channel == 9 else 0)])
            mid, wav = self.workdir / "probe.mid", self.workdir / "probe.wav"
            write_midi([part], mid, 2.2)
            self.cache[key] = audible_delay(render(mid, self.soundfont, wav), 0.5)
        return self.cache[key]


def annotations(midi: Path, delays: DelayTable) -> np.ndarray:
    return merge_onsets(t + delays.delay(ch, prog, note) for t, ch, prog, note in note_ons(midi))


# -- voices: spoken and sung syllables from espeak-ng --------------------------------------------
#
# Each syllable is synthesized on its own (``espeak-ng -w``: one voice, pitch and speed), its
# leading silence cut, and mixed into the piece at a chosen placement. Its onset is the
# placement plus the syllable's *first audible sound*: the first 5 ms RMS window within
# VOICE_ONSET_DB of that syllable's own peak, measured on the syllable alone (audible_delay).
# 30 dB, not the 15 dB of the notes: a spoken /t/ or /k/ burst sits ~20-25 dB under its vowel,
# and a listener hears the syllable begin at the consonant, not 40-80 ms later at the vowel.
# So a slow sung "ma" or "na" is annotated where its hummed /m/ or /n/ begins (often 15-20 dB
# under the vowel, up to ~200 ms before it), not at the vowel's energy rise.
# Legato sung notes (vowel-led syllables abutting the previous note, which is cut with a short
# cross-fade) have no consonant and often no energy rise: only their pitch and timbre change.

ESPEAK_SR = 22050               # espeak-ng's output rate
VOICE_ONSET_DB = 30.0
LEAD_TRIM_DB = 70.0             # leading samples this far under the peak are silence
SUSTAIN_DB = 20.0               # a sung vowel is held while within this of its peak
SPEECH_VOICES = ("en+m3", "en+f3", "en-us+f2", "fr", "fr+f4", "pt-br", "pt-br+f1", "de+m2",
                 "es+f3", "it")
SUNG_VOICES = ("en+f3", "en+m1", "fr+f2", "pt-br", "it", "es+f4", "en-us+f5", "de")
CONSONANTS = ("p", "t", "k", "b", "d", "g", "m", "n", "l")
VOWELS = ("a", "e", "i", "o", "u")
SUNG_VOWELS = ("a", "ah", "o", "oo", "e", "ay")
# codas that continue the vowel: a final plosive's release would be a second attack that no
# syllable-onset annotation names
CODAS = ("", "", "", "n", "m", "l")
SCALE = (0, 2, 4, 5, 7, 9, 11)  # a major scale, in semitones


@dataclass
class Syllable:
    text: str
    voice: str
    pitch: int          # espeak-ng -p, 0..99
    speed: int          # espeak-ng -s, words per minute
    start: float        # placement (s): where its first non-silent sample goes
    end: float = 0.0    # where its (cut) audio ends (filled in by render_voices)
    gain_db: float = 0.0
    cut: float | None = None   # sung notes: cut (with a 30 ms fade) this long after start
    style: str = "speech"      # or the sung piece's style: legato, consonant, mixed
    onset: float = 0.0  # annotation: start + its first audible sound (filled in by render)


class SyllableCache:
    """espeak-ng renders of single syllables at 48 kHz, leading silence cut, with the delay of
    their first audible sound (s); each (text, voice, pitch, speed) is synthesized once."""

    def __init__(self, workdir: Path):
        self.workdir, self.cache = workdir, {}
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise SystemExit("make_onset_corpus: the espeak-ng CLI is not installed (Debian "
                             "package espeak-ng; scripts/setup.sh --dev installs it)")
        self.exe = exe

    def get(self, syl: Syllable) -> tuple[np.ndarray, float]:
        key = (syl.text, syl.voice, syl.pitch, syl.speed)
        if key not in self.cache:
            wav = self.workdir / "syllable.wav"
            subprocess.run([self.exe, "-v", syl.voice, "-p", str(syl.pitch), "-s",
                            str(syl.speed), "-w", str(wav), syl.text], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            x, sr = sf.read(wav, dtype="float64", always_2d=True)
            assert sr == ESPEAK_SR, (sr, syl)
            x = resample_poly(x.mean(axis=1), 320, 147)  # 22050 * 320 / 147 = 48000
            loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (-LEAD_TRIM_DB / 20))
            x = x[loud[0]:loud[-1] + 1] / np.abs(x).max()
            win = int(0.005 * SR)
            env = np.sqrt(np.convolve(x ** 2, np.ones(win) / win, mode="same"))
            held = np.flatnonzero(env >= env.max() * 10 ** (-SUSTAIN_DB / 20))
            self.cache[key] = (x, audible_delay(x, 0.0, VOICE_ONSET_DB), held[-1] / SR)
        return self.cache[key][:2]

    def sustain_s(self, syl: Syllable) -> float:
        """How long the syllable stays within SUSTAIN_DB of its peak (its vowel, held): a
        legato note is cut there at the latest, so the next one comes in under it."""
        self.get(syl)
        return self.cache[(syl.text, syl.voice, syl.pitch, syl.speed)][2]


def _syllable_text(rng, vowel_led_p: float) -> str:
    if rng.random() < vowel_led_p:
        return str(rng.choice(VOWELS)) + str(rng.choice(("", "n", "m")))
    return str(rng.choice(CONSONANTS)) + str(rng.choice(VOWELS)) + str(rng.choice(CODAS))


def speech_score(rng, seconds: float, cache: SyllableCache) -> list[Syllable]:
    """Words of one to three syllables, said by one voice at one rate: syllables within a word
    follow each other closely, words have pauses between them."""
    voice = str(rng.choice(SPEECH_VOICES))
    speed, base = int(rng.integers(130, 221)), int(rng.integers(25, 76))
    gap_in_word, word_gap = (0.0, 0.05), (0.08, 0.45)
    out, t = [], START_S
    while t < seconds - 0.3:
        for _ in range(int(rng.integers(1, 4))):
            syl = Syllable(_syllable_text(rng, 0.2), voice,
                           int(np.clip(base + rng.integers(-10, 11), 0, 99)), speed, t,
                           gain_db=float(rng.uniform(-9, 0)))
            audio, _ = cache.get(syl)
            out.append(syl)
            t += len(audio) / SR + float(rng.uniform(*gap_in_word))
        t += float(rng.uniform(*word_gap))
    return out


SUNG_STYLES = ("legato", "consonant", "mixed")


def sung_score(rng, seconds: float, cache: SyllableCache, style: str) -> list[Syllable]:
    """A melody, one syllable a note, slow espeak speech at per-note pitch. Styles: legato
    (vowel-led syllables, each note cut where the next begins), consonant-led (la, da, na ...;
    legato or detached), or a mix."""
    voice = str(rng.choice(SUNG_VOICES))
    speed = int(rng.integers(80, 111))
    beat = 60.0 / float(rng.uniform(60, 140))
    grid = np.array([0.5, 1.0, 1.0, 1.5, 2.0])
    grid = grid[grid * beat >= 0.2] if np.any(grid * beat >= 0.2) else np.array([1.0])
    detached = style != "legato" and rng.random() < 0.5
    degree, low = int(rng.integers(3, 8)), int(rng.integers(5, 30))
    out, t = [], START_S
    while t < seconds - 0.3:
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 13))
        semis = 12 * (degree // 7) + SCALE[degree % 7]
        vowel_led = {"legato": 1.0, "consonant": 0.0, "mixed": 0.5}[style]
        if rng.random() < vowel_led:
            text = str(rng.choice(SUNG_VOWELS))
        else:
            text = str(rng.choice(("l", "d", "n", "m", "b", "t", "k"))) + \
                str(rng.choice(("a", "aa", "o", "oo", "ay", "ee")))
        syl = Syllable(text, voice, int(np.clip(low + 3 * semis, 0, 99)), speed, t,
                       gain_db=float(rng.uniform(-8, 0)), style=style)
        length = min(float(rng.choice(grid)) * beat, cache.sustain_s(syl))
        syl.cut = length * (float(rng.uniform(0.5, 0.8)) if detached else 1.0)
        out.append(syl)
        t += max(length, 0.12)
    return out


def render_voices(syllables: list[Syllable], cache: SyllableCache) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """The mix and its onsets (each syllable's placement plus its first audible sound,
    merged within MERGE_S like the notes' onsets)."""
    end = max(s.start + len(cache.get(s)[0]) / SR for s in syllables) + TAIL_S
    mix = np.zeros(int(end * SR))
    fade = int(0.03 * SR)
    for syl in syllables:
        audio, delay = cache.get(syl)
        audio = audio * 10 ** (syl.gain_db / 20)
        if syl.cut is not None and int(syl.cut * SR) < len(audio):
            n = int(syl.cut * SR)
            audio = audio[:n + fade // 2].copy()
            # the cross-fade straddles the cut: the next note comes in under its second half
            audio[-fade:] *= np.linspace(1.0, 0.0, fade) if len(audio) >= fade else 1.0
        i0 = int(round(syl.start * SR))
        mix[i0:i0 + len(audio)] += audio
        syl.onset, syl.end = i0 / SR + delay, (i0 + len(audio)) / SR
    return mix, merge_onsets(s.onset for s in syllables)


def voice_score(family: str, k: int, rng, seconds: float, cache: SyllableCache
                ) -> list[Syllable]:
    """Piece ``k`` of a voice family; sung pieces take the styles in turn (every split gets
    legato ones)."""
    if family == "voice_speech":
        return speech_score(rng, seconds, cache)
    return sung_score(rng, seconds, cache, SUNG_STYLES[k % len(SUNG_STYLES)])


# -- degradations -------------------------------------------------------------------------------

def _peak_to(x, dbfs):
    peak = np.abs(x).max()
    return x * (10 ** (dbfs / 20) / peak) if peak > 0 else x


def _noise_at_snr(x, noise, snr_db):
    ps, pn = np.mean(x ** 2), np.mean(noise ** 2)
    return x + noise * np.sqrt(ps / (pn * 10 ** (snr_db / 10))) if pn > 0 else x


def _pink(rng, n):
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    return np.fft.irfft(spec, n)


def room_ir(rng) -> np.ndarray:
    """Direct sound, a few early reflections and an exponentially decaying diffuse tail whose
    highs die faster (RT60 0.6-1.6 s), at a direct-to-reverberant ratio of -3..+3 dB."""
    rt60 = float(rng.uniform(0.6, 1.6))
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    tail = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt60)
    dark = sosfilt(butter(2, 4000, "low", fs=SR, output="sos"), tail)
    tail = 0.5 * tail * np.exp(-6.9 * t / (0.5 * rt60)) + dark
    tail[:int(0.012 * SR)] = 0.0  # pre-delay: the tail starts after the early reflections
    ir = np.zeros(n)
    ir[0] = 1.0
    for _ in range(6):
        ir[int(rng.uniform(0.003, 0.03) * SR)] += float(rng.uniform(-0.5, 0.5))
    drr_db = float(rng.uniform(-3, 3))
    tail *= np.sqrt(np.sum(ir ** 2) / (np.sum(tail ** 2) * 10 ** (drr_db / 10)))
    return ir + tail


def crowd(rng, n) -> np.ndarray:
    """Babble: band-passed pink noise under a slow random swell, plus a 50 Hz mains hum."""
    babble = sosfilt(butter(2, [250, 3500], "band", fs=SR, output="sos"), _pink(rng, n))
    swell = np.interp(np.arange(n), np.linspace(0, n, max(2, n // (SR // 4))),
                      rng.uniform(0.4, 1.0, max(2, n // (SR // 4))))
    babble *= swell
    t = np.arange(n) / SR
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5))
    return babble / np.std(babble) + 0.3 * hum / np.std(hum)


def degrade(x: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    """One degraded copy of the dry render ``x`` (float, any level), float in [-1, 1]."""
    n = len(x)
    if name == "clean":
        y = x
    elif name == "reverb":
        y = fftconvolve(x, room_ir(rng))[:n]
    elif name == "hiss_20db":
        y = _noise_at_snr(x, 0.5 * rng.normal(0, 1, n) + _pink(rng, n) / 30, 20.0)
    elif name == "crowd_10db":
        y = _noise_at_snr(x, crowd(rng, n), 10.0)
    elif name == "cheap_mic":
        y = sosfilt(butter(3, [250, 4500], "band", fs=SR, output="sos"), x)
        y = np.tanh(3.0 * _peak_to(y, 0.0)) / np.tanh(3.0)
        y = _noise_at_snr(y, rng.normal(0, 1, n), 35.0)
    elif name == "clipped":
        return np.clip(_peak_to(x, 12.0), -1.0, 1.0)  # 12 dB into a hard limit
    elif name == "quiet_40db":
        y = _peak_to(x, -40.0)
        return y + rng.normal(0, 10 ** (-90 / 20), n)  # plus a converter's floor
    else:
        raise ValueError(f"unknown degradation {name!r}")
    return _peak_to(y, float(rng.uniform(-12.0, -1.0)))


# -- the corpus ---------------------------------------------------------------------------------

def split_of(index: int) -> str:
    start = 0
    for name, count in SPLITS:
        if index < start + count:
            return name
        start += count
    return "train"


def choose_degradations(split: str, degradations, count: int, rng) -> list[str]:
    """All of ``degradations`` for validation and test; for train the clean copy and ``count``
    others drawn by ``rng``."""
    chosen = list(degradations)
    if split == "train" and count < len(chosen):
        others = [d for d in chosen if d != "clean"]
        pick = rng.choice(len(others), count, replace=False)
        chosen = ["clean"] + [others[i] for i in sorted(pick)]
    return chosen


def _reusable(reuse: Path | None, midi: Path, names: list[str]) -> bool:
    """Whether ``reuse`` (an earlier corpus by this script, same seed) holds this very score
    and every render asked for: the renders are then copied, not made again (FluidSynth and
    the degradations are deterministic: the same score makes the same files)."""
    if reuse is None:
        return False
    old = reuse / "midi" / midi.name
    return old.is_file() and old.read_bytes() == midi.read_bytes() and \
        all((reuse / "audio" / n).is_file() for n in names)


def _write_renders(out, dry, chosen, piece, tag, seeds, item_base, items):
    for deg in chosen:
        y = degrade(dry, deg, np.random.default_rng([*seeds, 7, DEGRADATIONS.index(deg)]))
        name = f"{piece}__{deg}{tag}.flac"
        sf.write(out / "audio" / name, y.astype(np.float32), SR, subtype="PCM_16")
        items.append(dict(item_base, audio=f"audio/{name}", degradation=deg,
                          duration_s=len(y) / SR))


def make_corpus(out: Path, pieces: int = 11, seconds: float = 10.0, seed: int = 0,
                families=tuple(FAMILIES), degradations=DEGRADATIONS,
                train_degradations: int = 3, soundfont: str | None = None,
                second_soundfont: str | None = None, second_degradations: int | None = None,
                reuse: Path | None = None, log=print) -> dict:
    """The corpus under ``out``. ``second_soundfont`` (a path, or "auto": TimGM6mb) renders
    every MIDI piece a second time through it, with ``second_degradations`` degraded copies
    besides the clean one (None: as many as the first set), its own audible-onset delays and
    annotations (``annotations/<piece>__<tag>.onsets``, audio ``<piece>__<deg>__<tag>.flac``),
    in the piece's split. ``reuse``: an earlier corpus whose identical renders are copied."""
    midi_families = [f for f in families if f in FAMILIES]
    voice_families = [f for f in families if f in VOICE_FAMILIES]
    sf2 = find_soundfont(soundfont) if midi_families else None
    sf2b = None
    if second_soundfont and midi_families:
        sf2b = find_soundfont(None if second_soundfont == "auto" else second_soundfont,
                              SECOND_SOUNDFONTS, "timgm6mb-soundfont")
    tag_b = "__" + sf2b.stem.lower().replace("_", "-") if sf2b else ""
    for sub in ("midi", "audio", "annotations") + (("scores",) if voice_families else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    items = []
    with tempfile.TemporaryDirectory() as tmp:
        delays = DelayTable(sf2, Path(tmp)) if sf2 else None
        delays_b = DelayTable(sf2b, Path(tmp)) if sf2b else None
        syllables = SyllableCache(Path(tmp)) if voice_families else None
        for family in families:
            fam_index = ALL_FAMILIES.index(family)
            for k in range(pieces):
                rng = np.random.default_rng([seed, fam_index, k])
                piece = f"{family}_{k:02d}"
                split = split_of(k)
                base = {"piece": piece, "family": family, "split": split}
                if family in VOICE_FAMILIES:
                    score = voice_score(family, k, rng, seconds, syllables)
                    dry, onsets = render_voices(score, syllables)
                    ann = out / "annotations" / f"{piece}.onsets"
                    ann.write_text("".join(f"{t:.6f}\n" for t in onsets))
                    (out / "scores" / f"{piece}.json").write_text(json.dumps(
                        [vars(s) for s in score], indent=0))
                    chosen = choose_degradations(split, degradations, train_degradations, rng)
                    _write_renders(out, dry, chosen, piece, "", (seed, fam_index, k),
                                   dict(base, onsets=f"annotations/{ann.name}", midi=None,
                                        score=f"scores/{piece}.json", soundfont="espeak-ng",
                                        timbre_set="espeak-ng"), items)
                    log(f"{piece} ({split}): {len(onsets)} onsets, {len(chosen)} renders")
                    continue
                midi = out / "midi" / f"{piece}.mid"
                parts = make_score(family, rng, seconds)
                end_s = max(n.start + n.duration for p in parts for n in p.notes) + TAIL_S
                write_midi(parts, midi, end_s)
                onsets = annotations(midi, delays)
                ann = out / "annotations" / f"{piece}.onsets"
                ann.write_text("".join(f"{t:.6f}\n" for t in onsets))
                chosen = choose_degradations(split, degradations, train_degradations, rng)
                item_base = dict(base, onsets=f"annotations/{ann.name}",
                                 midi=f"midi/{midi.name}", soundfont=sf2.name,
                                 timbre_set=sf2.stem)
                names = [f"{piece}__{deg}.flac" for deg in chosen]
                if _reusable(reuse, midi, names):
                    for name, deg in zip(names, chosen):
                        shutil.copyfile(reuse / "audio" / name, out / "audio" / name)
                        items.append(dict(item_base, audio=f"audio/{name}", degradation=deg,
                                          duration_s=sf.info(out / "audio" / name).duration))
                else:
                    dry = render(midi, sf2, Path(tmp) / "render.wav")
                    _write_renders(out, dry, chosen, piece, "", (seed, fam_index, k),
                                   item_base, items)
                line = f"{piece} ({split}): {len(onsets)} onsets, {len(chosen)} renders"
                if sf2b is not None:
                    onsets_b = annotations(midi, delays_b)
                    ann_b = out / "annotations" / f"{piece}{tag_b}.onsets"
                    ann_b.write_text("".join(f"{t:.6f}\n" for t in onsets_b))
                    pick_rng = np.random.default_rng([seed, fam_index, k, 11])
                    count = train_degradations if second_degradations is None \
                        else second_degradations
                    chosen_b = choose_degradations(split, degradations, count, pick_rng)
                    if second_degradations is not None:
                        chosen_b = choose_degradations("train", degradations, count, pick_rng)
                    dry_b = render(midi, sf2b, Path(tmp) / "render.wav")
                    _write_renders(out, dry_b, chosen_b, piece, tag_b,
                                   (seed, fam_index, k, 1), dict(
                                       item_base, onsets=f"annotations/{ann_b.name}",
                                       soundfont=sf2b.name, timbre_set=sf2b.stem), items)
                    line += f"; {sf2b.name}: {len(onsets_b)} onsets, {len(chosen_b)} renders"
                log(line)

        def delay_ms(table):
            return {f"{'drum key' if p < 0 else 'program'} {p if p >= 0 else n}":
                    round(1000 * d, 1) for (p, n), d in sorted(table.cache.items())}
        by_font = {t.soundfont.name: delay_ms(t) for t in (delays, delays_b) if t}
    index = {"version": 1, "sample_rate": SR, "soundfont": sf2.name if sf2 else None,
             "seed": seed, "merge_s": MERGE_S, "onset_db": ONSET_DB, "groups": GROUPS,
             "audible_delay_ms": by_font.get(sf2.name, {}) if sf2 else {},
             # added fields (2nd timbre set, voices); the ones above keep their meaning
             "soundfonts": list(by_font), "audible_delay_ms_by_soundfont": by_font,
             "voice": {"engine": "espeak-ng", "onset_db": VOICE_ONSET_DB,
                       "families": voice_families} if voice_families else None,
             "items": items}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index


# the committed CI subset: (family, degradation), one test-split piece each, trimmed
SUBSET = (("drums", "clean"), ("band", "crowd_10db"), ("piano", "reverb"),
          ("plucked", "cheap_mic"), ("voice", "clean"), ("bowed", "clean"))
# the second committed subset (tests/test_onset_corpus_voice.py): (family, degradation, timbre
# set, piece); the sung pieces are legato (00), consonant-led (01) and mixed (02)
VOICE_SUBSET = (("voice_speech", "clean", "espeak-ng", "voice_speech_00"),
                ("voice_speech", "crowd_10db", "espeak-ng", "voice_speech_01"),
                ("voice_sung", "clean", "espeak-ng", "voice_sung_00"),
                ("voice_sung", "reverb", "espeak-ng", "voice_sung_01"),
                ("voice_sung", "cheap_mic", "espeak-ng", "voice_sung_02"),
                ("piano", "clean", "TimGM6mb", "piano_01"),
                ("band", "hiss_20db", "TimGM6mb", "band_00"))


def write_subset(corpus: Path, index: dict, dest: Path, seconds: float = 5.0,
                 spec=SUBSET, option: str = "--subset") -> None:
    """A few short test-split excerpts for CI, with their trimmed annotations. ``spec``:
    (family, degradation[, timbre set, piece]); without a timbre set, the first soundfont."""
    dest.mkdir(parents=True, exist_ok=True)
    items = []
    for family, deg, *which in spec:
        timbre, piece = which if which else (Path(index["soundfont"]).stem, None)
        item = next(i for i in index["items"] if i["family"] == family
                    and i["degradation"] == deg and i["split"] == "test"
                    and i.get("timbre_set", timbre) == timbre and piece in (None, i["piece"]))
        x, sr = sf.read(corpus / item["audio"], dtype="float32")
        x = x[:int(seconds * sr)]
        onsets = np.loadtxt(corpus / item["onsets"], ndmin=1)
        onsets = onsets[onsets < seconds - 0.05]
        stem = Path(item["audio"]).stem
        sf.write(dest / f"{stem}.flac", x, sr, subtype="PCM_16")
        (dest / f"{stem}.onsets").write_text("".join(f"{t:.6f}\n" for t in onsets))
        items.append(dict(item, audio=f"{stem}.flac", onsets=f"{stem}.onsets", midi=None,
                          duration_s=len(x) / sr, **({"score": None} if "score" in item
                                                     else {})))
    sub = {k: v for k, v in index.items() if k != "items"}
    sub["note"] = ("a trimmed subset of the test split made by tools/make_onset_corpus.py "
                   f"{option}; regenerate with the same command")
    (dest / "index.json").write_text(json.dumps(dict(sub, items=items), indent=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="output directory")
    p.add_argument("--pieces", type=int, default=11,
                   help="MIDI pieces per family (11: 3 test, 2 validation, 6 train)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each piece")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--families", nargs="+", default=list(ALL_FAMILIES),
                   choices=list(ALL_FAMILIES))
    p.add_argument("--degradations", nargs="+", default=list(DEGRADATIONS),
                   choices=list(DEGRADATIONS))
    p.add_argument("--train-degradations", type=int, default=3,
                   help="degraded copies of each training piece besides the clean one (3)")
    p.add_argument("--soundfont", default=None, help="GM soundfont (default: FluidR3_GM)")
    p.add_argument("--second-soundfont", default="auto", metavar="SF2|auto|none",
                   help="a second GM soundfont every MIDI piece is also rendered through "
                        "(auto: TimGM6mb, Debian timgm6mb-soundfont; none: no second set)")
    p.add_argument("--second-degradations", type=int, default=None, metavar="N",
                   help="degraded copies per piece in the second set besides the clean one, "
                        "in every split (default: as the first set)")
    p.add_argument("--reuse", type=Path, default=None, metavar="DIR",
                   help="an earlier corpus made with the same seed: renders of identical "
                        "scores are copied from it instead of made again")
    p.add_argument("--subset", type=Path, default=None, metavar="DIR",
                   help="also write the small committed CI subset to DIR")
    p.add_argument("--voice-subset", type=Path, default=None, metavar="DIR",
                   help="also write the second CI subset (voices, second timbre set) to DIR "
                        "(tests/data/onsets/voice_timgm)")
    args = p.parse_args(argv)
    index = make_corpus(args.out, args.pieces, args.seconds, args.seed, tuple(args.families),
                        tuple(args.degradations), args.train_degradations, args.soundfont,
                        None if args.second_soundfont == "none" else args.second_soundfont,
                        args.second_degradations, args.reuse)
    if args.subset is not None:
        write_subset(args.out, index, args.subset)
    if args.voice_subset is not None:
        write_subset(args.out, index, args.voice_subset, 4.0, VOICE_SUBSET, "--voice-subset")
    print(f"{len(index['items'])} audio files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
