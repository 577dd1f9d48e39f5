"""URL sources download once over real HTTP (loopback) into the cache; `phosphene models convert`
writes a safetensors file that `phosphene models info` and the loader read back."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading

import pytest
import torch

from loading_formats import sample_inputs, tiny_generator, write_nvlabs_pickle
from phosphene.errors import PhospheneError
from phosphene.models.loading import load_generator, save_generator, url


class _Server:
    """A loopback HTTP server serving ``files`` (name -> bytes) and counting requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404, "no such checkpoint")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOSPHENE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "checkpoints"


def test_url_is_downloaded_once_then_served_from_the_cache(tmp_path, cache):
    G = tiny_generator(seed=21)
    pkl = tmp_path / "net.pkl"
    write_nvlabs_pickle(pkl, G, None, tmp_path / "marker")
    with _Server({"pretrained/net.pkl": pkl.read_bytes()}) as server:
        source = server.url("pretrained/net.pkl")
        first = load_generator(source)
        second = load_generator(source)
        assert server.requests == ["/pretrained/net.pkl"]  # the second load used the cache
    cached = list(cache.iterdir())
    assert len(cached) == 1 and cached[0].name.endswith("-net.pkl")
    assert cached[0].read_bytes() == pkl.read_bytes()
    z, c = sample_inputs(G)
    for loaded in (first, second):
        torch.testing.assert_close(loaded(z, c), G(z, c), rtol=0, atol=1e-6)


def test_failed_download_is_reported_and_leaves_no_file(cache):
    with _Server({}) as server:
        with pytest.raises(PhospheneError, match="HTTP 404"):
            load_generator(server.url("missing.pkl"))
    assert not cache.exists() or list(cache.iterdir()) == []


def test_zoo_names_map_to_urls():
    assert url.zoo_url("ffhq").startswith("https://")
    assert url.zoo_url("zoo:ffhq") == url.zoo_url("ffhq")
    assert url.zoo_url("not-a-model") is None
    assert all(u.endswith(".pkl") for u in url.ZOO.values())


def _phosphene(*args, env_cache=None):
    import os

    env = dict(os.environ)
    if env_cache:
        env["PHOSPHENE_CACHE_DIR"] = str(env_cache)
    return subprocess.run([sys.executable, "-m", "phosphene", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_cli_convert_then_info_and_load(tmp_path):
    G = tiny_generator(seed=22, c_dim=2)
    pkl = tmp_path / "snapshot.pkl"
    write_nvlabs_pickle(pkl, G, tiny_generator(seed=23, c_dim=2), tmp_path / "marker")
    out = tmp_path / "converted.safetensors"

    result = _phosphene("models", "convert", str(pkl), str(out))
    assert result.returncode == 0, result.stderr
    assert "nvlabs-pickle -> phosphene-safetensors" in result.stdout
    converted = load_generator(out)
    z, c = sample_inputs(G)
    torch.testing.assert_close(converted(z, c), G(z, c), rtol=0, atol=1e-6)

    info = _phosphene("models", "info", str(out))
    assert info.returncode == 0, info.stderr
    assert "phosphene-safetensors" in info.stdout
    assert "16x16" in info.stdout and "c_dim=2" in info.stdout
    assert "converted from snapshot.pkl (nvlabs-pickle)" in info.stdout

    again = _phosphene("models", "convert", str(pkl), str(out))
    assert again.returncode == 1 and "--force" in again.stderr
    assert again.stderr.count("\n") == 1  # one line, no traceback


def test_cli_convert_refuses_hostile_input_in_one_line(tmp_path):
    import os
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Payload()))
    result = _phosphene("models", "convert", str(evil), str(tmp_path / "out.safetensors"))
    assert result.returncode == 1
    assert "posix.system" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_save_generator_is_atomic_and_leaves_no_temp_files(tmp_path):
    G = tiny_generator(seed=24)
    path = save_generator(G, tmp_path / "sub" / "g.safetensors")
    assert [p.name for p in path.parent.iterdir()] == ["g.safetensors"]
