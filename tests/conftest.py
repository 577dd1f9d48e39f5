"""Fixtures shared by several test modules."""

import atexit
import os
import shutil
import tempfile

import pytest

from pulse_server import PulseServer
from phosphene.live.audio import devices


@pytest.fixture
def pulse(tmp_path, monkeypatch):
    """A private PulseAudio server with a null sink: the microphone and speakers of the tests.

    PortAudio is rescanned on both sides so it sees the server appear and go.
    """
    server = PulseServer(tmp_path / "pulse", rate=48000).start()
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    devices.rescan()
    yield server
    server.stop()
    for key in server.env:
        os.environ.pop(key, None)
    devices.rescan()


# The live engine compiles its synthesis in the background by default (live_compile.py); the
# suite's many short shows would spend their CPU on that. Tests of the compiled path ask for it.
os.environ.setdefault("PHOSPHENE_COMPILE", "off")

# Nothing a test makes goes into the user's cache folder (models/cache.py): one folder for the
# session, shared by the tests (compiled synthesis packages built once serve the tests after);
# tests of a cache itself point PHOSPHENE_CACHE_DIR at a folder of their own.
if "PHOSPHENE_CACHE_DIR" not in os.environ:
    _session_cache = tempfile.mkdtemp(prefix="phosphene-test-cache-")
    os.environ["PHOSPHENE_CACHE_DIR"] = _session_cache
    atexit.register(shutil.rmtree, _session_cache, ignore_errors=True)
