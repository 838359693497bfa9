"""Fine-tuning the speech embedding's upper layers together with a sequence head (torch).

Why: the embedding (digitd.embedding) was trained by Google on far more voices than ours, which is
why it carries to strangers, but frozen it describes a word under babble or loud noise as it
heard speech, not as our words are told apart there. Its upper layers, started from Google's
weights and trained a few epochs at a small learning rate on the same copies and heard words as
the head (train/embed_head.py), learn that; the lower layers (spectro-temporal filters) stay as
they are. Dev slice (room streams seeds 0-2, one head from the same start, threshold 0.43): DER
15.14 -> 13.93%; the shipped v12 and its numbers: train/README.md.

The result is plain arrays in the layout of train/export_embedding.py: the daemon runs the tuned
network with the same numpy code as the original, from its own file beside the model (the model
names it and checks its SHA-256). The port below must compute exactly what digitd.embedding
computes: tests/test_embed_tune.py checks it. torch is imported only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from digitd.embedhead import HeadWeights
from train.data import Record
from train.embed_head import HeadSpec, _torch_head, export
from train.heard import Heard


@dataclass
class TuneSpec:
    """The schedule (the dev-slice run's one configuration: train/README.md)."""

    epochs: int = 12
    freeze: int = 7  # the first this-many convolutions keep Google's weights (up to the second pooling)
    lr_embed: float = 1e-4
    lr_head: float = 3e-4
    batch: int = 64
    heard_per_epoch: int = 2500  # heard words drawn per epoch (each record gives one of its copies)
    weight_decay: float = 1e-2


@dataclass
class Tuned:
    arrays: dict[str, np.ndarray]  # the front end's arrays, the convolutions replaced
    head: HeadWeights
    train_accuracy: float  # on the last epoch's rows, as trained (dropout on): a sanity number, not a result


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_arrays(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """Write the front end's arrays as an .npz that SpeechEmbedding.load reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def torch_embedding(arrays: Mapping[str, np.ndarray]):
    """The network of digitd.embedding as a torch module: (B, frames, 32) log-mel -> (B, windows, 96),
    one output row per 8 frames (76-frame windows), exactly SpeechEmbedding.embed_mel."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            pad = np.asarray(arrays["emb_input_pad"]).tolist()
            self.pad = (int(pad[1]), int(pad[3]))
            self.alpha = float(arrays["emb_leaky_alpha"])
            self.floor = float(arrays["emb_act_floor"])
            self.convs = nn.ModuleList()
            self.steps: list[tuple[int, int, bool, bool, tuple[int, int] | None]] = []
            for k, (relu_bn, act, ph, pw) in enumerate(np.asarray(arrays["emb_layers"]).tolist()):
                w = np.asarray(arrays[f"emb_conv_{k:02d}_w"], np.float32)
                conv = nn.Conv2d(w.shape[1], w.shape[0], (w.shape[2], w.shape[3]))
                conv.weight.data = torch.tensor(w)
                conv.bias.data = torch.tensor(np.asarray(arrays[f"emb_conv_{k:02d}_b"], np.float32))
                self.convs.append(conv)
                _, left, _, right = np.asarray(arrays[f"emb_conv_{k:02d}_pads"]).tolist()
                if relu_bn:  # ReLU, then batch norm folded into a scale and a shift (frozen: no batch statistics)
                    scale, shift, mean, var = np.asarray(arrays[f"emb_bn_{k:02d}"], np.float64)
                    a = scale / np.sqrt(var + float(arrays[f"emb_bn_{k:02d}_eps"]))
                    self.register_buffer(f"bn{k}_a", torch.tensor(a, dtype=torch.float32)[None, :, None, None])
                    self.register_buffer(f"bn{k}_b", torch.tensor(shift - mean * a, dtype=torch.float32)[None, :, None, None])
                self.steps.append((int(left), int(right), bool(relu_bn), bool(act), (int(ph), int(pw)) if ph else None))

        def forward(self, mel):
            h = F.pad(mel[:, None], self.pad)  # bands only; time is never padded
            for k, (conv, (left, right, bn, act, pool)) in enumerate(zip(self.convs, self.steps)):
                h = conv(F.pad(h, (left, right)) if left or right else h)
                if bn:
                    h = torch.relu(h) * getattr(self, f"bn{k}_a") + getattr(self, f"bn{k}_b")
                if act:
                    h = torch.clamp(torch.maximum(h, h * self.alpha), min=self.floor)
                if pool:
                    h = F.max_pool2d(h, pool)
            return h[:, :, :, 0].transpose(1, 2)

    return Net()


def _head_module(head: HeadWeights, n_classes: int):
    """embed_head's torch head with `head`'s weights and its standardisation as fixed buffers."""
    import torch
    from torch import nn

    spec = HeadSpec(channels=int(np.asarray(head["convs"][0][0]).shape[0]))

    class Standardised(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _torch_head(n_classes, spec, int(np.asarray(head["mu"]).shape[-1]))
            t = lambda a: torch.tensor(np.asarray(a, np.float32))  # noqa: E731
            (w1, b1), (w2, b2) = head["convs"]
            for p, v in ((self.net.conv1.weight, w1), (self.net.conv1.bias, b1), (self.net.conv2.weight, w2),
                         (self.net.conv2.bias, b2), (self.net.out.weight, head["out"][0]), (self.net.out.bias, head["out"][1])):
                p.data = t(v)
            self.register_buffer("mu", t(head["mu"]))
            self.register_buffer("sd", t(head["sd"]))

        def forward(self, x):
            return self.net((x - self.mu) / self.sd)

        def export(self) -> HeadWeights:
            return export(self.net, self.mu.numpy(), self.sd.numpy())

    return Standardised()


def tune(arrays: Mapping[str, np.ndarray], head: HeadWeights, mels: np.ndarray, rec_of: np.ndarray, y: np.ndarray,
         heard_mels: np.ndarray, heard_y: np.ndarray, n_classes: int, spec: TuneSpec = TuneSpec(), seed: int = 0,
         threads: int = 2, on_epoch: Any = None) -> Tuned:
    """Train the embedding's convolutions from `spec.freeze` on, and `head`, on spectrograms
    `mels` (rows, frames, 32: every copy of every record, row r a copy of record rec_of[r], sorted
    by record) with the records' class indices `y`, plus the heard words' `heard_mels` /
    `heard_y`. Each epoch sees one random copy of every record and `heard_per_epoch` heard
    words; class-balanced cross-entropy (as the head's), AdamW + one-cycle."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 777])
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        emb = torch_embedding(arrays)
        hd = _head_module(head, n_classes)
        for i, conv in enumerate(emb.convs):
            conv.requires_grad_(i >= spec.freeze)
        groups = [{"params": [p for p in emb.parameters() if p.requires_grad], "lr": spec.lr_embed},
                  {"params": list(hd.parameters()), "lr": spec.lr_head}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=spec.weight_decay)
        n_rec = len(y)
        first = np.searchsorted(rec_of, np.arange(n_rec))
        count = np.searchsorted(rec_of, np.arange(n_rec), side="right") - first
        if np.any(count == 0):
            raise ValueError("every record needs at least one spectrogram")
        n_heard = min(spec.heard_per_epoch, len(heard_y))
        per_epoch = max(1, (n_rec + n_heard) // spec.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups if g["params"]],
                                                    total_steps=spec.epochs * per_epoch, pct_start=0.15)
        every_y = np.concatenate([y, heard_y]).astype(np.int64)
        counts = np.bincount(every_y, minlength=n_classes).astype(np.float64)
        cw = torch.tensor(len(every_y) / (n_classes * np.maximum(counts, 1.0)), dtype=torch.float32)
        acc = 0.0
        for epoch in range(spec.epochs):
            emb.train()
            hd.train()
            rows = first + (rng.random(n_rec) * count).astype(np.int64)
            picked = rng.choice(len(heard_y), n_heard, replace=False) if n_heard else np.zeros(0, np.int64)
            src = np.concatenate([np.zeros(n_rec, np.int64), np.ones(n_heard, np.int64)])
            idx = np.concatenate([rows, picked])
            lab = np.concatenate([y, heard_y[picked]]).astype(np.int64)
            order = rng.permutation(len(idx))
            right = seen = 0
            for b in range(per_epoch):
                sel = order[b * spec.batch : (b + 1) * spec.batch]
                x = np.stack([(mels if src[j] == 0 else heard_mels)[idx[j]] for j in sel]).astype(np.float32)
                target = torch.from_numpy(lab[sel])
                out = hd(emb(torch.from_numpy(x)))
                loss = F.cross_entropy(out, target, weight=cw)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                right += int((out.argmax(1) == target).sum())
                seen += len(sel)
            acc = right / max(1, seen)
            if on_epoch is not None:
                on_epoch(epoch, acc)
        emb.eval()
        hd.eval()
        out_arrays = dict(arrays)
        for k, conv in enumerate(emb.convs):
            out_arrays[f"emb_conv_{k:02d}_w"] = conv.weight.detach().numpy().astype(np.float32)
            out_arrays[f"emb_conv_{k:02d}_b"] = conv.bias.detach().numpy().astype(np.float32)
        return Tuned(out_arrays, hd.export(), acc)
    finally:
        torch.set_num_threads(old_threads)


TUNED_FRONTEND = "_embedding.npz"  # a tuned model NAME's front end: NAME_embedding.npz beside NAME.npz


def tune_on_records(records: Sequence[Record], classes: Sequence[str], head: HeadWeights, heard: Sequence[Heard],
                    heard_mels: np.ndarray | None, *, spec: TuneSpec, seed: int, head_args: Mapping[str, Any],
                    on_epoch: Any = None) -> Tuned:
    """`tune` on the spectrograms of the same copies the head learned (`head_args` as given to
    embed_head.fit_head_member, seed `seed`) and of the heard words, from the shipped front end."""
    from digitd.embedding import default_path
    from digitd.model import OTHER
    from train.embed_head import MEL_FRAMES, head_windows

    index = {c: i for i, c in enumerate(list(classes) + [OTHER])}
    rows = head_windows(records, seed=seed, mels=True, **head_args)
    mels = np.asarray([m for r in rows for m in r], dtype=np.float16)
    rec_of = np.asarray([i for i, r in enumerate(rows) for _ in r], dtype=np.int64)
    y = np.asarray([index[r.label] for r in records], dtype=np.int64)
    hy = np.asarray([index[h.label] for h in heard], dtype=np.int64)
    hm = heard_mels if heard_mels is not None else np.zeros((0, MEL_FRAMES, mels.shape[-1]), np.float16)
    return tune(read_arrays(default_path()), head, mels, rec_of, y, hm, hy, len(index), spec, seed,
                threads=int(head_args.get("jobs", 2)), on_epoch=on_epoch)
