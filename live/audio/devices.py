"""Audio devices as PortAudio sees them: listing, and picking one by index or name.

PortAudio scans devices once when it starts; a device plugged in (or a sound server started)
later is only seen after ``rescan()``, which restarts PortAudio and so may only run while this
process has no stream open.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from dataclasses import dataclass

from phosphene.errors import PhospheneError

_open_streams = 0  # streams of ours currently open (see rescan)


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool = False
    is_default_output: bool = False


def list_devices() -> list[AudioDevice]:
    import sounddevice as sd

    apis = sd.query_hostapis()
    default_in, default_out = _default_indices()
    return [AudioDevice(index=i, name=d["name"], hostapi=apis[d["hostapi"]]["name"],
                        max_input_channels=d["max_input_channels"],
                        max_output_channels=d["max_output_channels"],
                        default_samplerate=d["default_samplerate"],
                        is_default_input=i == default_in, is_default_output=i == default_out)
            for i, d in enumerate(sd.query_devices())]


def _default_indices() -> tuple[int, int]:
    import sounddevice as sd

    try:
        default_in, default_out = sd.default.device
    except Exception:  # noqa: BLE001
        return -1, -1
    return (default_in if default_in is not None else -1,
            default_out if default_out is not None else -1)


def find_device(spec: int | str | None, kind: str) -> AudioDevice:
    """The device for ``spec``: an index, a case-insensitive name substring, or None for the
    system default. ``kind`` is "input" or "output"; the device must have such channels."""
    devices = list_devices()
    channels = (lambda d: d.max_input_channels) if kind == "input" else \
        (lambda d: d.max_output_channels)
    usable = [d for d in devices if channels(d) > 0]
    if not usable:
        raise PhospheneError(f"no audio {kind} devices found (is a sound card or sound "
                             f"server available? `phosphene devices` lists what PortAudio sees)")
    if spec is None or spec == "":
        for d in usable:
            if (d.is_default_input if kind == "input" else d.is_default_output):
                return d
        return usable[0]
    if isinstance(spec, int) or str(spec).strip().isdigit():
        index = int(spec)
        for d in devices:
            if d.index == index:
                if channels(d) == 0:
                    raise PhospheneError(f"audio device {index} ({d.name!r}) has no {kind} "
                                         f"channels")
                return d
        raise PhospheneError(f"no audio device with index {index}; `phosphene devices` "
                             f"lists them")
    wanted = str(spec).lower()
    exact = [d for d in usable if d.name.lower() == wanted]
    matches = exact or [d for d in usable if wanted in d.name.lower()]
    if not matches:
        names = ", ".join(f"{d.index}: {d.name}" for d in usable)
        raise PhospheneError(f"no audio {kind} device matching {spec!r}; available: {names}")
    return matches[0]


def rescan() -> bool:
    """Restart PortAudio so it sees devices (or a sound server) that appeared since it
    started. Returns False (and does nothing) while any of our streams is open."""
    import sounddevice as sd

    if _open_streams > 0:
        return False
    sd._terminate()
    sd._initialize()
    return True


def note_stream_opened() -> None:
    global _open_streams
    _open_streams += 1


def note_stream_closed() -> None:
    global _open_streams
    _open_streams = max(0, _open_streams - 1)


# -- the audio libraries' own messages --------------------------------------------------------------
# ALSA's library and PortAudio print their errors to stderr themselves ("ALSA lib pulse.c:...:
# PulseAudio: Unable to connect", "Expression 'AlsaOpen(...)' failed in
# 'src/hostapi/alsa/pa_linux_alsa.c'"): five or so lines for every attempt to reopen a lost
# device, once a second, where the loss itself was logged once. While the watchdog retries,
# ALSA's error handler is one that says nothing, and what is written to the process's stderr
# (file descriptor 2: PortAudio has no hook) goes through a pipe that keeps every line except
# those two libraries' -- a log line another thread writes meanwhile comes out a moment later.
_ALSA_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                      ctypes.c_int, ctypes.c_char_p)
_LIBRARY_NOISE = (b"ALSA lib ", b"Expression '", b"PaAlsa", b"snd_pcm_")


def _ignore_alsa_message(filename, line, function, err, fmt) -> None:
    pass


_alsa_quiet_handler = _ALSA_HANDLER_TYPE(_ignore_alsa_message)   # kept alive: ALSA holds it


@functools.cache
def _alsa_library():
    try:
        return ctypes.CDLL("libasound.so.2")
    except OSError:                  # not Linux, or no ALSA
        return None


def is_library_noise(line: bytes) -> bool:
    """A line ALSA's library or PortAudio printed by itself."""
    return line.lstrip().startswith(_LIBRARY_NOISE)


@contextlib.contextmanager
def quiet_audio_libraries():
    """ALSA's and PortAudio's own stderr messages left out for the duration (their errors
    still raise as usual; other stderr output is kept)."""
    alsa = _alsa_library()
    if alsa is not None:
        alsa.snd_lib_error_set_handler(_alsa_quiet_handler)
    try:
        with _stderr_filtered():
            yield
    finally:
        if alsa is not None:
            alsa.snd_lib_error_set_handler(None)     # ALSA's default handler again


@contextlib.contextmanager
def _stderr_filtered():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError, AttributeError):    # no real stderr (embedded, Windows GUI)
        yield
        return
    os.set_blocking(read_end, False)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        captured = b""
        try:
            while chunk := os.read(read_end, 65536):
                captured += chunk
        except BlockingIOError:
            pass
        os.close(read_end)
        kept = [line for line in captured.splitlines(keepends=True)
                if not is_library_noise(line)]
        if kept:
            os.write(2, b"".join(kept))
