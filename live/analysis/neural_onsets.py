"""A small causal neural onset detector: the analyzer's own log-filterbank spectrum in, an onset
activation (0..1) per hop out, computed one hop at a time in numpy.

After Böck et al.'s online detector ("Online real-time onset detection with recurrent neural
networks", DAFx 2012): per hop, the log-compressed mel spectrum and its positive differences
with the frames 1 and ``long_lag`` hops back (the per-band flux of the classic and of the tuned
SuperFlux path) go through a dense layer, one unidirectional GRU layer, and a logistic output.
Nothing looks ahead: the activation of a hop depends on that hop's STFT frame and the past, so
the analyzer's usual peak picker (one hop of lookahead) adds the only latency, as for SuperFlux.

The weights (``onset_net.npz``, trained by ``tools/train_onset_net.py`` on the training split of
the onset corpus) carry the front end's parameters with them, so the features are the ones the
net was trained on. The same arithmetic exists twice: ``sequence_features`` (a whole file at
once, for training) and ``NeuralOnsets.process`` (one hop, for the analyzer); the torch forward
of the training script is checked against ``process`` in tests/test_onset_neural.py.
Inference allocates nothing per hop: every intermediate has a preallocated buffer.

The shipped net was trained at 48 kHz with 256-sample hops (the analyzer's defaults). At other
rates the bands keep their frequencies, but the GRU's sense of time is in hops, so its figures
hold only there.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.analysis.onsets import log_filterbank

WEIGHTS_PATH = Path(__file__).with_name("onset_net.npz")
# the arrays a weights file must hold (shapes are checked against each other on load)
WEIGHT_NAMES = ("in_mean", "in_std", "dense_w", "dense_b", "gru_w_ih", "gru_w_hh", "gru_b_ih",
                "gru_b_hh", "out_w", "out_b")
FRONT_END_NAMES = ("n_bands", "fmin_hz", "fmax_hz", "log_multiplier", "long_lag")


def load_weights(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The arrays of a weights file, as float64, with its front-end parameters."""
    path = Path(path) if path is not None else WEIGHTS_PATH
    try:
        with np.load(path) as data:
            weights = {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    except (OSError, ValueError) as exc:
        raise PhospheneError(f"neural onset detector: cannot read its weights {path} "
                             f"({exc})") from exc
    missing = [k for k in WEIGHT_NAMES + FRONT_END_NAMES if k not in weights]
    if missing:
        raise PhospheneError(f"neural onset detector: weights {path} lack {missing}")
    return weights


_shipped: dict[str, np.ndarray] | None = None


def shipped_weights() -> dict[str, np.ndarray]:
    """The package's weights, read once per process (every Analyzer shares them; nothing
    writes to them)."""
    global _shipped
    if _shipped is None:
        _shipped = load_weights(WEIGHTS_PATH)
    return _shipped


def front_end(weights: dict[str, np.ndarray]) -> dict:
    return {"n_bands": int(weights["n_bands"]), "fmin_hz": float(weights["fmin_hz"]),
            "fmax_hz": float(weights["fmax_hz"]),
            "log_multiplier": float(weights["log_multiplier"]),
            "long_lag": int(weights["long_lag"])}


def sequence_features(band_energy: np.ndarray, log_multiplier: float,
                      long_lag: int) -> np.ndarray:
    """Features of a whole sequence at once: ``band_energy`` ``(hops, bands)`` is the filterbank
    output already multiplied by the AGC gain; returns ``(hops, 3 * bands)``: the log spectrum,
    its positive difference with the previous hop, and with the hop ``long_lag`` back (frames
    before the first are zeros, as ``NeuralOnsets`` starts)."""
    logb = np.log1p(band_energy * log_multiplier)
    out = np.zeros((len(logb), 3 * logb.shape[1]))
    n = logb.shape[1]
    out[:, :n] = logb
    for k, lag in ((1, 1), (2, long_lag)):
        past = np.zeros_like(logb)
        past[lag:] = logb[:-lag]
        out[:, k * n:(k + 1) * n] = np.maximum(logb - past, 0.0)
    return out


class NeuralOnsets:
    """``process(mag, gain)`` -> onset activation of this hop (0..1), one STFT magnitude frame
    at a time; the same interface as ``onsets.SuperFlux``, so the analyzer's peak picker reads
    it like a flux."""

    def __init__(self, sample_rate: int, n_fft: int, weights: dict[str, np.ndarray] | None = None):
        w = weights if weights is not None else shipped_weights()
        fe = front_end(w)
        self.filterbank = log_filterbank(sample_rate, n_fft, fe["n_bands"], fe["fmin_hz"],
                                         fe["fmax_hz"])
        n = self.filterbank.shape[0]
        n_in = 3 * n
        if w["in_mean"].shape != (n_in,) or w["dense_w"].shape[1] != n_in:
            raise PhospheneError(f"neural onset detector: its weights expect "
                                 f"{w['dense_w'].shape[1] // 3} bands, the filterbank at "
                                 f"{sample_rate} Hz / {n_fft}-point FFT has {n}")
        self._log_multiplier = fe["log_multiplier"]
        self._long_lag = fe["long_lag"]
        # The per-input scaling is folded into the dense layer, and the GRU's six products
        # into one: rows [reset; update; new (input part); new (hidden part)] times the
        # vector [dense output; h], so a hop is a handful of numpy calls (their overhead, not
        # the arithmetic, is what a hop costs). The reset and update rows are halved, so one
        # tanh gives the logistic (sigmoid(x) = (1 + tanh(x / 2)) / 2, no overflow), and the
        # hidden part of "new" is halved to absorb the reset gate's 1/2.
        scale = 1.0 / w["in_std"]
        self._dense_w = w["dense_w"] * scale
        self._dense_b = w["dense_b"] - self._dense_w @ w["in_mean"]
        w_ih, w_hh, b_ih, b_hh = w["gru_w_ih"], w["gru_w_hh"], w["gru_b_ih"], w["gru_b_hh"]
        hidden, dense = w_hh.shape[1], w_ih.shape[1]
        self.hidden_size = hidden
        gates = np.zeros((4 * hidden, dense + hidden))
        gates[:2 * hidden, :dense] = 0.5 * w_ih[:2 * hidden]
        gates[:2 * hidden, dense:] = 0.5 * w_hh[:2 * hidden]
        gates[2 * hidden:3 * hidden, :dense] = w_ih[2 * hidden:]
        gates[3 * hidden:, dense:] = 0.5 * w_hh[2 * hidden:]
        self._gates_w = gates
        self._gates_b = np.concatenate([0.5 * (b_ih[:2 * hidden] + b_hh[:2 * hidden]),
                                        b_ih[2 * hidden:], 0.5 * b_hh[2 * hidden:]])
        self._out_w, self._out_b = w["out_w"].reshape(-1), float(w["out_b"].reshape(-1)[0])
        # buffers: nothing is allocated per hop
        self._x = np.zeros(n_in)
        self._logb = self._x[:n]          # views into the input vector
        self._diff1 = self._x[n:2 * n]
        self._diff_long = self._x[2 * n:]
        self._past = np.zeros((self._long_lag, n))  # ring of past log spectra
        self._slot = 0                                # slot of the frame long_lag hops back
        self._prev = np.zeros(n)
        self._dh = np.zeros(dense + hidden)    # [dense output; GRU state h]
        self._d, self._h = self._dh[:dense], self._dh[dense:]
        self._g = np.zeros(4 * hidden)
        g = self._g
        self._t_r, self._t_z = g[:hidden], g[hidden:2 * hidden]
        self._rz, self._n, self._n_h = g[:2 * hidden], g[2 * hidden:3 * hidden], g[3 * hidden:]
        self._tmp = np.zeros(hidden)
        self.activation = 0.0

    def reset(self) -> None:
        self._past[:] = 0.0
        self._prev[:] = 0.0
        self._h[:] = 0.0
        self._slot = 0
        self.activation = 0.0

    def features(self, mag: np.ndarray, gain: float) -> np.ndarray:
        """This hop's input vector (unscaled; a view kept until the next hop)."""
        logb = self._logb
        np.dot(self.filterbank, mag, out=logb)
        logb *= gain * self._log_multiplier
        np.log1p(logb, out=logb)
        np.subtract(logb, self._prev, out=self._diff1)
        np.maximum(self._diff1, 0.0, out=self._diff1)
        oldest = self._past[self._slot]
        np.subtract(logb, oldest, out=self._diff_long)
        np.maximum(self._diff_long, 0.0, out=self._diff_long)
        oldest[:] = logb
        self._prev[:] = logb
        self._slot = (self._slot + 1) % self._long_lag
        return self._x

    def process(self, mag: np.ndarray, gain: float) -> float:
        return self.process_features(self.features(mag, gain))

    def process_features(self, x: np.ndarray) -> float:
        """The network on one hop's input vector: dense + ReLU, a GRU step (torch's
        equations), the logistic output."""
        d, h, g, tmp = self._d, self._h, self._g, self._tmp
        np.dot(self._dense_w, x, out=d)
        d += self._dense_b
        np.maximum(d, 0.0, out=d)
        np.dot(self._gates_w, self._dh, out=g)
        g += self._gates_b
        np.tanh(self._rz, out=self._rz)
        self._t_r += 1.0                  # 2 r
        self._n_h *= self._t_r            # r (W_hn h + b_hn)
        n = self._n
        n += self._n_h
        np.tanh(n, out=n)
        z = self._t_z
        z += 1.0
        z *= 0.5
        # h' = (1 - z) n + z h = n + z (h - n)
        np.subtract(h, n, out=tmp)
        tmp *= z
        np.add(n, tmp, out=h)
        logit = float(self._out_w.dot(h)) + self._out_b
        self.activation = 0.5 * (1.0 + math.tanh(0.5 * logit))
        return self.activation
