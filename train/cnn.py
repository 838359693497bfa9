"""Fit the convolutional member (digitd.cnn) with torch and export it as numpy arrays.

Its data is its own: the log-mel spectrogram of every clip plus `copies` augmented versions
(same augmentation code as the pooled members, more copies, because a fresh copy per clip per
epoch is what teaches a net noise). Each epoch sees one randomly chosen version of every clip.
torch is imported only here (the `hf` extra); the daemon scores the exported arrays.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from digitd.cnn import CnnWeights, pad_frames
from digitd.features import DEFAULT_PARAMS, FeatureParams, logmel
from digitd.model import CnnMember
from train.augment import AugmentSpec, augment_wave
from train.data import Record
from train.parallel import map_records, map_tasks


@dataclass
class CnnSpec:
    """Shape and schedule of the net. Measured on FSDD takes 5-9 (train: takes 10-49): 40
    epochs of 10 copies, white 10/5 dB 0.977/0.953, babble 10 dB 0.987, gain x10 0.993."""

    channels: tuple[int, int, int] = (16, 32, 64)
    hidden: int = 128
    epochs: int = 40
    batch: int = 64
    lr: float = 3e-3
    dropout: float = 0.3
    label_smoothing: float = 0.05


def clip_spectrograms(x: np.ndarray, aug: AugmentSpec, seed: int | Sequence[int], babble: np.ndarray | None,
                      params: FeatureParams = DEFAULT_PARAMS, recorded: np.ndarray | None = None) -> list[np.ndarray]:
    """The clean spectrogram of `x` and one per augmented copy (float16 to halve the memory)."""
    out = [logmel(x, params).astype(np.float16)]
    for y, _warp, _corrupted in augment_wave(x, aug, np.random.default_rng(seed), babble, recorded):
        out.append(logmel(y, params).astype(np.float16))
    return out


def _torch_net(n_classes: int, spec: CnnSpec, bands: int):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = (1,) + tuple(spec.channels)
            self.convs = nn.ModuleList(nn.Conv2d(c[i], c[i + 1], 3, padding=1) for i in range(len(spec.channels)))
            self.bns = nn.ModuleList(nn.BatchNorm2d(k) for k in spec.channels)
            self.pools = len(spec.channels) - 1
            self.proj = nn.Conv1d(spec.channels[-1] * (bands // 2**self.pools), spec.hidden, 1)
            self.bnp = nn.BatchNorm1d(spec.hidden)
            self.drop = nn.Dropout(spec.dropout)
            self.fc = nn.Linear(2 * spec.hidden, n_classes)

        def forward(self, x, lens):  # x (B, frames, bands)
            h = x.transpose(1, 2).unsqueeze(1)
            for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
                h = F.relu(bn(conv(h)))
                if i < self.pools:
                    h = F.max_pool2d(h, 2)
            b, c, f, t = h.shape
            h = F.relu(self.bnp(self.proj(h.reshape(b, c * f, t))))
            valid = torch.clamp(lens // 2**self.pools, min=1)
            mask = (torch.arange(t)[None, :] < valid[:, None]).float()[:, None, :]
            mx = (h - (1 - mask) * 1e4).max(2).values
            mean = (h * mask).sum(2) / mask.sum(2)
            return self.fc(self.drop(torch.cat([mx, mean], 1)))

    return Net()


def _batch(specs: Sequence[np.ndarray], floor: float, multiple: int):
    import torch

    t = max(multiple, -(-max(len(s) for s in specs) // multiple) * multiple)
    x = np.full((len(specs), t, specs[0].shape[1]), floor, dtype=np.float32)
    for i, s in enumerate(specs):
        x[i, : len(s)] = s
    return torch.from_numpy(x), torch.tensor([len(s) for s in specs])


def export(net, floor: float) -> CnnWeights:
    """Fold each batch norm into the layer before it; plain float32 arrays."""
    import torch

    def fold(w, b, bn):
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shape = (-1,) + (1,) * (w.dim() - 1)
        return ((w * s.reshape(shape)).detach().numpy().astype(np.float32),
                ((b - bn.running_mean) * s + bn.bias).detach().numpy().astype(np.float32))

    with torch.no_grad():
        convs = [fold(c.weight, c.bias, bn) for c, bn in zip(net.convs, net.bns)]
        pw, pb = fold(net.proj.weight[:, :, 0], net.proj.bias, net.bnp)
        return {"convs": convs, "proj": (pw, pb), "floor": float(floor),
                "fc": (net.fc.weight.detach().numpy().astype(np.float32), net.fc.bias.detach().numpy().astype(np.float32))}


def fit_cnn(specs: Sequence[Sequence[np.ndarray]], y: Sequence[int], n_classes: int, spec: CnnSpec = CnnSpec(),
            seed: int = 0, params: FeatureParams = DEFAULT_PARAMS,
            on_epoch: Callable[[int, float], None] | None = None) -> CnnWeights:
    """Train on `specs[i]` (versions of clip i, label y[i]); returns the exported numpy weights."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _torch_net(n_classes, spec, params.mel_bands)
    multiple = 2 ** (len(spec.channels) - 1)
    y = np.asarray(y, dtype=np.int64)
    steps = spec.epochs * (-(-len(specs) // spec.batch))
    opt = torch.optim.AdamW(net.parameters(), spec.lr * 2 / 3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, spec.lr, total_steps=steps)
    for ep in range(spec.epochs):
        net.train()
        pick = [v[int(rng.integers(len(v)))] for v in specs]
        order = rng.permutation(len(pick))
        total = 0.0
        for i in range(0, len(order), spec.batch):
            idx = order[i : i + spec.batch]
            x, lens = _batch([pick[j] for j in idx], params.mel_floor, multiple)
            loss = F.cross_entropy(net(x, lens), torch.from_numpy(y[idx]), label_smoothing=spec.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if on_epoch:
            on_epoch(ep, total / len(order))
    net.eval()
    return export(net, params.mel_floor)


def torch_logits(net, spec: np.ndarray, floor: float, multiple: int) -> np.ndarray:
    """One spectrogram through the torch net (eval mode), for checking the numpy export."""
    import torch

    with torch.no_grad():
        x = pad_frames(np.asarray(spec, dtype=np.float32), floor, multiple)
        return net(torch.from_numpy(x)[None], torch.tensor([len(spec)]))[0].numpy()


def spectrograms_all(records: Sequence[Record], aug: AugmentSpec, copies: int, *, seed: int = 0,
                     babble: np.ndarray | None = None, jobs: int = 2, params: FeatureParams = DEFAULT_PARAMS,
                     label: str = "CNN spectrograms", recorded: np.ndarray | None = None) -> list[list[np.ndarray]]:
    """Per record: [clean, copy 1, ...] spectrograms, `jobs` processes, a progress bar
    (`recorded`: the bank of real background recordings for the "recorded" noise kind)."""

    spec = replace(aug, copies=copies, warps=[])

    def one(r: Record) -> list[np.ndarray]:
        key = int.from_bytes(hashlib.sha256(f"cnn|{r.name}".encode()).digest()[:4], "little")
        return clip_spectrograms(r.load(), spec, [seed, key], babble, params, recorded)

    return map_records(records, one, jobs=jobs, label=label)


@dataclass
class _NetJob:
    """What each CNN seed's task reads (sent to each worker once)."""

    specs: Sequence[Sequence[np.ndarray]]
    y: list[int]
    n_classes: int
    epochs: int
    seed: int


_TORCH = threading.Lock()  # torch's seed and thread count are per process: one net at a time in it


def _fit_net(job: _NetJob, k: int) -> CnnWeights:
    """Net k (a task): seed job.seed + k, one torch thread, so any process computes the same net."""
    import torch

    with _TORCH:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fit_cnn(job.specs, job.y, job.n_classes, CnnSpec(epochs=job.epochs), seed=job.seed + k)
        finally:
            torch.set_num_threads(threads)


def fit_member(specs: Sequence[Sequence[np.ndarray]], labels: Sequence[str], classes: Sequence[str], *, epochs: int,
               gain: float, base: float, seed: int = 0, nets: int = 1, label: str = "CNN nets", jobs: int = 2) -> CnnMember:
    """Fit `nets` nets (seeds seed, seed + 1, ...) on labelled spectrogram versions, each a task
    (`jobs` local processes or a Dask cluster) -> CnnMember averaging them. Same data for
    each: only the init and batch order differ."""
    index = {c: i for i, c in enumerate(classes)}
    job = _NetJob(list(specs), [index[str(l)] for l in labels], len(classes), epochs, seed)
    fitted = map_tasks(_fit_net, list(range(nets)), shared=job, jobs=min(jobs, nets), label=label)
    return CnnMember(fitted, gain, base)


def member_probs(member: CnnMember, specs: Sequence[np.ndarray]) -> np.ndarray:
    """(n, classes) probabilities of the numpy net, one spectrogram at a time (as the daemon does)."""
    return np.asarray([member.proba(s) for s in specs])
