"""``Bank``: the folder, its manifest, and the operations on clips.

Layout of a bank folder::

    bank.json                  manifest: {"format": 1, "sample_rate": 48000, "clips": [...]}
    <name>.flac                the clip (24-bit FLAC at the bank rate, loudness-normalised)
    <name>.json                sidecar: the clip's own manifest entry (makes rebuilds lossless)
    <name>.features.npz        the analyzer's feature timeline (see ``timeline.py``), written
                               when the bank was given a ``compute_timeline`` function
    bank.lock                  advisory lock held while the manifest is read-modify-written

Every file is written atomically (temp + rename). A clip is added in the order audio,
timeline, sidecar, manifest, so an interrupted add leaves at worst a clip the manifest does
not list yet; ``Bank.rebuild()`` (run automatically when the manifest is corrupt) picks it
up from its sidecar. Nothing outside the folder is ever written: names are validated
(``names.validate_name``) before they become file names.

A clip file a valid manifest does not list (an interrupted add, a hand edit of ``bank.json``
that dropped entries) is an *orphan*: it cannot be played, so the bank names it in a warning
when it is first read and in ``bank list``; ``Bank.repair()`` (``bank repair``) lists it again
from its sidecar, and ``add`` never writes over it unless told to (``overwrite``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phosphene.errors import PhospheneError
from phosphene.models.bank import atomic, loudness
from phosphene.models.bank.names import name_from_filename, validate_name
from phosphene.models.bank.timeline import ComputeTimeline, load_timeline, npz_bytes

log = logging.getLogger(__name__)

MANIFEST = "bank.json"
LOCK = "bank.lock"
FORMAT_VERSION = 1
DEFAULT_SAMPLE_RATE = 48000
AUDIO_SUFFIX = ".flac"
FEATURES_SUFFIX = ".features.npz"
SIDECAR_SUFFIX = ".json"
# Formats ``bank import`` accepts (libsndfile reads them all).
IMPORTABLE = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


class BankError(PhospheneError):
    """A bank problem a user can fix (missing clip, bad file, existing name)."""


class BankEntry(BaseModel):
    """One clip's manifest entry. ``source`` is free-form provenance; its usual keys are
    ``backend`` (yourtts, jukebox, musicgen, import), ``model``, ``text``/``prompt``/``lyrics``,
    ``artist``, ``genre``, ``language``, ``speaker_files`` ([{file, sha256}]), ``seed``."""

    model_config = ConfigDict(extra="allow")

    name: str
    file: str
    duration_s: float = Field(ge=0)
    frames: int = Field(ge=0)
    sample_rate: int = Field(gt=0)
    channels: int = Field(ge=1, le=2)
    loudness_lufs: float | None        # after normalisation (None: silent clip)
    original_loudness_lufs: float | None
    gain_db: float                     # gain applied to reach loudness_lufs
    peak_dbfs: float | None
    tags: list[str] = Field(default_factory=list)
    created: str                       # ISO 8601, UTC
    features: str | None = None        # the timeline file, None when it could not be computed
    source: dict[str, Any] = Field(default_factory=dict)


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: int = FORMAT_VERSION
    sample_rate: int = Field(gt=0)
    clips: list[BankEntry] = Field(default_factory=list)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Bank:
    """A clip bank folder. Cheap to construct; reads the manifest on each query so several
    processes (a pregeneration run, the live engine) see each other's additions.

    ``compute_timeline(samples, sample_rate) -> {field: array}`` computes a clip's feature
    timeline when ``add`` writes it; writers (pregeneration, ``bank import``) pass
    ``phosphene.live.analysis.clip_timeline.compute_timeline`` (the bank never imports the live
    side). Without it, clips are added with no timeline (``features`` None); readers need none.
    """

    def __init__(self, path: str | Path, sample_rate: int | None = None, create: bool = False,
                 *, compute_timeline: ComputeTimeline | None = None):
        self.path = Path(path)
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_dir():
            raise BankError(f"bank folder {self.path} does not exist")
        self._requested_rate = sample_rate
        self._orphans_reported = False     # warned (once) about unlisted clip files
        self._compute_timeline = compute_timeline

    # -- reading (what the engine uses) ------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self._read_manifest().sample_rate

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries()]

    def entries(self) -> list[BankEntry]:
        return list(self._read_manifest().clips)

    def get(self, name: str) -> BankEntry:
        validate_name(name)
        for entry in self._read_manifest().clips:
            if entry.name == name:
                return entry
        raise BankError(f"no clip named {name!r} in bank {self.path}")

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except PhospheneError:
            return False
        return True

    def load_audio(self, name: str) -> tuple[np.ndarray, int]:
        """The clip's samples as float32, shape (frames, channels), and its sample rate."""
        import soundfile
        entry = self.get(name)
        samples, sr = soundfile.read(self._member(entry.file), dtype="float32", always_2d=True)
        return samples, sr

    def load_features(self, name: str) -> dict[str, np.ndarray] | None:
        """The clip's precomputed feature timeline, or None if it has none."""
        entry = self.get(name)
        return load_timeline(self._member(entry.features)) if entry.features else None

    def audio_path(self, name: str) -> Path:
        return self._member(self.get(name).file)

    # -- writing -----------------------------------------------------------------------------

    def add(self, name: str, samples: np.ndarray, sample_rate: int, *, source: dict[str, Any],
            tags: list[str] | None = None, overwrite: bool = False,
            target_lufs: float | None = None) -> BankEntry:
        """Resample ``samples`` (frames[, channels]) to the bank rate, normalise loudness,
        compute the feature timeline (with the bank's ``compute_timeline``, if it has one), and
        write the clip atomically. Returns its entry."""
        import soundfile

        validate_name(name)
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] == 0:
            raise BankError(f"clip {name!r}: no audio (shape {np.shape(samples)})")
        if not np.all(np.isfinite(x)):
            raise BankError(f"clip {name!r}: audio contains NaN or infinite samples")
        if x.shape[1] > 2:
            log.warning("clip %s: %d channels mixed down to mono", name, x.shape[1])
            x = x.mean(axis=1, keepdims=True)
        with self._locked():
            manifest = self._read_manifest()
            if not overwrite and any(e.name == name for e in manifest.clips):
                raise BankError(f"a clip named {name!r} is already in the bank "
                                "(choose another --name, or remove it first)")
            unlisted = self._unlisted_files(name, manifest)
            if not overwrite and unlisted:
                raise BankError(f"bank {self.path}: {', '.join(unlisted)} is in the folder but "
                                f"not in {MANIFEST}, so a clip named {name!r} would overwrite "
                                "it (`phosphene bank repair` lists it again; --overwrite "
                                "replaces it; or choose another --name)")
            rate = manifest.sample_rate
            x = loudness.resample(x, int(sample_rate), rate)
            result = loudness.normalise_loudness(
                x, rate, loudness.DEFAULT_TARGET_LUFS if target_lufs is None else target_lufs)

            audio_file = name + AUDIO_SUFFIX
            atomic.write_with_atomic(
                self.path / audio_file,
                lambda tmp: soundfile.write(tmp, result.samples, rate, subtype="PCM_24",
                                            format="FLAC"),
                suffix=AUDIO_SUFFIX)
            features_file = None
            if self._compute_timeline is not None:
                npz = npz_bytes(self._compute_timeline(result.samples, rate))
                features_file = name + FEATURES_SUFFIX
                atomic.write_bytes_atomic(self.path / features_file, npz)
            entry = BankEntry(
                name=name, file=audio_file, duration_s=result.samples.shape[0] / rate,
                frames=result.samples.shape[0], sample_rate=rate,
                channels=result.samples.shape[1], loudness_lufs=result.loudness_lufs,
                original_loudness_lufs=result.original_lufs, gain_db=result.gain_db,
                peak_dbfs=None if not np.isfinite(result.peak_dbfs) else result.peak_dbfs,
                tags=list(tags or []), created=_utc_now(), features=features_file,
                source=dict(source))
            atomic.write_text_atomic(self.path / (name + SIDECAR_SUFFIX),
                                     entry.model_dump_json(indent=2))
            manifest.clips = [e for e in manifest.clips if e.name != name] + [entry]
            self._write_manifest(manifest)
        log.info("bank %s: added %s (%.2f s, %+.1f dB to %s LUFS)", self.path, name,
                 entry.duration_s, entry.gain_db,
                 "n/a" if entry.loudness_lufs is None else f"{entry.loudness_lufs:.1f}")
        return entry

    def import_file(self, file: str | Path, name: str | None = None, *,
                    tags: list[str] | None = None, overwrite: bool = False) -> BankEntry:
        """Bring in one of the performer's own recordings."""
        import hashlib

        import soundfile

        file = Path(file)
        if not file.is_file():
            raise BankError(f"cannot import {file}: no such file")
        if file.suffix.lower() not in IMPORTABLE:
            raise BankError(f"cannot import {file}: unsupported extension {file.suffix!r} "
                            f"(accepted: {', '.join(IMPORTABLE)})")
        try:
            samples, sr = soundfile.read(file, dtype="float32", always_2d=True)
        except Exception as exc:  # libsndfile's errors are RuntimeError/LibsndfileError
            raise BankError(f"cannot read {file}: {exc}") from exc
        if samples.shape[0] == 0:
            raise BankError(f"cannot import {file}: the file has no audio")
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        return self.add(name or name_from_filename(file.stem), samples, sr,
                        source={"backend": "import", "original_file": file.name,
                                "original_sample_rate": sr, "sha256": digest},
                        tags=tags, overwrite=overwrite)

    def remove(self, name: str) -> None:
        """Delete a clip: its manifest entry and its files (an orphan's files alone)."""
        with self._locked():
            validate_name(name)
            unlisted = self._unlisted_files(name, self._read_manifest())
            if unlisted and name not in self:
                for member in unlisted:
                    self._member(member).unlink(missing_ok=True)
                log.info("bank %s: removed %s (not in %s)", self.path, ", ".join(unlisted),
                         MANIFEST)
                return
            entry = self.get(name)
            manifest = self._read_manifest()
            manifest.clips = [e for e in manifest.clips if e.name != name]
            # Manifest first: a crash after it leaves orphan files, never a dangling entry.
            self._write_manifest(manifest)
            for member in (entry.file, entry.features, name + SIDECAR_SUFFIX):
                if member:
                    self._member(member).unlink(missing_ok=True)

    # -- clip files the manifest does not list ----------------------------------------------

    def orphans(self) -> dict[str, list[str]]:
        """Clips whose audio file is in the folder but not in the (valid) manifest, so they
        cannot be played: name -> its files there (audio, sidecar, timeline)."""
        return self._orphans(self._read_manifest())

    def repair(self) -> list[BankEntry]:
        """List the orphans again: each from its sidecar (lossless), or measured from its audio
        when it has none (as a rebuild does). Returns the entries added."""
        with self._locked():
            manifest = self._read_manifest()
            added = []
            for name in self._orphans(manifest):
                entry = self._entry_from_sidecar(name)
                if entry is None or entry.name != name:    # none, or edited to another name
                    entry = self._entry_from_audio(name, self.path / (name + AUDIO_SUFFIX))
                if entry is not None:
                    added.append(entry)
            if added:
                manifest.clips = manifest.clips + added
                self._write_manifest(manifest)
        for entry in added:
            log.info("bank %s: %s listed again (%s)", self.path, entry.name,
                     "from its sidecar" if entry.source.get("rebuilt_from") is None
                     else "measured from its audio")
        return added

    def _orphans(self, manifest: _Manifest) -> dict[str, list[str]]:
        listed = {e.name for e in manifest.clips}
        found: dict[str, list[str]] = {}
        for audio in sorted(self.path.glob("*" + AUDIO_SUFFIX)):
            name = audio.name[:-len(AUDIO_SUFFIX)]
            if name in listed:
                continue
            try:
                validate_name(name)
            except PhospheneError:
                continue                   # not a clip of ours (rebuild ignores it too)
            files = self._unlisted_files(name, manifest)
            if name + AUDIO_SUFFIX in files:
                found[name] = files
        return found

    def _unlisted_files(self, name: str, manifest: _Manifest) -> list[str]:
        """The files a clip ``name`` would be written to that exist but no entry refers to."""
        used = {f for e in manifest.clips
                for f in (e.file, e.features, e.name + SIDECAR_SUFFIX) if f}
        return [f for f in (name + AUDIO_SUFFIX, name + SIDECAR_SUFFIX, name + FEATURES_SUFFIX)
                if f not in used and (self.path / f).is_file()]

    def _report_orphans(self, manifest: _Manifest) -> None:
        """Warn once per ``Bank`` (when it is first read) about clips it cannot play."""
        if self._orphans_reported:
            return
        self._orphans_reported = True
        orphans = self._orphans(manifest)
        if orphans:
            log.warning("bank %s: %d clip file(s) not in %s, so not playable: %s; `phosphene "
                        "bank repair` lists them again (from their sidecars)", self.path,
                        len(orphans), MANIFEST,
                        ", ".join(name + AUDIO_SUFFIX for name in orphans))

    # -- manifest ----------------------------------------------------------------------------

    def rebuild(self) -> _Manifest:
        """A manifest made from the clips in the folder: sidecars where present (lossless),
        else measured from the audio file itself (provenance unknown)."""
        rate = self._requested_rate or DEFAULT_SAMPLE_RATE
        clips: list[BankEntry] = []
        for audio in sorted(self.path.glob("*" + AUDIO_SUFFIX)):
            name = audio.name[:-len(AUDIO_SUFFIX)]
            try:
                validate_name(name)
            except PhospheneError:
                log.warning("bank %s: ignoring %s (not a valid clip name)", self.path, audio.name)
                continue
            entry = self._entry_from_sidecar(name) or self._entry_from_audio(name, audio)
            if entry is not None:
                clips.append(entry)
                rate = entry.sample_rate
        return _Manifest(sample_rate=rate, clips=clips)

    def _entry_from_sidecar(self, name: str) -> BankEntry | None:
        sidecar = self.path / (name + SIDECAR_SUFFIX)
        try:
            return BankEntry.model_validate_json(sidecar.read_bytes())
        except (OSError, ValidationError) as exc:
            if sidecar.exists():
                log.warning("bank %s: sidecar %s unreadable (%s)", self.path, sidecar.name, exc)
            return None

    def _entry_from_audio(self, name: str, audio: Path) -> BankEntry | None:
        import soundfile
        try:
            samples, sr = soundfile.read(audio, dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001 - an unreadable clip is skipped, not fatal
            log.warning("bank %s: %s unreadable (%s); left out", self.path, audio.name, exc)
            return None
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        lufs = loudness.integrated_loudness(samples, sr)
        features = name + FEATURES_SUFFIX
        return BankEntry(
            name=name, file=audio.name, duration_s=samples.shape[0] / sr,
            frames=samples.shape[0], sample_rate=sr, channels=min(samples.shape[1], 2),
            loudness_lufs=lufs, original_loudness_lufs=None, gain_db=0.0,
            peak_dbfs=20 * np.log10(peak) if peak > 0 else None, created=_utc_now(),
            features=features if (self.path / features).exists() else None,
            source={"backend": "unknown", "rebuilt_from": audio.name})

    def _read_manifest(self) -> _Manifest:
        path = self.path / MANIFEST
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            manifest = self.rebuild()
            if manifest.clips:
                log.warning("bank %s: no %s; rebuilt from %d clips", self.path, MANIFEST,
                            len(manifest.clips))
                self._write_manifest(manifest)
            return manifest
        try:
            manifest = _Manifest.model_validate_json(raw)
        except ValidationError as exc:
            return self._recover(path, exc)
        if self._requested_rate and manifest.sample_rate != self._requested_rate:
            raise BankError(f"bank {self.path} is at {manifest.sample_rate} Hz, not "
                            f"{self._requested_rate} Hz")
        self._report_orphans(manifest)
        return manifest

    def _recover(self, path: Path, exc: ValidationError) -> _Manifest:
        """Report a corrupt manifest, keep a backup of it, and rebuild from the clips."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        backup = path.with_name(f"{MANIFEST}.corrupt-{stamp}")
        path.replace(backup)
        manifest = self.rebuild()
        first = exc.errors()[0]
        log.error("bank %s: %s is corrupt (%s at %s); backed up to %s and rebuilt from %d clips",
                  self.path, MANIFEST, first.get("msg"),
                  ".".join(str(p) for p in first.get("loc", ())) or "top level",
                  backup.name, len(manifest.clips))
        self._write_manifest(manifest)
        return manifest

    def _write_manifest(self, manifest: _Manifest) -> None:
        atomic.write_text_atomic(self.path / MANIFEST, manifest.model_dump_json(indent=2))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the bank's advisory lock: two writers never interleave manifest updates."""
        with open(self.path / LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _member(self, file: str) -> Path:
        """A file of this bank named in the manifest; refuses anything that leaves the folder."""
        path = (self.path / file).resolve()
        if path.parent != self.path.resolve():
            raise BankError(f"bank {self.path}: manifest names a file outside the bank: {file!r}")
        return path
