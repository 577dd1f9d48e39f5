"""``--cluster`` mistakes a performer can make, each one line, nothing written: a bad address,
an unreachable head, no cluster to join, Ray not installed."""

from __future__ import annotations

import socket
import sys

import pytest

from offline_material import FLASH_PRESET, write_clicks, write_preset
from phosphene.cli import main


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster_errors")
    return write_clicks(d / "clicks.wav"), write_preset(d / "flash.yaml", FLASH_PRESET)


def _closed_port() -> int:
    with socket.socket() as s:        # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _render(material, tmp_path, cluster):
    audio, preset = material
    return main(["render", str(audio), "--preset", str(preset), "--size", "64x64", "-o",
                 str(tmp_path / "out.mp4"), "--cluster", cluster, "--no-progress"])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("address, message", [
    ("local:0", "--cluster local:0: local:N needs a worker count of 1 or more"),
    ("ray:/host:1", "--cluster 'ray:/host:1': use local, local:N, auto or ray://HOST:PORT"),
])
def test_bad_address_is_refused_before_anything_loads(material, tmp_path, capsys, address,
                                                      message):
    pytest.importorskip("ray")
    assert _render(material, tmp_path, address) == 1
    assert _one_line(capsys) == f"phosphene: error: {message}"
    assert not (tmp_path / "out.mp4").exists()


def test_unreachable_head_is_one_line(material, tmp_path, capsys):
    pytest.importorskip("ray")
    port = _closed_port()
    assert _render(material, tmp_path, f"ray://127.0.0.1:{port}") == 1
    assert _one_line(capsys) == (f"phosphene: error: --cluster ray://127.0.0.1:{port}: cannot "
                                 "reach the Ray head (Connection refused); is `ray start "
                                 "--head` running there?")
    assert not (tmp_path / "out.mp4").exists()


def test_auto_without_a_cluster_is_one_line(material, tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "no-ray-here"))   # no session to find
    bank = tmp_path / "bank"
    assert main(["pregen", "voice", "--text", "hi", "--speaker-wav", str(material[0]),
                 "--language", "en", "--name", "hi", "--bank", str(bank), "--cluster", "auto",
                 "--no-progress"]) == 1
    line = _one_line(capsys)
    assert line.startswith("phosphene: error: --cluster auto: no running Ray cluster found")
    assert not any(bank.glob("*.flac"))


def test_without_ray_cluster_says_how_to_install(material, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)           # as if the extra were missing
    assert _render(material, tmp_path, "local:2") == 1
    assert _one_line(capsys) == ("phosphene: error: --cluster needs Ray: "
                                 "pip install 'phosphene[cluster]'")
