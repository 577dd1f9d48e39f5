"""``phosphene devices``: the audio devices, MIDI inputs and monitors phosphene can use."""

from __future__ import annotations

import argparse


def _audio_device_lines() -> list[str]:
    # start-up time; a failing import is this section's error alone
    from phosphene.live.audio.devices import list_devices

    devices = list_devices()
    if not devices:
        return ["(none: PortAudio sees no audio devices — no sound card or sound server)"]
    lines = [f"{'idx':>3}  {'in':>3} {'out':>3}  {'rate':>6}  {'host API':<8}  name"]
    for d in devices:
        marks = "".join(m for m, on in (("<", d.is_default_input), (">", d.is_default_output))
                        if on)
        lines.append(f"{d.index:>3}  {d.max_input_channels:>3} {d.max_output_channels:>3}  "
                     f"{d.default_samplerate:>6.0f}  {d.hostapi:<8}  {d.name}"
                     f"{'  ' + marks if marks else ''}")
    lines.append("(< default input, > default output; pick one with its index or part of its "
                 "name)")
    return lines


def _midi_input_lines() -> list[str]:
    # start-up time; a failing import is this section's error alone
    from phosphene.live.control.midi import list_midi_ports

    lines = []
    for api, label in ((None, "default MIDI system"), ("jack", "JACK")):
        ports = list_midi_ports(api)
        lines += [f"{name}  ({label})" for name in ports]
    if not lines:
        return ["(none: no MIDI inputs, or no MIDI system running)"]
    return lines + ["(pick one with --midi NAME, or --midi all; add --midi-api jack for JACK)"]


def _monitor_lines() -> list[str]:
    # start-up time; a failing import is this section's error alone
    from phosphene.render.monitors import monitor_lines

    return monitor_lines()


# One section per entry, in this order: (title, function returning its lines).
SECTIONS = (
    ("Audio devices", _audio_device_lines),
    ("MIDI inputs", _midi_input_lines),
    ("Monitors", _monitor_lines),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("devices", help="list audio devices (and other I/O ports)",
                              description="List the audio input/output devices PortAudio sees "
                              "(index, name, channels, default sample rate) and the other "
                              "ports phosphene can use.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for i, (title, lines) in enumerate(SECTIONS):
        if i:
            print()
        print(f"{title}:")
        try:
            body = lines()
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            body = [f"(unavailable: {exc})"]
        for line in body:
            print(f"  {line}")
    return 0
