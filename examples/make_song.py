"""Make a 3-minute synthetic song with known sections, for ``phosphene bench motion``.

The demo's instruments (``make_demo.arrange``) in a song's shape: intro, verse, build, drop,
break, verse, build, drop, outro, 90 bars at 120 BPM (3:00). Writes ``song.flac`` and
``song.sections.json`` (each section's name and start in seconds: what the benchmark checks
scene changes against) next to this script, or into the folder given::

    python examples/make_song.py [OUT_DIR]
    phosphene bench motion examples/song.flac

The files are made, not shipped (about 10 MB): run the script where you need them.
"""

import sys
from pathlib import Path

import soundfile as sf

from make_demo import BPM, SR, arrange, write_sections

SONG_SECTIONS = (("intro", 8), ("verse", 16), ("build", 8), ("drop", 16), ("break", 8),
                 ("verse", 8), ("build", 8), ("drop", 16), ("outro", 2))


def main(argv):
    folder = Path(argv[0]) if argv else Path(__file__).parent
    folder.mkdir(parents=True, exist_ok=True)
    x, starts = arrange(SONG_SECTIONS, seed=7)
    audio = folder / "song.flac"
    sf.write(audio, x, SR, subtype="PCM_16")
    write_sections(folder / "song.sections.json", starts, len(x) / SR)
    print(f"wrote {audio} ({len(x) / SR:.0f} s, {BPM} BPM, {len(starts)} sections) and "
          f"{folder / 'song.sections.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
