"""A private PulseAudio server with a null sink, for tests of the real audio path.

The server runs in the foreground of a child process with its own runtime/state dirs under a
temporary directory, talks only over its own unix socket (anonymous auth), and is killed at the
end. Works as root (PulseAudio warns but runs in per-user mode) and as a normal user. Clients
(this process through PortAudio's ALSA ``pulse`` plugin, ``paplay``, ``pactl``) find it through
``PULSE_SERVER``; autospawn is off so nothing else starts behind our back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

SINK = "phosphene_test"


class PulseServer:
    def __init__(self, root: Path, rate: int = 48000):
        self.root = Path(root)
        self.rate = rate
        self.socket = self.root / "native"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.root / "pulseaudio.log"

    @property
    def env(self) -> dict[str, str]:
        """Variables that point a client at this server (and nowhere else)."""
        return {"PULSE_SERVER": f"unix:{self.socket}", "PULSE_CLIENTCONFIG":
                str(self.root / "client.conf"), "PULSE_SOURCE": f"{SINK}.monitor",
                "PULSE_SINK": SINK}

    def start(self, timeout_s: float = 15.0) -> "PulseServer":
        if shutil.which("pulseaudio") is None:
            raise RuntimeError("pulseaudio is not installed: run scripts/setup.sh --dev")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "client.conf").write_text("autospawn = no\n")
        env = {**os.environ, **self.env, "HOME": str(self.root),
               "XDG_RUNTIME_DIR": str(self.root), "PULSE_RUNTIME_PATH": str(self.root / "run"),
               "PULSE_STATE_PATH": str(self.root / "state")}
        cmd = ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
               "--disable-shm=yes", "--log-target=stderr", "--realtime=no",
               f"--load=module-null-sink sink_name={SINK} rate={self.rate}",
               f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {self.log_path.read_text()[-2000:]}")
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("pulseaudio did not come up in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def client_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.client_env(), capture_output=True,
                              text=True, timeout=10, check=check)

    def play(self, wav: Path) -> subprocess.Popen:
        """Start playing a file into the null sink; returns the running paplay."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(wav)], env=self.client_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def sink_module(self) -> str | None:
        for line in self.pactl("list", "short", "modules").stdout.splitlines():
            if "module-null-sink" in line and SINK in line:
                return line.split()[0]
        return None

    def unload_sink(self) -> None:
        module = self.sink_module()
        if module is not None:
            self.pactl("unload-module", module)

    def load_sink(self) -> None:
        self.pactl("load-module", "module-null-sink", f"sink_name={SINK}", f"rate={self.rate}")
