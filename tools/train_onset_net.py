#!/usr/bin/env python3
"""Train the analyzer's neural onset detector (live/analysis/neural_onsets.py) on the onset
corpus's training split; choose the checkpoint and the peak-picking threshold on validation.

    nice -n 5 .venv/bin/python tools/train_onset_net.py CORPUS [--minutes 20] \
        [--out live/analysis/onset_net.npz]

Features: the analyzer's own framing, DC blocker, gate and AGC gain (``tune_onsets.record``,
the vectorised replay of the analyzer's front end), the 80-band mel filterbank times the gain,
then ``neural_onsets.sequence_features`` -- the arithmetic ``NeuralOnsets`` does per hop. They
are cached under ``--cache`` (one .npz per audio file).

Targets: an annotated onset at ``t`` s is the hop whose flag, one hop later, the analyzer would
report at ``t`` (``(t + delay) / hop - 2``); that hop and the next are 1, the rest 0. The
network (``OnsetNet``: dense + ReLU, one GRU layer, logistic output) sees random chunks of the
training files; every ``--eval-every`` epochs it runs over whole validation files, and the
analyzer's peak picker (replayed: ``tune_onsets.pick``) is scored at a few thresholds: the mean
over the four target groups of mir_eval's F (+-50 ms), as ``tune_onsets`` does. The best
(checkpoint, threshold) is written as float32 arrays, and the picker values to put into
``settings.ONSET_DETECTOR_DEFAULTS["neural"]`` are printed.

The shipped ``onset_net.npz`` (dense 32, GRU 32; ~57 KB) came from two runs: 16 min on the first
corpus (472 files, ``--threads 1 --batch 64 --chunk 512 --lr 4e-3 --dropout 0 --weight-decay
0``; best epoch 22), then, from those weights, 15 min on the extended corpus (1062 files:
a second soundfont and espeak-ng voices; ``--init FIRST.npz --lr 2e-3 --dropout 0.25
--weight-decay 1e-3``; best epoch 22, validation 0.706 against superflux's 0.692 replayed).
Both with ``nice -n 5`` on a shared 2-core VM; use ``--threads 1`` there (two OpenMP threads
on a busy 2-core machine ran five times slower).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import warnings
from pathlib import Path

import mir_eval
import numpy as np
import torch
from torch import nn

from phosphene.live.analysis.neural_onsets import sequence_features
from phosphene.live.analysis.onset_bench import load_corpus

ROOT = Path(__file__).resolve().parents[1]
FRONT_END = {"n_bands": 80, "fmin_hz": 30.0, "fmax_hz": 16000.0, "log_multiplier": 1000.0,
             "long_lag": 4}
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)
PICKER = {"mean_weight": 0.0, "mean_ms": 100.0, "max_ms": 30.0, "min_interval_ms": 50.0}
# the final search, on the chosen checkpoint only
FINAL_GRID = {"mean_weight": (0.0, 1.0, 1.5), "max_ms": (30.0, 50.0),
              "min_interval_ms": (30.0, 50.0)}


def tune_onsets():
    """tools/tune_onsets.py, the sibling script: its ``record`` and ``pick`` (imported on
    first use; the tools folder is on the path when this runs as a script, not always when
    a test imports it)."""
    tools = str(ROOT / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import tune_onsets

    return tune_onsets


class OnsetNet(nn.Module):
    """The training-time forward of ``NeuralOnsets``: ``(batch, hops, features)`` -> logits
    ``(batch, hops)``."""

    def __init__(self, n_in: int, dense: int = 32, hidden: int = 32, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)  # training only: the corpus is small
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))
        self.dense = nn.Linear(n_in, dense)
        self.gru = nn.GRU(dense, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        x = (x - self.in_mean) / self.in_std
        y, _ = self.gru(self.drop(torch.relu(self.dense(self.drop(x)))), h0)
        return self.out(y).squeeze(-1)

    def to_arrays(self, front_end: dict) -> dict[str, np.ndarray]:
        sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()}
        arrays = {"in_mean": sd["in_mean"], "in_std": sd["in_std"],
                  "dense_w": sd["dense.weight"], "dense_b": sd["dense.bias"],
                  "gru_w_ih": sd["gru.weight_ih_l0"], "gru_w_hh": sd["gru.weight_hh_l0"],
                  "gru_b_ih": sd["gru.bias_ih_l0"], "gru_b_hh": sd["gru.bias_hh_l0"],
                  "out_w": sd["out.weight"], "out_b": sd["out.bias"]}
        arrays.update({k: np.asarray(v) for k, v in front_end.items()})
        return arrays

    @classmethod
    def from_arrays(cls, w: dict[str, np.ndarray]) -> OnsetNet:
        net = cls(w["dense_w"].shape[1], w["dense_w"].shape[0], w["gru_w_hh"].shape[1])
        state = {"in_mean": w["in_mean"], "in_std": w["in_std"], "dense.weight": w["dense_w"],
                 "dense.bias": w["dense_b"], "gru.weight_ih_l0": w["gru_w_ih"],
                 "gru.weight_hh_l0": w["gru_w_hh"], "gru.bias_ih_l0": w["gru_b_ih"],
                 "gru.bias_hh_l0": w["gru_b_hh"], "out.weight": w["out_w"],
                 "out.bias": w["out_b"]}
        net.load_state_dict({k: torch.as_tensor(np.asarray(v, np.float32))
                             for k, v in state.items()})
        return net


def extract(item, cache: Path):
    """(features, targets, gated, rec) of one corpus file, cached."""
    key = hashlib.sha1(f"{item.audio.resolve()}:{item.audio.stat().st_mtime_ns}:"
                       f"{sorted(FRONT_END.items())}".encode()).hexdigest()[:16]
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{item.audio.stem}-{key}.npz"
    if path.is_file():
        d = np.load(path)
        rec = (None, d["gated"], float(d["rate"]), float(d["hop_s"]), float(d["delay_s"]),
               int(d["n_fft"]), int(d["hop"]))
        return d["features"], d["targets"], rec
    banks, gated, rate, hop_s, delay_s, n_fft, hop = tune_onsets().record(item.audio)
    features = sequence_features(banks["mel80"], FRONT_END["log_multiplier"],
                                 FRONT_END["long_lag"]).astype(np.float32)
    targets = np.zeros(len(features), np.float32)
    for t in item.onsets:
        j = int(round((t + delay_s) / hop_s - 2))
        targets[max(j, 0):max(j + 2, 0)] = 1.0
    np.savez(path, features=features, targets=targets, gated=gated, rate=rate, hop_s=hop_s,
             delay_s=delay_s, n_fft=n_fft, hop=hop)
    return features, targets, (None, gated, rate, hop_s, delay_s, n_fft, hop)


def load_split(corpus_dir: Path, split: str, cache: Path):
    corpus = load_corpus(corpus_dir, split)
    group_of = {f: g for g, fams in corpus.groups.items() for f in fams}
    data = []
    for i, item in enumerate(corpus.items):
        x, y, rec = extract(item, cache)
        data.append({"item": item, "x": x, "y": y, "rec": rec,
                     "group": group_of.get(item.family, "other")})
        print(f"\rfeatures {i + 1}/{len(corpus.items)} ({split})", end="", file=sys.stderr)
    print(file=sys.stderr)
    return data


def activations(net: OnsetNet, data) -> list[np.ndarray]:
    net.eval()
    out = []
    with torch.no_grad():
        for d in data:
            act = torch.sigmoid(net(torch.from_numpy(d["x"])[None]))[0].numpy().astype(float)
            act[d["rec"][1]] = 0.0  # the analyzer zeroes the flux while the gate is shut
            out.append(act)
    net.train()
    return out


def evaluate(acts, data, picker: dict) -> tuple[float, dict[str, float]]:
    pick = tune_onsets().pick
    per_group: dict[str, list[float]] = {}
    for act, d in zip(acts, data):
        est = pick(act, d["rec"], picker)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Estimated onsets are empty" (F is 0 then)
            f = mir_eval.onset.f_measure(d["item"].onsets, est, window=0.05)[0]
        per_group.setdefault(d["group"], []).append(f)
    groups = {g: float(np.mean(v)) for g, v in sorted(per_group.items())}
    return float(np.mean(list(groups.values()))), groups


def best_picker(acts, data, grid: dict | None = None) -> tuple[float, dict, dict]:
    """The best threshold (and, given ``grid``, the best of its other picker values)."""
    best = (-1.0, None, None)
    others = [{}]
    for name, values in (grid or {}).items():
        others = [dict(o, **{name: v}) for o in others for v in values]
    for other in others:
        for delta in THRESHOLDS:
            p = dict(PICKER, **other, delta=delta)
            s, g = evaluate(acts, data, p)
            if s > best[0]:
                best = (s, p, g)
    return best


def chunks(train, length: int, batch: int, rng: np.random.Generator):
    """Random chunks of ``length`` hops, each file sampled in proportion to its length."""
    sizes = np.array([len(d["x"]) for d in train], float)
    n_batches = max(1, int(sizes.sum() / (length * batch)))
    for _ in range(n_batches):
        files = rng.choice(len(train), size=batch, p=sizes / sizes.sum())
        xs, ys = [], []
        for f in files:
            x, y = train[f]["x"], train[f]["y"]
            if len(x) <= length:
                pad = length - len(x)
                xs.append(np.pad(x, ((0, pad), (0, 0))))
                ys.append(np.pad(y, (0, pad)))
                continue
            # start at 0 a quarter of the time: the net must work from a cold start too
            start = 0 if rng.random() < 0.25 else int(rng.integers(0, len(x) - length))
            xs.append(x[start:start + length])
            ys.append(y[start:start + length])
        yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "live" / "analysis" / "onset_net.npz")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/phosphene-onset-net-cache"))
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget")
    ap.add_argument("--dense", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=768, help="hops per training chunk")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--pos-weight", type=float, default=2.0)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, help="start from these weights (their input "
                    "scaling kept), e.g. to fine-tune on a new corpus")
    ap.add_argument("--pick-only", action="store_true", help="no training: choose the peak "
                    "picker's values for the --init weights on validation")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    args.cache.mkdir(parents=True, exist_ok=True)

    train = load_split(args.corpus, "train", args.cache)
    valid = load_split(args.corpus, "validation", args.cache)
    if args.init:
        with np.load(args.init) as init:
            net = OnsetNet.from_arrays(dict(init))
        net.drop.p = args.dropout
    else:
        allx = np.concatenate([d["x"] for d in train])
        net = OnsetNet(allx.shape[1], args.dense, args.hidden, args.dropout)
        net.in_mean.copy_(torch.from_numpy(allx.mean(0)))
        net.in_std.copy_(torch.from_numpy(allx.std(0) + 1e-3))
        del allx
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(args.pos_weight))
    deadline = time.monotonic() + (0.0 if args.pick_only else args.minutes * 60.0)
    best = (-1.0, None, None, None, -1)
    if args.pick_only:
        best = (-1.0, None, None, net.state_dict(), 0)
    epoch = 0
    while time.monotonic() < deadline:
        epoch += 1
        losses = []
        for x, y in chunks(train, args.chunk, args.batch, rng):
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
        line = f"epoch {epoch} loss {np.mean(losses):.4f}"
        if epoch % args.eval_every == 0:
            s, p, g = best_picker(activations(net, valid), valid)
            line += f"  validation {s:.4f} delta {p['delta']} {g}"
            if s > best[0]:
                best = (s, p, g, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
        print(line, flush=True)
    if best[3] is None:
        raise SystemExit("no validation round ran: give --minutes more time")
    net.load_state_dict(best[3])
    # the shipped arrays are float32: choose the threshold again on what ships
    shipped = OnsetNet.from_arrays(net.to_arrays(FRONT_END))
    s, p, g = best_picker(activations(shipped, valid), valid, FINAL_GRID)
    np.savez_compressed(args.out, **shipped.to_arrays(FRONT_END))
    print(f"best epoch {best[4]}: validation {s:.4f} {g}")
    print(f"picker for ONSET_DETECTOR_DEFAULTS['neural']: {p}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
