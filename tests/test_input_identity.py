"""The input is the device the performer chose, and its audio is stamped when it arrived.

Real parts: a private PulseAudio server with two null sinks (the chosen source and another one
the server falls back to), PortAudio through ALSA's pulse plugin, paplay playing into each.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from phosphene.live.audio import devices
from phosphene.live.audio.streams import AudioIn

SR = 48000
OTHER = "other"          # a second card: where the server moves the stream when ours goes


def tone(path, freq: float, seconds: float, amp: float = 0.5):
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def play(pulse, sink: str, wav) -> subprocess.Popen:
    return subprocess.Popen(["paplay", f"--device={sink}", str(wav)], env=pulse.client_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def read_rms(audio_in: AudioIn, seconds: float) -> float:
    """RMS of the next ``seconds`` read from the input."""
    block = np.empty(256, np.float32)
    blocks = []
    for _ in range(int(seconds * SR / 256)):
        assert audio_in.read(block, timeout=2.0)
        blocks.append(block.copy())
    return float(np.sqrt(np.mean(np.concatenate(blocks) ** 2)))


def test_a_source_moved_by_the_server_is_a_loss_and_the_chosen_one_is_taken_back(pulse,
                                                                                 tmp_path):
    pulse.pactl("load-module", "module-null-sink", f"sink_name={OTHER}", f"rate={SR}")
    # the laptop mic the server would fall back to is loud the whole time
    substitute = play(pulse, OTHER, tone(tmp_path / "other.wav", 880.0, 60.0))
    ours = play(pulse, "phosphene_test", tone(tmp_path / "ours.wav", 220.0, 60.0, amp=0.3))
    try:
        with AudioIn("pulse", samplerate=SR, blocksize=256) as audio_in:
            assert audio_in.wait_running(timeout=10)
            assert audio_in.stats()["source"] == "phosphene_test.monitor"
            assert read_rms(audio_in, 0.5) > 0.1            # our tone
            ours.terminate()
            pulse.unload_sink()                             # our interface is unplugged
            assert wait_for(lambda: audio_in.lost), audio_in.stats()
            stats = audio_in.stats()
            assert stats["losses"] == 1 and stats["moved_to"] == f"{OTHER}.monitor"
            audio_in.drain()
            # silence, not the substitute's loud tone, while ours is gone
            assert read_rms(audio_in, 1.5) < 1e-4
            assert audio_in.lost                            # not reopened onto the substitute
            pulse.load_sink()                               # plugged back in
            assert wait_for(lambda: not audio_in.lost), audio_in.stats()
            assert audio_in.stats()["reconnects"] == 1
            assert audio_in._route.current() == "phosphene_test.monitor"
            ours = play(pulse, "phosphene_test", tone(tmp_path / "ours2.wav", 220.0, 30.0,
                                                      amp=0.3))
            audio_in.drain()
            assert wait_for(lambda: read_rms(audio_in, 0.3) > 0.1)   # ours again
    finally:
        for player in (substitute, ours):
            player.terminate()
            player.wait(timeout=10)


def test_each_block_is_stamped_when_its_callback_delivered_it(pulse, tmp_path):
    player = play(pulse, "phosphene_test", tone(tmp_path / "t.wav", 330.0, 30.0))
    try:
        with AudioIn("pulse", samplerate=SR, blocksize=256) as audio_in:
            assert audio_in.wait_running(timeout=10)
            audio_in.drain()
            time.sleep(1.0)                     # a reader that fell behind: audio waits
            block = np.empty(256, np.float32)
            assert audio_in.read(block, timeout=2.0)
            # the block read now arrived about a second ago, and says so
            assert time.monotonic() - audio_in.delivered_at > 0.8
            while audio_in._ring.available() >= 256:       # catch up
                audio_in.read(block, timeout=1.0)
            assert audio_in.read(block, timeout=2.0)
            assert time.monotonic() - audio_in.delivered_at < 0.2
    finally:
        player.terminate()
        player.wait(timeout=10)


def _alsa_unknown_pcm() -> None:
    """Make ALSA's library print an error of its own ("Unknown PCM")."""
    alsa = ctypes.CDLL("libasound.so.2")
    handle = ctypes.c_void_p()
    assert alsa.snd_pcm_open(ctypes.byref(handle), b"phosphene_no_such_pcm", 1, 0) < 0


def test_retries_leave_out_the_audio_libraries_own_messages(capfd):
    _alsa_unknown_pcm()
    assert "phosphene_no_such_pcm" in capfd.readouterr().err     # ALSA does print by itself
    with devices.quiet_audio_libraries():
        _alsa_unknown_pcm()
        os.write(2, b"Expression 'AlsaOpen( ... )' failed in "
                    b"'src/hostapi/alsa/pa_linux_alsa.c', line: 1904\n")
        os.write(2, b"WARNING another thread: keep this line\n")
    err = capfd.readouterr().err
    assert err == "WARNING another thread: keep this line\n"
    _alsa_unknown_pcm()                        # ALSA's own handler is back afterwards
    assert "phosphene_no_such_pcm" in capfd.readouterr().err


@pytest.mark.parametrize("line, noise", [
    (b"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM x\n", True),
    (b"Expression 'ret' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: 1736\n", True),
    (b"WARNING phosphene.live.audio.streams: audio input 'pulse' lost\n", False)])
def test_library_noise_is_told_apart(line, noise):
    assert devices.is_library_noise(line) is noise
