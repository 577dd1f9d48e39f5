"""The real audio path: a PulseAudio null sink, a WAV played into it with paplay, our AudioIn
recording its monitor through PortAudio (ALSA ``pulse`` plugin); device loss and return by
unloading and reloading the sink; AudioOut playing into the sink while parec records it."""

import os
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

import synth_audio as S
from pulse_server import SINK
from phosphene.errors import PhospheneError
from phosphene.live.audio import devices
from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.audio.ringbuffer import RingBuffer

SR = 48000




def record(audio_in, seconds):
    hop = np.zeros(256, np.float32)
    blocks, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if audio_in.read(hop, timeout=0.5):
            blocks.append(hop.copy())
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def test_clicks_played_into_pulseaudio_arrive_with_spacing_and_level(pulse, tmp_path):
    from phosphene.live.audio.streams import AudioIn

    times = [0.4 + 0.3 * k for k in range(6)]
    x, _ = S.clicks(times, 2.6, amp=0.5)
    wav = tmp_path / "clicks.wav"
    sf.write(wav, x, SR)
    with AudioIn("pulse", samplerate=SR, blocksize=256) as audio_in:
        assert audio_in.wait_running(timeout=10)
        audio_in.drain()
        player = pulse.play(wav)
        y = record(audio_in, 3.2)
        player.wait(timeout=10)
        stats = audio_in.stats()
    assert stats["overflows"] == 0 and not stats["lost"]
    # level: the click amplitude comes through unchanged (float path, unity volume)
    assert np.abs(y).max() == pytest.approx(0.5, abs=0.02)
    analyzer = Analyzer(SR)
    frames = [analyzer.process(y[i:i + 256]) for i in range(0, len(y) - 255, 256)]
    onsets = np.array([f.time_s for f in frames if f.onset])
    assert len(onsets) == len(times)
    assert np.allclose(np.diff(onsets), 0.3, atol=0.012)  # spacing kept to within ~2 hops
    # levels: a 48-sample click of 0.5 in a 256-sample hop is 0.5*sqrt(48/256) -> -12.3 dBFS
    # (less when it straddles two hops); the normalised level jumps up with it
    click_hop_rms = 20 * np.log10(0.5 * np.sqrt(48 / 256))
    for k, frame in enumerate(frames):
        if frame.onset:
            near = frames[max(0, k - 4):k + 1]
            assert click_hop_rms - 4 < max(f.rms_dbfs for f in near) <= click_hop_rms + 0.5
            assert max(f.level for f in near) > 0.4  # the 5 ms attack has had 1-2 hops


def test_device_loss_gives_silence_then_recovers(pulse, tmp_path, caplog):
    from phosphene.live.audio.streams import AudioIn

    tone = (0.25 * np.sin(2 * np.pi * 440 * np.arange(SR * 12) / SR)).astype(np.float32)
    wav = tmp_path / "tone.wav"
    sf.write(wav, tone, SR)
    with AudioIn("pulse", samplerate=SR, blocksize=256, retry_interval_s=1.0) as audio_in:
        assert audio_in.wait_running(timeout=10)
        player = pulse.play(wav)
        before = record(audio_in, 1.5)
        assert np.abs(before[-SR // 2:]).max() == pytest.approx(0.25, abs=0.02)

        pulse.unload_sink()  # the "interface" is unplugged (paplay dies with it)
        player.wait(timeout=10)
        start = audio_in.samples_delivered
        t0 = time.monotonic()
        during = record(audio_in, 2.5)
        elapsed = time.monotonic() - t0
        assert audio_in.lost and audio_in.losses == 1
        # the clock kept going at the real-time rate, with silence once the loss was noticed
        assert (audio_in.samples_delivered - start) / SR == pytest.approx(elapsed, abs=0.4)
        assert np.abs(during[-SR:]).max() == 0.0
        assert audio_in.silent_blocks > 0

        pulse.load_sink()
        player = pulse.play(wav)
        deadline = time.monotonic() + 10
        while audio_in.lost and time.monotonic() < deadline:
            record(audio_in, 0.2)
        assert not audio_in.lost and audio_in.reconnects == 1
        after = record(audio_in, 2.0)
        player.kill()
    assert np.abs(after[-SR // 2:]).max() == pytest.approx(0.25, abs=0.02)
    lost_messages = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost_messages) == 1  # logged once, not once per retry


def test_audio_out_plays_into_the_sink(pulse, tmp_path):
    from phosphene.live.audio.streams import AudioOut

    raw = tmp_path / "rec.raw"
    with open(raw, "wb") as out_file:
        recorder = subprocess.Popen(
            ["parec", f"--device={SINK}.monitor", "--format=float32le", "--channels=1",
             f"--rate={SR}", "--raw", "--latency-msec=20"],
            env=pulse.client_env(), stdout=out_file)
        try:
            time.sleep(0.5)
            tone = (0.4 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)).astype(np.float32)
            with AudioOut("pulse", samplerate=SR, blocksize=256, channels=2) as audio_out:
                for i in range(0, len(tone), 256):
                    block = tone[i:i + 256]
                    assert audio_out.write_blocking(block, timeout=2.0) == len(block)
                deadline = time.monotonic() + 10
                while audio_out.queued_frames() and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.3)
                assert audio_out.queued_frames() == 0
        finally:
            recorder.terminate()
            recorder.wait(timeout=5)
    y = np.fromfile(raw, dtype=np.float32)
    loud = np.abs(y) > 0.2
    assert loud.sum() > 0.5 * SR  # most of the second of tone arrived
    assert np.abs(y).max() == pytest.approx(0.4, abs=0.03)
    # it is the 1 kHz tone: zero crossings at 2 kHz
    segment = y[np.argmax(loud):][:SR // 2]
    crossings = np.count_nonzero(np.diff(np.signbit(segment)))
    assert crossings / 0.5 == pytest.approx(2000, rel=0.05)


def test_device_by_index_and_by_name(pulse):
    found = devices.find_device("PULS", "input")
    assert found.name == "pulse"
    assert devices.find_device(found.index, "input") == found
    with pytest.raises(PhospheneError, match="no audio input device matching 'nonesuch'"):
        devices.find_device("nonesuch", "input")
    with pytest.raises(PhospheneError, match="no audio device with index 999"):
        devices.find_device(999, "input")


def test_devices_command_lists_the_pulse_device(pulse):
    out = subprocess.run(["phosphene", "devices"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": os.path.dirname(os.sys.executable) + ":"
                              + os.environ["PATH"]}, check=True).stdout
    assert "Audio devices:" in out
    line = next(line for line in out.splitlines() if line.strip().endswith("pulse"))
    index, ins, outs, rate = line.split()[:4]
    assert int(ins) > 0 and int(outs) > 0 and float(rate) > 0


def test_ring_buffer_wraps_and_counts_overflow():
    ring = RingBuffer(10)  # rounded up to 16
    assert ring.capacity == 16
    out = np.zeros(6, np.float32)
    for k in range(10):  # many wrap-arounds
        assert ring.write(np.arange(6, dtype=np.float32) + 6 * k) == 6
        assert ring.read_into(out) == 6
        assert np.array_equal(out, np.arange(6) + 6 * k)
    assert ring.read_into(out) == 0  # nothing there: no partial block
    ring.write(np.ones(12, np.float32))
    assert ring.write(np.ones(8, np.float32)) == 0 and ring.overflows == 1
    assert ring.available() == 12
    stereo = RingBuffer(8, channels=2)
    stereo.write(np.ones((5, 2), np.float32))
    block = np.zeros((8, 2), np.float32)
    assert stereo.read_available_into(block) == 5


def test_a_restarted_sound_server_is_a_loss_then_the_input_comes_back(pulse, tmp_path):
    """The whole PulseAudio server goes away (a crash, a desktop session restart) and comes back
    on the same socket: silence and one loss in between, then the input delivers again."""
    from phosphene.live.audio.streams import AudioIn

    tone = (0.25 * np.sin(2 * np.pi * 440 * np.arange(SR * 20) / SR)).astype(np.float32)
    wav = tmp_path / "tone.wav"
    sf.write(wav, tone, SR)
    with AudioIn("pulse", samplerate=SR, blocksize=256, retry_interval_s=1.0) as audio_in:
        assert audio_in.wait_running(timeout=10)
        player = pulse.play(wav)
        assert np.abs(record(audio_in, 1.0)[-SR // 4:]).max() > 0.2
        pulse.stop()                                   # the server is gone
        player.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not audio_in.lost and time.monotonic() < deadline:
            record(audio_in, 0.2)
        assert audio_in.lost and audio_in.losses == 1
        during = record(audio_in, 1.0)
        assert len(during) > 0 and np.abs(during).max() == 0.0   # the clock goes on, silent
        pulse.start()                                  # back, same socket and sink
        player = pulse.play(wav)
        deadline = time.monotonic() + 20
        while audio_in.lost and time.monotonic() < deadline:
            record(audio_in, 0.2)
        assert not audio_in.lost and audio_in.reconnects >= 1
        after = record(audio_in, 1.5)
        player.kill()
    assert np.abs(after[-SR // 2:]).max() == pytest.approx(0.25, abs=0.02)
