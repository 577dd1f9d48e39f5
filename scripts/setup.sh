#!/usr/bin/env bash
# Set up phosphene on a fresh Debian/Ubuntu machine: system packages, a virtual environment in
# .venv, and the package with everything it needs (installed editable, so presets and shaders
# you change are picked up).
#
#   scripts/setup.sh          the tool itself
#   scripts/setup.sh --dev    also the test tools (pytest, mir_eval) and the hardware stand-ins
#                             the tests use (PulseAudio, JACK, Xvfb, liblo-tools, Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Runtime libraries: PortAudio (sounddevice), libsndfile (soundfile), EGL + Mesa (headless and
# windowed OpenGL through moderngl/glfw), Python's venv module, FFmpeg's libraries (torchcodec,
# which coqui-tts loads for YourTTS).
packages=(python3 python3-venv python3-dev libportaudio2 libsndfile1 libegl1 libgl1 libgl1-mesa-dri
          libgles2 libglfw3 ffmpeg)
# A C++ compiler: torch.compile's CPU backend builds kernels with it (the live compiled
# generator path; without it phosphene runs the generator eagerly).
packages+=(g++)
# Stand-ins for hardware a test machine lacks: a sound server with a null sink, JACK's dummy
# driver for MIDI ports, a virtual X screen, an independent OSC client, tools to inspect
# what was drawn, xdotool to press keys in a window the way a performer does, and a headless
# Chromium that loads the web control page (driven through its DevTools protocol).
dev_packages=(pulseaudio pulseaudio-utils libasound2-plugins jackd2 libjack-jackd2-0 liblo-tools xvfb x11-apps
              imagemagick xdotool chromium)
# The onset corpus (tools/make_onset_corpus.py, tests/test_onset_corpus.py): FluidSynth renders
# MIDI with known note onsets through a General MIDI soundfont; aubio's `aubioonset` is one of
# the reference detectors `phosphene bench onsets` compares with. TimGM6mb is the corpus's second
# timbre set; espeak-ng speaks and sings its voice families (tests/test_onset_corpus_voice.py).
dev_packages+=(fluidsynth fluid-soundfont-gm aubio-tools timgm6mb-soundfont espeak-ng)
[ "$dev" = 1 ] && packages+=("${dev_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  # env, not a prefix: sudo would drop a prefixed variable and jackd2 would ask a question
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras="[pregen]"
[ "$dev" = 1 ] && extras="[dev,pregen]"
echo "setup: installing phosphene${extras} into .venv (torch is large: a few minutes the first time)"
.venv/bin/python -m pip install -q -e ".${extras}"
echo "setup: done. Run .venv/bin/phosphene --help"
