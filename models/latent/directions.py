"""Meaningful directions in W: SeFa (closed-form) and GANSpace (PCA of sampled ``w``).

- **SeFa** (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", 2021): a
  direction ``d`` that changes the styles of the chosen layers most is an eigenvector of
  ``A^T A``, where ``A`` stacks the style-modulation (affine) weight matrices of those layers.
  As in the authors' code, only the modulated convolutions count (not toRGB), and each style
  channel's weight row is normalised to unit length first, so wide layers do not outvote
  narrow ones. No images, no optimisation: the factorisation takes ~0.2 s of one CPU core
  for config-f 1024.
- **GANSpace** (Härkönen et al., "GANSpace: Discovering Interpretable GAN Controls", 2020):
  the principal axes of ``w = mapping(z)`` over ``samples`` random ``z``.

Both give unit vectors in W, most important first. Their unit for a performer is **sigma**: the
standard deviation of sampled ``w`` projected on the direction (for GANSpace that is the square
root of the PCA variance; SeFa samples for it too), so ``dir.k = 1`` moves as far as the
model's own latents typically spread that way. Samples are drawn from a fixed seed: 10000 for
GANSpace, 2000 for SeFa (a standard deviation to ~2 %) by default. A direction acts on the w
rows of its layer spec (``coarse``, ``fine``, ``0-5``, ...), which for SeFa are also the layers
it was computed from.

Results are cached in the user cache folder, keyed by a hash of the weights they depend on
(``model_key``: the mapping network and the style affines, whatever file or built-in they came
from): the second request of the same directions loads a small ``.npz``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from phosphene.errors import PhospheneError
from phosphene.models.cache import cache_root
from phosphene.models.latent.layers import parse_layers

log = logging.getLogger(__name__)

METHODS = ("sefa", "ganspace")
# w samples: GANSpace's PCA needs many; SeFa's only use is its sigmas (the spread along each
# direction: 2000 samples estimate a standard deviation to ~2 %), which keeps it seconds
DEFAULT_SAMPLES = {"sefa": 2_000, "ganspace": 10_000}
SAMPLE_SEED = 0              # the z samples are drawn from this seed: results are repeatable
SAMPLE_BATCH = 1000
CACHE_VERSION = 1            # bump when the computation changes: old cache files are ignored


@dataclass(frozen=True)
class DirectionSet:
    """Directions in W (numpy only, so the show can hold them)."""

    method: str
    rows: tuple[int, ...]        # w rows the directions act on
    vectors: np.ndarray          # [k, w_dim] float32, unit length, most important first
    sigmas: np.ndarray           # [k] float32, std of sampled w along each vector
    strengths: np.ndarray        # [k] float32: SeFa eigenvalue / GANSpace variance
    samples: int                 # how many w the sigmas (and GANSpace's PCA) came from
    model_key: str = ""          # hash of the generator's weights

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def head(self, count: int) -> "DirectionSet":
        """The ``count`` most important directions."""
        if not 0 < count <= len(self):
            raise PhospheneError(f"{count} directions asked for; {self.method} found "
                                 f"{len(self)} in this model (1..{len(self)})")
        return DirectionSet(self.method, self.rows, self.vectors[:count], self.sigmas[:count],
                            self.strengths[:count], self.samples, self.model_key)

    def offset(self, amounts: np.ndarray) -> np.ndarray:
        """``sum_k amounts[k] * sigma_k * d_k``: ``[w_dim]`` float32; ``amounts`` in sigma."""
        a = np.asarray(amounts, dtype=np.float32) * self.sigmas
        return (a @ self.vectors).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (numpy arrays only: loading it runs no code), atomically."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".npz", dir=p.parent)
        os.close(fd)
        try:
            np.savez(tmp, method=np.array(self.method), rows=np.asarray(self.rows, np.int64),
                     vectors=self.vectors, sigmas=self.sigmas, strengths=self.strengths,
                     samples=np.array(self.samples), model_key=np.array(self.model_key))
            os.replace(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return p

    @classmethod
    def load(cls, path: str | Path) -> "DirectionSet":
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as data:
                return cls(method=str(data["method"]), rows=tuple(int(r) for r in data["rows"]),
                           vectors=data["vectors"].astype(np.float32),
                           sigmas=data["sigmas"].astype(np.float32),
                           strengths=data["strengths"].astype(np.float32),
                           samples=int(data["samples"]), model_key=str(data["model_key"]))
        except FileNotFoundError:
            raise PhospheneError(f"directions file not found: {p}") from None
        except (KeyError, ValueError, OSError) as exc:
            raise PhospheneError(f"{p} is not a directions file: {exc}") from None


# -- the weights SeFa factorises -------------------------------------------------------------
def style_layers(G) -> list[tuple[int, torch.nn.Module]]:
    """``(w row, affine layer)`` of every modulated convolution of ``G``'s synthesis network.

    Row bookkeeping follows ``SynthesisNetwork.forward``: the 4x4 block's conv reads row 0;
    each later block's two convs read rows ``i`` and ``i + 1`` where ``i`` is the rows used
    before it (its first row is shared with the previous block's toRGB).
    """
    out = []
    row = 0
    for block in G.synthesis.blocks():
        convs = [block.conv1] if block.in_channels == 0 else [block.conv0, block.conv1]
        for i, conv in enumerate(convs):
            out.append((row + i, conv.affine))
        row += block.num_conv
    return out


# (w row, affine weight [channels, w_dim]) of every modulated convolution
StyleWeights = list[tuple[int, torch.Tensor]]


def style_weights(G) -> StyleWeights:
    """The affine weights SeFa reads, copied to the CPU: a snapshot that later in-place changes
    of the synthesis network (model mixing blends its weights in place) do not reach."""
    return [(row, affine.weight.detach().to("cpu", torch.float32, copy=True))
            for row, affine in style_layers(G)]


def stacked_style_weights(G, rows: tuple[int, ...],
                          styles: StyleWeights | None = None) -> torch.Tensor:
    """``A``: the affine weights of the convs reading ``rows`` (from ``styles``, default ``G``'s
    now), one unit-length row per style channel, ``[channels, w_dim]`` float64."""
    chosen = set(rows)
    weights = [weight.to(torch.float64)
               for row, weight in (styles if styles is not None else style_weights(G))
               if row in chosen]
    if not weights:
        raise PhospheneError(f"{_rows_text(rows)} no modulated convolution (the last w row "
                             f"feeds only the final toRGB); choose other layers")
    A = torch.cat(weights, dim=0)
    return A / A.norm(dim=1, keepdim=True)


# -- the two methods -------------------------------------------------------------------------
def sefa(G, rows: tuple[int, ...],
         styles: StyleWeights | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SeFa: (vectors ``[w_dim, w_dim]`` one per row, eigenvalues ``[w_dim]``), descending."""
    A = stacked_style_weights(G, rows, styles)
    eigenvalues, eigenvectors = torch.linalg.eigh(A.T @ A)      # ascending, columns
    order = torch.argsort(eigenvalues, descending=True)
    return (_canonical_signs(eigenvectors[:, order].T.numpy()),
            eigenvalues[order].numpy())


def ganspace(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GANSpace: PCA of ``samples [n, w_dim]``: (principal axes ``[m, w_dim]``, variances
    ``[m]``), descending, ``m = min(n - 1, w_dim)``."""
    X = torch.from_numpy(np.asarray(samples, dtype=np.float64))
    if X.shape[0] < 2:
        raise PhospheneError("GANSpace needs at least 2 samples of w")
    X = X - X.mean(dim=0, keepdim=True)
    _, S, Vt = torch.linalg.svd(X, full_matrices=False)
    m = min(X.shape[0] - 1, X.shape[1])
    return _canonical_signs(Vt[:m].numpy()), (S[:m] ** 2 / (X.shape[0] - 1)).numpy()


def _canonical_signs(vectors: np.ndarray) -> np.ndarray:
    """An eigenvector's sign is arbitrary: make each one's largest component positive, so the
    same model gives the same knobs on every machine."""
    idx = np.argmax(np.abs(vectors), axis=1)
    signs = np.sign(vectors[np.arange(len(vectors)), idx])
    signs[signs == 0] = 1.0
    return vectors * signs[:, None]


@torch.no_grad()
def sample_w(G, samples: int, *, seed: int = SAMPLE_SEED, progress: bool = False) -> np.ndarray:
    """``w = mapping(z)`` for ``samples`` z drawn from ``seed`` (on the CPU, so every device
    draws the same ones): ``[samples, w_dim]`` float64. Conditional models draw random classes."""
    from tqdm import tqdm

    if samples < 2:
        raise PhospheneError(f"--samples {samples}: need at least 2 samples of w")
    rng = torch.Generator().manual_seed(int(seed))
    device = G.mapping.w_avg.device
    out = np.empty((samples, G.w_dim), dtype=np.float64)
    with tqdm(total=samples, unit="w", desc="sampling w", disable=not progress) as bar:
        for start in range(0, samples, SAMPLE_BATCH):
            n = min(SAMPLE_BATCH, samples - start)
            z = torch.randn([n, G.z_dim], generator=rng)
            c = None
            if G.c_dim > 0:
                labels = torch.randint(G.c_dim, [n], generator=rng)
                c = torch.nn.functional.one_hot(labels, G.c_dim).float().to(device)
            ws = G.mapping(z.to(device), c)
            out[start:start + n] = ws[:, 0].double().cpu().numpy()
            bar.update(n)
    return out


def compute_directions(G, method: str, layers: str = "all", *, samples: int | None = None,
                       progress: bool = False,
                       styles: StyleWeights | None = None) -> DirectionSet:
    """Every direction ``method`` finds for ``G`` on the rows ``layers`` names (uncached);
    ``samples`` of w (default: ``DEFAULT_SAMPLES[method]``)."""
    samples = _samples(method, samples)
    rows = _rows(layers, G.num_ws)
    if method == "sefa":          # first: a layer choice it refuses costs no sampling
        vectors, strengths = sefa(G, rows, styles)
        w = sample_w(G, samples, progress=progress)
    else:
        w = sample_w(G, samples, progress=progress)
        vectors, strengths = ganspace(w)
    centred = w - w.mean(axis=0, keepdims=True)
    sigmas = (centred @ vectors.T).std(axis=0, ddof=1)
    return DirectionSet(method, rows, vectors.astype(np.float32), sigmas.astype(np.float32),
                        strengths.astype(np.float32), int(samples))


# -- the cache -------------------------------------------------------------------------------
def cache_dir() -> Path:
    return cache_root() / "directions"


def model_key(G, styles: StyleWeights | None = None) -> str:
    """A hash of what directions depend on: the architecture, the mapping network (which draws
    the w samples) and the style-modulation weights (SeFa's input). The same model gives the
    same key whatever file (or built-in) it came from; a change of any of these weights gives
    another (a change elsewhere, e.g. a fine-tuned toRGB, keeps the directions)."""
    h = hashlib.sha256()
    config = getattr(G, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    tensors = [(f"mapping.{name}", t) for name, t in sorted(G.mapping.state_dict().items())]
    tensors += [(f"style.{row}.{i}", w) for i, (row, w) in
                enumerate(styles if styles is not None else style_weights(G))]
    for name, tensor in tensors:
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def cached_path(key: str, method: str, rows: tuple[int, ...], samples: int) -> Path:
    return cache_dir() / (f"{key[:32]}-{method}-rows{rows[0]}-{rows[-1]}-s{samples}"
                          f"-v{CACHE_VERSION}.npz")


def directions_for(G, method: str, layers: str = "all", *, samples: int | None = None,
                   progress: bool = False, use_cache: bool = True, key: str | None = None,
                   styles: StyleWeights | None = None) -> DirectionSet:
    """``compute_directions``, through the user cache (keyed by ``model_key``)."""
    samples = _samples(method, samples)
    rows = _rows(layers, G.num_ws)
    key = key or model_key(G, styles)
    path = cached_path(key, method, rows, samples)
    if use_cache and path.is_file():
        try:
            found = DirectionSet.load(path)
            if found.model_key == key and found.rows == rows:
                log.debug("directions from the cache: %s", path)
                return found
        except PhospheneError as exc:       # a damaged cache file: compute again
            log.warning("ignoring the cached directions: %s", exc)
    result = compute_directions(G, method, layers, samples=samples, progress=progress,
                                styles=styles)
    result = DirectionSet(result.method, result.rows, result.vectors, result.sigmas,
                          result.strengths, result.samples, key)
    if use_cache:
        try:
            result.save(path)
        except OSError as exc:               # a read-only cache must not stop the show
            log.warning("directions not cached (%s): %s", path, exc)
    return result


DirectionSource = Callable[[str, str, "int | None"], DirectionSet]


def direction_source(G) -> DirectionSource:
    """A callable ``(method, layers, samples) -> DirectionSet`` for the show: computed or read
    from the cache once per request, remembered for preset reloads and switches.

    The style weights are copied now, while ``G`` is as loaded: the show may ask later, when
    the frame generator has blended a mixed model into the synthesis weights in place."""
    memo: dict[tuple[str, str, int], DirectionSet] = {}
    # a generator of another kind must not stop a session that never asks for directions
    stylegan2 = hasattr(getattr(G, "synthesis", None), "blocks")
    styles = style_weights(G) if stylegan2 else None
    key: list[str] = []

    def source(method: str, layers: str, samples: int | None = None) -> DirectionSet:
        request = (method, layers, _samples(method, samples))
        if not stylegan2:
            raise PhospheneError(f"{type(G).__name__} is not a StyleGAN2 generator: "
                                 "no latent directions")
        if request not in memo:
            if not key:
                key.append(model_key(G, styles))
            memo[request] = directions_for(G, method, layers, samples=request[2], key=key[0],
                                           styles=styles)
        return memo[request]

    return source


def _samples(method: str, samples: int | None) -> int:
    if method not in METHODS:
        raise PhospheneError(f"unknown direction method {method!r}; known: {', '.join(METHODS)}")
    return DEFAULT_SAMPLES[method] if samples is None else int(samples)


def _rows(layers: str, num_ws: int) -> tuple[int, ...]:
    try:
        return parse_layers(layers, num_ws)
    except ValueError as exc:
        raise PhospheneError(str(exc)) from None


def _rows_text(rows: tuple[int, ...]) -> str:
    """``w rows 3-5 feed`` / ``w row 13 feeds``: the subject of a sentence about the rows."""
    if len(rows) > 1:
        return f"w rows {rows[0]}-{rows[-1]} feed"
    return f"w row {rows[0]} feeds" if rows else "no w rows feed"
