"""The CPU's compiled live synthesis, built ahead of time in a child process (AOTInductor).

Why not ``torch.compile`` in the show's process: on a 2-core machine the compile (dynamo's
tracing and inductor's code generation are Python, a minute or more of it) shares the show's
interpreter lock. At a low OS priority it held that lock while the scheduler preempted it, and
the audio and analysis threads waited behind it: input ages of seconds and dropped audio
(docs/benchmarks.md, "The compiled live synthesis on the CPU"). Here a child process does all
of it -- ``torch.export``, then AOTInductor's C++ -- at a low priority of its own, and writes a
package (a ``.pt2`` holding a shared library; the weights stay inputs, see
:class:`ExportedSynthesis`). The show's process only loads that library, in milliseconds, and
calls it like the eager network -- through its C interface, so that the interpreter lock is
free while a frame renders (``aot_runner.py``). A package is cached under
``<cache>/compiled/`` (``models/cache.py``), named by everything it depends on
(:func:`package_key`), so the next show with the same model starts compiled.

The child: ``python -m phosphene.models.stylegan2.aot JOB PACKAGE`` where JOB is a
``torch.save``d dict written by :func:`build_package` (the synthesis module, the input shapes,
the torch thread count, a nice value). It ends itself if its parent goes away.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from phosphene.models.cache import cache_root
from phosphene.models.stylegan2 import ops
from phosphene.models.stylegan2.aot_runner import LibraryRunner

log = logging.getLogger(__name__)

PACKAGE_VERSION = 1           # bump when what a package holds changes
# Inductor's settings for the CPU, measured on builtin:abstract 256x256 at one torch thread
# (docs/benchmarks.md, "The compiled live synthesis on the CPU"): layout_optimization off,
# because otherwise inductor runs the convolutions channels-last, and a net with 4-8 channels
# at its top resolutions then vectorises every bias/lrelu kernel over those few channels
# (half-empty vectors, 65536 iterations per 256x256 map) instead of along a row. The wrapper
# that calls the external (modulated) convolutions is C++ in a package (in-process it had to
# be asked for: cpp_wrapper, worth ~1 ms a frame); the up-sampling filters are no external
# calls at all (ops.fir_as_stencil).
INDUCTOR_CONFIGS = {"layout_optimization": False}
KEEP_PACKAGES = 8             # the cache keeps the most recently used packages, drops older


class ExportedSynthesis(nn.Module):
    """``synthesis(ws, noise=maps)`` with the live path's fixed arguments and the network's
    weights as *inputs*: what is exported. A package of it holds code and no weights, so the
    show's own tensors are handed in on every call (:class:`PackageCall`) and a change to them
    -- a model mix written into the parameters mid-show, another checkpoint of the same
    architecture -- is rendered as it is, with no rebuild."""

    def __init__(self, synthesis: nn.Module, noise_mode: str, force_fp32: bool):
        super().__init__()
        self.synthesis = synthesis
        self.noise_mode = noise_mode
        self.force_fp32 = force_fp32
        self.names = weight_names(synthesis)

    def forward(self, ws: torch.Tensor, weights: list[torch.Tensor],
                noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        with ops.fir_as_stencil():      # FIR filters that inductor can fuse (ops.py)
            return torch.func.functional_call(
                self.synthesis, dict(zip(self.names, weights)), (ws,),
                {"noise_mode": self.noise_mode, "force_fp32": self.force_fp32, "noise": noise})


def weight_names(synthesis: nn.Module) -> list[str]:
    """Every parameter and buffer of ``synthesis``, in the order a package takes them."""
    return [name for name, _ in synthesis.named_parameters()] + \
        [name for name, _ in synthesis.named_buffers()]


class PackageCall:
    """A loaded package called like ``LiveSynthesis._eager``: ``(ws, noise_mode, noise)``.
    It reads the network's weights at each call, so it renders what the module holds now."""

    def __init__(self, runner: LibraryRunner, synthesis: nn.Module) -> None:
        self.runner = runner
        self.synthesis = synthesis
        # where each weight lives, in package order: its module's own parameter or buffer
        # table. Read per frame as plain dict lookups (nn.Module.__getattr__ and a detach per
        # weight cost ~0.4 ms a frame at builtin:abstract's 175 tensors); the table, not the
        # tensor, so a weight replaced by assignment is followed too. No detach: the package
        # does not record autograd, and its output does not require grad.
        self._where = []
        for name in weight_names(synthesis):
            owner_name, _, key = name.rpartition(".")
            owner = synthesis.get_submodule(owner_name)
            self._where.append((owner._parameters if key in owner._parameters
                                else owner._buffers, key))

    def weights(self) -> list[torch.Tensor]:
        return [table[key] for table, key in self._where]

    def __call__(self, ws: torch.Tensor, noise_mode: str | None = None,
                 noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        # the flat inputs in the exported order: ws, weights, noise maps
        return self.runner.run([ws, *self.weights(), *(noise or [])])[0]


def package_dir() -> Path:
    return cache_root() / "compiled"


NOT_TRACED = ("fast.py", "aot_runner.py")     # modules of this package no package contains


def _source_digest() -> str:
    """The network's code (this package's modules): a change to it is another network."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name in NOT_TRACED:
            continue
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def architecture(synthesis: nn.Module) -> list:
    """What the traced code depends on besides the code: each module's class and plain
    settings (resolutions, channel counts, clamps, fp16 flags...) and each weight's name,
    shape and dtype. Not the weights' values: a package takes those as inputs."""
    described = []
    for name, module in synthesis.named_modules():
        settings = sorted((key, repr(value)) for key, value in vars(module).items()
                          if not key.startswith("_")
                          and isinstance(value, (bool, int, float, str, tuple, type(None))))
        described.append([name, type(module).__qualname__, settings])
    for name, tensor in list(synthesis.named_parameters()) + list(synthesis.named_buffers()):
        described.append([name, list(tensor.shape), str(tensor.dtype)])
    return described


def package_key(synthesis: nn.Module, ws_shape: tuple, noise_mode: str,
                noise_shapes: list[tuple] | None, force_fp32: bool, threads: int) -> str:
    """A hash of everything a package depends on: the architecture, the code, the input
    shapes, the noise mode, fp32 or not, the torch thread count the kernels are built for, the
    torch version and the CPU's instruction set (the library is built for it)."""
    return hashlib.sha256(json.dumps({
        "version": PACKAGE_VERSION, "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(), "configs": INDUCTOR_CONFIGS,
        "architecture": architecture(synthesis), "ws": list(ws_shape), "noise_mode": noise_mode,
        "noise": None if noise_shapes is None else [list(s) for s in noise_shapes],
        "force_fp32": force_fp32, "threads": threads, "code": _source_digest(),
    }, sort_keys=True).encode()).hexdigest()


def package_path(key: str) -> Path:
    return package_dir() / f"synthesis-{key[:32]}.pt2"


# -- the parent's side -----------------------------------------------------------------------
_children: set[subprocess.Popen] = set()
_stopped: set[int] = set()          # pids of builds stop_builds() ended
_children_lock = threading.Lock()
PROGRESS_EVERY_S = 15.0
STEP = "step: "                     # the child's progress lines (among torch's own warnings)


def stop_builds() -> int:
    """Ends every build still running (a show that stops does not leave a compiler behind);
    how many were running."""
    with _children_lock:
        running = [p for p in _children if p.poll() is None]
        _stopped.update(p.pid for p in running)
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
    return len(running)


class BuildFailed(RuntimeError):
    """The child process did not produce a package; the message has the end of its log."""


class BuildStopped(BuildFailed):
    """:func:`stop_builds` ended the build (its show ended): not a failure of the build."""


def _wait(process: subprocess.Popen, log_path: Path, timeout_s: float | None,
          started: float) -> int | str:
    """The child's exit status (or why it was ended), saying every ``PROGRESS_EVERY_S`` that
    it is still at work and what it last wrote: a first compile takes minutes."""
    while True:
        try:
            return process.wait(PROGRESS_EVERY_S)
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            if timeout_s is not None and elapsed > timeout_s:
                process.kill()
                process.wait()
                return f"timed out after {timeout_s:.0f} s"
            steps = [line[len(STEP):] for line in
                     log_path.read_text(errors="replace").splitlines() if line.startswith(STEP)]
            log.info("compiling the synthesis in a child process: %.0f s so far%s", elapsed,
                     f" ({steps[-1]})" if steps else "")


def build_package(synthesis: nn.Module, ws_shape: tuple, noise_mode: str,
                  noise_shapes: list[tuple] | None, force_fp32: bool, threads: int,
                  path: Path, *, nice: int = 0, timeout_s: float | None = None) -> Path:
    """Export and compile ``synthesis`` into the package ``path`` in a child process (at
    ``nice``), and wait for it. Raises :class:`BuildFailed` with the child's last log lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    call = ExportedSynthesis(synthesis, noise_mode, force_fp32)     # on the CPU: compile_plan
    with tempfile.TemporaryDirectory(prefix="build-", dir=path.parent) as work:
        job, log_path = Path(work) / "job.pt", Path(work) / "build.log"
        torch.save({"call": call, "ws": tuple(ws_shape), "noise": noise_shapes,
                    "threads": threads, "nice": nice}, job)
        command = [sys.executable, "-m", "phosphene.models.stylegan2.aot", str(job), str(path),
                   "--parent", str(os.getpid())]
        started = time.monotonic()
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
            with _children_lock:
                _children.add(process)
            try:
                code = _wait(process, log_path, timeout_s, started)
            finally:
                with _children_lock:
                    _children.discard(process)
                    stopped = process.pid in _stopped
                    _stopped.discard(process.pid)
        if code != 0 or not path.exists():
            if stopped:
                raise BuildStopped("the compile was stopped (the show ended)")
            lines = [line for line in log_path.read_text(errors="replace").splitlines()
                     if line.strip()]
            why = f"exit status {code}" if isinstance(code, int) else code
            if isinstance(code, int) and code < 0:
                why = f"stopped by signal {-code}"
            # the whole end of the log for whoever debugs it; its last line (the error) for
            # the report
            log.warning("the compile process failed (%s); the end of its output:\n%s", why,
                        "\n".join(lines[-20:]))
            raise BuildFailed(f"the compile process failed ({why}): "
                              + (lines[-1].strip() if lines else "no output"))
    log.info("compiled the synthesis into %s in %.0f s", path, time.monotonic() - started)
    return path


def load_package(path: Path) -> LibraryRunner:
    """The compiled synthesis in ``path``, called without the interpreter lock
    (``aot_runner.py`` says why not through torch's own loader)."""
    runner = LibraryRunner(path)
    os.utime(path)          # most recently used: kept when the cache is pruned
    return runner


def prune(keep: int = KEEP_PACKAGES) -> list[Path]:
    """Deletes all but the ``keep`` most recently used packages, and the folders of builds
    whose show was killed outright (a day old); the packages deleted."""
    for stale in package_dir().glob("build-*"):
        if time.time() - stale.stat().st_mtime > 86400:
            shutil.rmtree(stale, ignore_errors=True)
    packages = sorted(package_dir().glob("synthesis-*.pt2"), key=lambda p: p.stat().st_mtime,
                      reverse=True)
    for old in packages[keep:]:
        old.unlink(missing_ok=True)
    return packages[keep:]


def compiled_synthesis(synthesis: nn.Module, ws_shape: tuple, noise_mode: str,
                       noise_shapes: list[tuple] | None, force_fp32: bool, *, nice: int = 0,
                       use_cache: bool = True) -> tuple[PackageCall, str]:
    """The package for these inputs, from the cache or built now: (a :class:`PackageCall`
    on ``synthesis``, how it came)."""
    threads = torch.get_num_threads()
    key = package_key(synthesis, ws_shape, noise_mode, noise_shapes, force_fp32, threads)
    path = package_path(key)
    if use_cache and path.exists():
        try:
            return PackageCall(load_package(path), synthesis), f"from the cache: {path}"
        except Exception as exc:  # noqa: BLE001 - a damaged package: build it again
            log.warning("the cached package %s does not load (%s); building it again", path, exc)
            path.unlink(missing_ok=True)
    log.info("no compiled synthesis for this model, machine and thread count in the cache yet: "
             "building %s in a child process (`phosphene live --prepare` does it before a "
             "show)", path)
    started = time.monotonic()
    build_package(synthesis, ws_shape, noise_mode, noise_shapes, force_fp32, threads, path,
                  nice=nice)
    prune()
    return PackageCall(load_package(path), synthesis), \
        f"built in {time.monotonic() - started:.0f} s: {path}"


# -- the child's side ------------------------------------------------------------------------
def _end_with_parent(parent: int) -> None:
    """A build whose show is gone (killed, crashed) stops rather than compile for no one."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _set_nice(target: int) -> None:
    """This process at nice ``target`` (the compiler processes it starts inherit it). Set, not
    added: a child started from the show's low-priority compile thread already has that
    thread's nice value, and adding would take it to the bottom."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) < target:
            os.setpriority(os.PRIO_PROCESS, 0, target)
    except (AttributeError, OSError):
        pass         # not on this platform: the build runs at the show's priority


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phosphene.models.stylegan2.aot",
                                     description="Build one compiled synthesis package.")
    parser.add_argument("job", type=Path)
    parser.add_argument("package", type=Path)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    if args.parent is not None:
        _end_with_parent(args.parent)
    job: dict[str, Any] = torch.load(args.job, weights_only=False)   # our own parent wrote it
    _set_nice(job["nice"])
    torch.set_num_threads(job["threads"])     # the kernels are built for this many threads
    from torch._inductor import config as inductor_config

    if (os.cpu_count() or 1) <= 4:
        # inductor's pool of compile processes would take the cores a show needs
        inductor_config.compile_threads = 1
    call: ExportedSynthesis = job["call"].eval()
    parameters = dict(call.synthesis.named_parameters())
    weights = [call.synthesis.get_parameter(name) if name in parameters
               else call.synthesis.get_buffer(name) for name in call.names]
    ws = torch.zeros(job["ws"])
    args_in = (ws, weights) if job["noise"] is None else \
        (ws, weights, [torch.zeros(s) for s in job["noise"]])
    started = time.monotonic()
    print(f"{STEP}tracing the synthesis (torch.export)", flush=True)
    with torch.no_grad():
        program = torch.export.export(call, args_in, strict=False)
    print(f"{STEP}traced in {time.monotonic() - started:.0f} s; generating and compiling its "
          "C++ (AOTInductor)", flush=True)
    # written in the build's own folder (two shows building the same package do not write
    # one file), then renamed into place: a build stopped half way leaves no package
    partial = args.job.parent / "package.pt2"
    torch._inductor.aoti_compile_and_package(program, package_path=str(partial),
                                             inductor_configs=dict(INDUCTOR_CONFIGS))
    os.replace(partial, args.package)
    print(f"{STEP}compiled in {time.monotonic() - started:.0f} s: {args.package}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
