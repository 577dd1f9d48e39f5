"""``--cluster``: where Ray runs the work of a render or a pregeneration batch.

Ray (the optional ``phosphene[cluster]`` extra) is imported here and in the modules that
submit work, never at start-up. The address forms a performer types:

    local         a Ray runtime on this machine, one worker per CPU core
    local:N       the same with N workers (what the tests use)
    auto          the cluster this machine already belongs to (``ray start`` ran here)
    ray://H:P     a cluster's head through the Ray client port (``ray start --head`` prints it)

``connect`` is a context manager: a runtime it started is shut down on the way out, a joined
cluster is only disconnected from. Every way it can fail is one ``PhospheneError`` line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from phosphene.errors import PhospheneError

log = logging.getLogger(__name__)

INSTALL_HINT = "--cluster needs Ray: pip install 'phosphene[cluster]'"
REACH_TIMEOUT_S = 3.0       # how long an address may take to answer before it is unreachable
_RAY_URL = re.compile(r"^ray://(?P<host>[^:/\s]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class ClusterAddress:
    kind: str                        # "local", "auto" or "client"
    workers: int | None = None       # local: how many (None: one per core)
    host: str | None = None          # client: the head's Ray client address
    port: int | None = None

    def __str__(self) -> str:
        if self.kind == "local":
            return "local" if self.workers is None else f"local:{self.workers}"
        return "auto" if self.kind == "auto" else f"ray://{self.host}:{self.port}"


def parse_address(text: str) -> ClusterAddress:
    """``local``, ``local:N``, ``auto`` or ``ray://HOST:PORT``; anything else is one line."""
    text = text.strip()
    if text == "local":
        return ClusterAddress("local")
    if text.startswith("local:"):
        count = text.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise PhospheneError(f"--cluster {text}: local:N needs a worker count of 1 or more")
        return ClusterAddress("local", workers=int(count))
    if text == "auto":
        return ClusterAddress("auto")
    match = _RAY_URL.match(text)
    if match and 0 < int(match["port"]) < 65536:
        return ClusterAddress("client", host=match["host"], port=int(match["port"]))
    raise PhospheneError(f"--cluster {text!r}: use local, local:N, auto or ray://HOST:PORT")


def import_ray():
    """Ray, or the one line that says how to install it."""
    try:
        import ray  # optional extra: only --cluster needs it
    except ImportError:
        raise PhospheneError(INSTALL_HINT) from None
    return ray


def _check_reachable(host: str, port: int) -> None:
    # The Ray client retries an unreachable head for a long time before it gives up; a plain
    # TCP connect says the same thing at once.
    try:
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PhospheneError(f"--cluster ray://{host}:{port}: cannot reach the Ray head "
                             f"({reason}); is `ray start --head` running there?") from None


def preflight(text: str) -> ClusterAddress:
    """What can be checked before a render or a batch loads anything: the address, Ray
    itself, and that a ``ray://`` head answers."""
    address = parse_address(text)
    import_ray()
    if address.kind == "client":
        _check_reachable(address.host, address.port)
    return address


@dataclass
class Cluster:
    address: ClusterAddress
    gpus: float              # GPUs in the whole cluster
    cpus: float

    def workers(self, use_gpu: bool) -> int:
        """How many one-GPU (or one-CPU) workers the cluster can run at once."""
        return max(1, int(self.gpus if use_gpu else self.cpus))


def wants_gpu(device: str, cluster: Cluster) -> bool:
    """Whether workers should ask Ray for a GPU: ``cuda`` must find one, ``auto`` uses one
    where the cluster has them, ``cpu`` never."""
    if device.startswith("cuda"):
        if cluster.gpus < 1:
            raise PhospheneError(f"--device {device}: the cluster ({cluster.address}) has no "
                                 "GPUs (start its workers with `ray start ... --num-gpus N`, "
                                 "or use --device cpu)")
        return True
    return device == "auto" and cluster.gpus >= 1


def worker_device(device: str, use_gpu: bool) -> str:
    """The device a worker opens: Ray hands a GPU worker its GPU as ``cuda`` (it sets
    CUDA_VISIBLE_DEVICES)."""
    if use_gpu:
        return "cuda"
    return "cpu" if device == "auto" else device


@contextlib.contextmanager
def connect(text: str, *, temp_dir: str | Path | None = None) -> Iterator[Cluster]:
    """Start or join the cluster ``text`` names (see the module doc). ``temp_dir``: where a
    local runtime keeps its sockets and logs (default: Ray's, or $PHOSPHENE_RAY_TMPDIR)."""
    address = parse_address(text)
    ray = import_ray()
    if ray.is_initialized():       # a caller (a test, a notebook) already connected: use it
        resources = ray.cluster_resources()
        yield Cluster(address, resources.get("GPU", 0.0), resources.get("CPU", 0.0))
        return
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                   configure_logging=False)
    if address.kind == "local":
        temp_dir = temp_dir or os.environ.get("PHOSPHENE_RAY_TMPDIR")
        options.update(num_cpus=address.workers or os.cpu_count() or 1)
        if temp_dir:
            options["_temp_dir"] = str(temp_dir)
        target = None
    elif address.kind == "auto":
        target = "auto"
        options.pop("include_dashboard")
    else:
        _check_reachable(address.host, address.port)
        target = str(address)
        options = {"logging_level": logging.WARNING, "configure_logging": False}
    try:
        ray.init(address=target, **options)
    except ConnectionError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PhospheneError(f"--cluster {address}: no running Ray cluster found ({reason}); "
                             "start one with `ray start --head`") from None
    except Exception as exc:  # Ray raises many types for a cluster it cannot join
        if isinstance(exc, PhospheneError):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PhospheneError(f"--cluster {address}: cannot start or join Ray: {reason}") from None
    try:
        resources = ray.cluster_resources()
        cluster = Cluster(address, resources.get("GPU", 0.0), resources.get("CPU", 0.0))
        log.info("Ray cluster %s: %g CPUs, %g GPUs", address, cluster.cpus, cluster.gpus)
        yield cluster
    finally:
        ray.shutdown()
