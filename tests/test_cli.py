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
