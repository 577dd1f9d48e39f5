"""``phosphene pregen batch JOBS.yaml``: many music and voice jobs, on this machine or on the
workers of a Ray cluster, into the one bank.

The job file (validated whole before anything runs; a typo is one line naming the job and key)::

    defaults:                 # merged into every job of its kind (optional)
      music: {model: models/jukebox-1b, levels: all, seconds: 30}
      voice: {model: models/your_tts, speaker_wav: [me.wav]}
    jobs:
      - {kind: music, name: beatles, artist: The Beatles, genre: Rock,
         lyrics_file: a.txt, seed: [1, 2, 3]}          # a list of seeds: beatles-s1 .. -s3
      - {kind: voice, name: hello-fr, text: "Bonjour.", language: fr-fr}

Relative paths are read from the job file's folder. Lyrics, texts and the reference
recordings travel with each job; model folders must exist at the same path on every worker.

Where the work happens (``run_batch``): each worker is a long-lived process that keeps every
model it loaded (one load per worker, not per job). Workers only compute audio; the driver
writes each clip into the bank once, with the bank's atomic writes, as its job finishes. A
worker lost mid-job is restarted and the job runs again; a Jukebox job resumes from the last
window checkpointed in ``BANK/.work/NAME`` (the bank folder must be on storage the workers
see for that), so a lost worker costs at most one window. A batch run again after an
interruption skips the clips its earlier run added.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from phosphene.errors import PhospheneError
from phosphene.models.bank.names import validate_name

log = logging.getLogger(__name__)

RETRIES = 3           # restarts of a lost worker, and retries of its job


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    seed: int | list[int] = 0
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        try:
            return validate_name(value)
        except PhospheneError as exc:
            raise ValueError(str(exc)) from None

    def seeds(self) -> list[int]:
        return self.seed if isinstance(self.seed, list) else [self.seed]


class MusicJob(_Job):
    kind: Literal["music"]
    model: str
    seconds: float = Field(gt=0)
    backend: Literal["jukebox", "musicgen"] = "jukebox"
    artist: str | None = None
    genre: str | None = None
    lyrics: str = ""
    lyrics_file: Path | None = None
    prompt: str | None = None
    levels: Literal["top", "all"] = "all"
    temperature: float = 0.98
    guidance: float = 3.0


class VoiceJob(_Job):
    kind: Literal["voice"]
    model: str = "your_tts"
    text: str
    speaker_wav: list[Path] = Field(min_length=1)
    language: Literal["en", "fr-fr", "pt-br"]
    gap: float = Field(0.3, ge=0)

    @field_validator("speaker_wav", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Path)) else value


Job = Annotated[Union[MusicJob, VoiceJob], Field(discriminator="kind")]
_JOB = TypeAdapter(Job)


@dataclass
class Task:
    """One unit of work: one job at one seed, making one clip (travels to a worker)."""

    name: str
    kind: str
    params: dict                       # the job's fields, the seed one number
    tags: list[str]
    files: dict[str, bytes] = field(default_factory=dict)   # reference recordings, by name

    def fingerprint(self) -> str:
        """What the clip was made from: a rerun of the batch recognises its own clips."""
        blob = json.dumps({"kind": self.kind, "params": self.params,
                           "files": {k: hashlib.sha256(v).hexdigest()
                                     for k, v in sorted(self.files.items())}},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- the job file ---------------------------------------------------------------------------
def _where(error: dict) -> str:
    return ".".join(str(p) for p in error["loc"] if p not in ("music", "voice")) or "job"


def load_jobs(path: str | Path) -> list[Task]:
    """The tasks of a job file, checked whole (one line naming the job and key otherwise)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PhospheneError(f"cannot read the job file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise PhospheneError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    return load_job_data(data, path.parent, str(path))


def load_job_data(data: Any, base: Path, path: str) -> list[Task]:
    """The tasks of a parsed job file (``base``: its folder; ``path``: its name in messages)."""
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise PhospheneError(f"{path}: expected a mapping with a non-empty 'jobs:' list")
    unknown = set(data) - {"jobs", "defaults"}
    if unknown:
        raise PhospheneError(f"{path}: unknown top-level key {sorted(unknown)[0]!r} "
                             "(expected jobs, defaults)")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - {"music", "voice"}:
        raise PhospheneError(f"{path}: defaults: expected 'music:' and/or 'voice:' mappings")
    tasks: list[Task] = []
    for i, raw in enumerate(data["jobs"]):
        if not isinstance(raw, dict):
            raise PhospheneError(f"{path}: jobs[{i}]: expected a mapping")
        label = f"jobs[{i}]" + (f" ({raw['name']})" if isinstance(raw.get("name"), str) else "")
        merged = {**(defaults.get(raw.get("kind")) or {}), **raw}
        try:
            job = _JOB.validate_python(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PhospheneError(f"{path}: {label}: {_where(first)}: "
                                 f"{first['msg']}".replace("\n", " ")) from None
        tasks.extend(_tasks(job, base, f"{path}: {label}"))
    names = [t.name for t in tasks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PhospheneError(f"{path}: clip name {twice[0]!r} is made by more than one job")
    return tasks


def _read(base: Path, file: Path, what: str) -> bytes:
    full = file if file.is_absolute() else base / file
    try:
        return full.read_bytes()
    except OSError as exc:
        raise PhospheneError(f"{what}: cannot read {full}: {exc.strerror or exc}") from None


def _local_model(base: Path, model: str) -> str:
    # a relative model folder is the job file's; names (hub, coqui) are left as they are
    candidate = base / model
    if not Path(model).is_absolute() and candidate.is_dir():
        return str(candidate.resolve())
    return model


def _tasks(job: MusicJob | VoiceJob, base: Path, what: str) -> list[Task]:
    params = job.model_dump(exclude={"name", "seed", "tags", "kind"})
    params["model"] = _local_model(base, job.model)
    files: dict[str, bytes] = {}
    if isinstance(job, MusicJob):
        if job.lyrics_file is not None:
            try:
                params["lyrics"] = _read(base, job.lyrics_file, what).decode("utf-8")
            except UnicodeDecodeError:
                raise PhospheneError(f"{what}: lyrics_file is not UTF-8 text") from None
        params.pop("lyrics_file")
        if job.backend == "jukebox" and not (job.artist and job.genre):
            raise PhospheneError(f"{what}: a Jukebox job needs artist and genre")
        if job.backend == "musicgen" and not job.prompt:
            raise PhospheneError(f"{what}: a MusicGen job needs a prompt")
    else:
        for i, wav in enumerate(job.speaker_wav):
            files[f"{i}{wav.suffix or '.wav'}"] = _read(base, wav, what)
        params.pop("speaker_wav")
    seeds = job.seeds()
    tasks = []
    for seed in seeds:
        name = job.name if len(seeds) == 1 else validate_name(f"{job.name}-s{seed}")
        tasks.append(Task(name, job.kind, dict(params, seed=seed), list(job.tags), files))
    return tasks


# -- the work, wherever it runs -------------------------------------------------------------
class PregenWorker:
    """Turns tasks into audio, keeping every model it loads. Runs in the driver's process
    (no cluster) or as a Ray actor on a worker (``run_batch`` makes it one)."""

    def __init__(self, device: str, work_root: str):
        self.device = device
        self.work_root = Path(work_root)
        self.models: dict = {}

    def pid(self) -> int:
        return os.getpid()

    def run(self, task: Task) -> dict:
        """{"audio", "rate", "source"} for ``task`` (the driver writes the clip)."""
        if task.kind == "music":
            audio, rate, source = self._music(task)
        else:
            audio, rate, source = self._voice(task)
        return {"audio": audio, "rate": rate, "source": dict(source, batch_job=task.fingerprint())}

    def _music(self, task: Task):
        from phosphene.models.pregen import jukebox_sampling as js  # torch, on the worker
        from phosphene.models.pregen.music import MusicRequest, generate_audio

        p = task.params
        work_dir = self.work_root / task.name
        checkpoint = js.TokenCheckpoint(work_dir)
        resumed_from = checkpoint.load()[1] if checkpoint.exists() else 0
        request = MusicRequest(
            backend=p["backend"], model=p["model"], seconds=p["seconds"], artist=p["artist"],
            genre=p["genre"], lyrics=p["lyrics"], prompt=p["prompt"], levels=p["levels"],
            seed=p["seed"], temperature=p["temperature"], guidance=p["guidance"],
            device=self.device, work_dir=work_dir, resume=True, progress=False)
        audio, rate, source = generate_audio(request, work_dir, models=self.models)
        if resumed_from:
            log.info("%s: resumed from window %d", task.name, resumed_from)
        return audio[0], rate, dict(source, resumed_from_window=resumed_from)

    def _voice(self, task: Task):
        from phosphene.models.pregen.voice import VoiceRequest, synthesize  # torch, coqui-tts

        p = task.params
        with tempfile.TemporaryDirectory(prefix="phosphene-batch-") as tmp:
            wavs = []
            for name, data in sorted(task.files.items()):
                wavs.append(Path(tmp) / name)
                wavs[-1].write_bytes(data)
            request = VoiceRequest(text=p["text"], speaker_wavs=wavs, language=p["language"],
                                   model=p["model"], seed=p["seed"], gap_s=p["gap"],
                                   device=self.device)
            return synthesize(request, progress=False, models=self.models)


# -- the driver -----------------------------------------------------------------------------
@dataclass
class BatchReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)      # already in the bank from a rerun
    failed: dict[str, str] = field(default_factory=dict)  # name -> one-line reason


Event = Callable[[str, str, dict], None]      # (what, task name, details)


def pending_tasks(tasks: list[Task], bank, report: BatchReport) -> list[Task]:
    """The tasks still to run: a clip of the same name made by the same job is done; one made
    by anything else is a clash, refused before any work starts."""
    todo = []
    for task in tasks:
        if task.name not in bank:
            todo.append(task)
            continue
        if bank.get(task.name).source.get("batch_job") == task.fingerprint():
            report.skipped.append(task.name)
            continue
        raise PhospheneError(f"the bank already has a clip named {task.name!r} that this job "
                             "did not make (remove it, or rename the job)")
    return todo


class _Progress:
    """Jobs done/running/failed and the time left, on one tqdm line."""

    def __init__(self, total: int, workers: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="job", desc="pregen batch", disable=not enabled)
        self.workers, self.started = max(1, workers), time.monotonic()
        self.durations: list[float] = []
        self.running = self.failed = 0

    def update(self, finished: bool = False, seconds: float | None = None) -> None:
        if seconds is not None:
            self.durations.append(seconds)
        if finished:
            self.bar.update(1)
        left = self.bar.total - self.bar.n
        eta = "?"
        if self.durations:
            mean = sum(self.durations) / len(self.durations)
            eta = f"{mean * left / self.workers / 60:.1f} min"
        self.bar.set_postfix_str(f"running {self.running}, failed {self.failed}, left ~{eta}")

    def close(self) -> None:
        self.bar.close()


def run_batch(tasks: list[Task], bank, *, device: str = "auto", cluster: str | None = None,
              progress: bool = True, on_event: Event | None = None,
              temp_dir: str | Path | None = None) -> BatchReport:
    """Run ``tasks`` and add each clip to ``bank`` as it is done. ``cluster``: a Ray address
    (``phosphene.cluster``); None runs them here, one after the other. ``on_event(what, name,
    details)`` hears "started" (details: the worker's pid), "done" and "failed"."""
    report = BatchReport()
    todo = pending_tasks(tasks, bank, report)
    work_root = str(bank.path / ".work")
    on_event = on_event or (lambda *_: None)
    if not todo:
        return report
    if cluster is None:
        worker = PregenWorker(device, work_root)
        bar = _Progress(len(todo), 1, progress)
        try:
            for task in todo:
                bar.running = 1
                bar.update()
                on_event("started", task.name, {"pid": os.getpid()})
                t0 = time.monotonic()
                try:
                    result = worker.run(task)
                except PhospheneError as exc:
                    _failed(report, bar, on_event, task, str(exc))
                    continue
                _store(bank, task, result, report, on_event)
                bar.running = 0
                bar.update(finished=True, seconds=time.monotonic() - t0)
        finally:
            bar.close()
        return report
    _run_on_cluster(todo, bank, device, cluster, work_root, report, progress, on_event, temp_dir)
    return report


def _store(bank, task: Task, result: dict, report: BatchReport, on_event: Event) -> None:
    bank.add(task.name, result["audio"], result["rate"], source=result["source"],
             tags=task.tags)
    report.done.append(task.name)
    on_event("done", task.name, {})


def _failed(report: BatchReport, bar: _Progress, on_event: Event, task: Task, why: str) -> None:
    report.failed[task.name] = why
    bar.failed += 1
    bar.update(finished=True)
    log.error("%s failed: %s", task.name, why)
    on_event("failed", task.name, {"error": why})


def _run_on_cluster(todo: list[Task], bank, device: str, cluster: str, work_root: str,
                    report: BatchReport, progress: bool, on_event: Event,
                    temp_dir: str | Path | None) -> None:
    # Ray is an optional extra: the cluster helpers import it, only here
    from phosphene.cluster import connect, import_ray, wants_gpu, worker_device

    ray = import_ray()
    from ray.exceptions import RayError, RayTaskError  # optional extra, imported with Ray

    with connect(cluster, temp_dir=temp_dir) as info:
        use_gpu = wants_gpu(device, info)
        count = min(info.workers(use_gpu), len(todo))
        actor = ray.remote(PregenWorker).options(
            num_cpus=1, num_gpus=1 if use_gpu else 0, max_restarts=RETRIES,
            max_task_retries=RETRIES)
        # each worker keeps Ray's thread count (one per CPU it reserved): CPU workers sharing
        # a machine do not fight over its cores
        workers = [actor.remote(worker_device(device, use_gpu), work_root)
                   for _ in range(count)]
        pids = ray.get([w.pid.remote() for w in workers])
        idle = list(zip(workers, pids))
        queue = list(todo)
        running: dict[Any, tuple[Task, Any, float]] = {}
        bar = _Progress(len(todo), count, progress)
        try:
            while queue or running:
                while queue and idle:
                    task = queue.pop(0)
                    worker, pid = idle.pop(0)
                    running[worker.run.remote(task)] = (task, (worker, pid), time.monotonic())
                    on_event("started", task.name, {"pid": pid})
                bar.running = len(running)
                bar.update()
                ready, _ = ray.wait(list(running), num_returns=1)
                task, slot, t0 = running.pop(ready[0])
                idle.append(slot)
                try:
                    result = ray.get(ready[0])
                except RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, PhospheneError) else None
                    why = str(cause) if cause else str(exc).strip().splitlines()[-1]
                    _failed(report, bar, on_event, task, why)
                    continue
                except RayError as exc:
                    _failed(report, bar, on_event, task,
                            f"its worker was lost {RETRIES + 1} times ({type(exc).__name__})")
                    continue
                _store(bank, task, result, report, on_event)
                bar.running = len(running)
                bar.update(finished=True, seconds=time.monotonic() - t0)
        finally:
            bar.close()
