"""The command layer: exit codes (0 done, 1 failed while running, 2 wrong command line), the
shared argument types and the `phosphene devices` sections."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from phosphene.cli import main
from phosphene.commands import _args, devices


def phosphene(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "phosphene", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_devices_lists_every_section_and_succeeds():
    result = phosphene("devices")
    assert result.returncode == 0, result.stderr
    titles = [line[:-1] for line in result.stdout.splitlines() if line and line[0] != " "]
    assert titles == [title for title, _ in devices.SECTIONS]
    assert titles == ["Audio devices", "MIDI inputs", "Monitors"]


def test_a_broken_section_does_not_hide_the_others(monkeypatch, capsys):
    def broken() -> list[str]:
        raise RuntimeError("driver on fire")

    monkeypatch.setattr(devices, "SECTIONS", (("Broken", broken), ("Fine", lambda: ["ok"])))
    assert main(["devices"]) == 0
    assert capsys.readouterr().out == "Broken:\n  (unavailable: driver on fire)\n\nFine:\n  ok\n"


@pytest.mark.parametrize("argv", [[], ["bench"], ["models"], ["pregen"], ["bank"]])
def test_a_command_without_its_subcommand_prints_usage_and_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: phosphene")


def test_bench_lists_its_subcommands():
    out = phosphene("bench", "--help").stdout
    for name in ("analyzer", "latency", "render-offline", "render", "generator"):
        assert f"    {name}" in out


@pytest.mark.parametrize("argv", [
    ["live", "--headless", "--size", "10x10"],
    ["bench", "latency", "--size", "640x"],
    ["render", "song.wav", "-o", "x.mp4", "--size", "9000x100"],
    ["bench", "render-offline", "--size", "1920"],
    ["effects", "--size", "0x10"],
    ["bench", "render", "--sizes", "64x36,big"],
])
def test_a_bad_size_is_a_usage_error(argv):
    result = phosphene(*argv)
    assert result.returncode == 2
    assert "argument --size" in result.stderr and "size must be WIDTHxHEIGHT" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_combination_of_options_is_one_line_and_exits_2():
    result = phosphene("render", "--replay", "set", "song.wav", "-o", "x.mp4")
    assert result.returncode == 2
    assert result.stderr == "phosphene: error: give either AUDIO or --replay DIR, not both\n"


def test_sizes_accept_what_every_command_accepted():
    assert _args.canvas_size("1920x1080") == (1920, 1080)
    assert _args.canvas_size(" 640 X 480 ") == (640, 480)
    assert _args.canvas_size("16x8192") == (16, 8192)
    assert _args.any_size("1x1") == (1, 1)
    assert _args.any_size("10000x20") == (10000, 20)
    assert _args.any_sizes("64x36, 32x18") == [(64, 36), (32, 18)]
    for bad in ("15x100", "100x8193", "100", "axb", "1x2x3", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT between 16 and 8192"):
            _args.canvas_size(bad)
    with pytest.raises(_args.UsageError, match="positive sides"):
        _args.any_size("0x5")


def test_numbers_and_ports():
    assert _args.port("0") == 0 and _args.port("65535") == 65535
    with pytest.raises(_args.UsageError, match="0..65535"):
        _args.port("65536")
    with pytest.raises(_args.UsageError, match="not a port"):
        _args.port("osc")
    assert _args.positive_float("0.5") == 0.5
    with pytest.raises(_args.UsageError, match="> 0"):
        _args.positive_float("0")
    assert _args.positive_int_list("1,8") == [1, 8]
    with pytest.raises(_args.UsageError):
        _args.positive_int_list("1,-8")
    assert _args.precisions("fp32,fp16") == ["fp32", "fp16"]
    with pytest.raises(_args.UsageError):
        _args.precisions("fp8")
    assert _args.tag_list(" choir, ,low ") == ["choir", "low"]


def test_usage_error_is_a_phosphene_error_and_an_argparse_type_error():
    from phosphene.errors import PhospheneError

    assert issubclass(_args.UsageError, PhospheneError)
    assert issubclass(_args.UsageError, argparse.ArgumentTypeError)


def test_help_imports_no_heavy_module():
    code = ("import sys; from phosphene.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'moderngl', 'sounddevice', 'glfw', 'mido') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_live_compile_flag_reaches_the_engine_options():
    from phosphene.cli import build_parser
    from phosphene.commands.live import options_from_args

    parser = build_parser()
    assert options_from_args(parser.parse_args(["live", "--compile"])).compile is True
    assert options_from_args(parser.parse_args(["live", "--no-compile"])).compile is False
    assert options_from_args(parser.parse_args(["live"])).compile is None   # the preset's
