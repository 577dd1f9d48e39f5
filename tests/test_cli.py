"""The console script is installed, every subcommand has --help, and errors are one line."""

import subprocess
import sys

import pytest

from phosphene.cli import build_parser


def _subcommands(parser):
    for action in parser._subparsers._group_actions:  # argparse keeps them here
        yield from action.choices.items()


def test_phosphene_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "phosphene", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "bench" in out


@pytest.mark.parametrize("name", [name for name, _ in _subcommands(build_parser())])
def test_every_subcommand_has_help(name):
    result = subprocess.run([sys.executable, "-m", "phosphene", name, "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: phosphene" in result.stdout


def test_closed_pipe_is_not_an_error(tmp_path):
    """`phosphene analyze x.wav --features | head -1` ends quietly, like any Unix tool."""
    import numpy as np
    import soundfile as sf

    wav = tmp_path / "tone.wav"
    sf.write(wav, 0.3 * np.sin(np.arange(48000 * 3) * 0.05), 48000)
    proc = subprocess.Popen([sys.executable, "-m", "phosphene", "analyze", str(wav), "--features"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "error" not in stderr.lower()
