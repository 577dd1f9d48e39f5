"""Audio devices as PortAudio sees them: listing, and picking one by index or name.

PortAudio scans devices once when it starts; a device plugged in (or a sound server started)
later is only seen after ``rescan()``, which restarts PortAudio and so may only run while this
process has no stream open.
"""

from __future__ import annotations

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
