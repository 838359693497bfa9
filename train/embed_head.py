"""Fitting the embedding member's sequence head (digitd.embedhead) with torch.

Rows per clip: the window embeddings (11 x 96) of the clip as recorded, of its trimmed word, and
of `copies` augmented versions: the recording or its trimmed word, then (p 0.9) a real background
recording, babble of training-side non-digit words, white or pink noise at 0-20 dB against the
word, then a gain of -20..+20 dB around a 0.5 peak, clipped. Non-digit words and noise (OTHER) get
the same copies as digits: copies of digits alone would teach "noisy = digit". `reverb` more
copies per clip are first heard through a synthetic room (RT60 0.2-0.9 s; their own random
stream, so the other copies are drawn as without them). The reject
threshold comes from speaker-grouped out-of-fold confidences, like the logistic regression's.
`heard` rows (train/heard.py: words of training-side voices as the daemon cuts them out of room
streams) join the training rows once each, grouped by their speaker, never validated on.
Chosen on the dev slice of the training side (train/README.md, "Sequence head"), never on the
unseen speakers. torch is imported only here; the daemon scores the exported arrays.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from digitd.embedding import SpeechEmbedding, WINDOW_STEP
from digitd.embedhead import HeadWeights
from digitd.features import DEFAULT_PARAMS, trim
from digitd.model import OTHER
from digitd.synth import mic_curve, microphone, reverberate, room_impulse
from train.augment import ROOM_DRR_DB, ROOM_RT60_S, add_noise_as_heard, apply_gain, change_speed, speech_power, talker_banks
from train.data import Record
from train.embed import confidence, noise_bank
from train.heard import Heard
from train.parallel import map_records, map_tasks

SNR_DB = (0.0, 20.0)
GAIN_DB = (-20.0, 20.0)
NOISE_P = 0.9
KINDS = ("recorded", "babble", "white", "pink")
MEL_FRAMES = 76 + WINDOW_STEP * 10  # the rows of a clip's spectrogram its 11 windows read (76-frame windows every 8)


@dataclass
class HeadSpec:
    """Shape and schedule (the dev-slice run's one fixed configuration, not tuned on it)."""

    channels: int = 64
    epochs: int = 30
    batch: int = 256
    lr: float = 3e-3
    dropout: float = 0.2
    weight_decay: float = 1e-2


@dataclass
class HeadFit:
    head: HeadWeights
    oof_digit_conf: np.ndarray  # out-of-fold confidence of true digits (held-out speakers)
    oof_other_conf: np.ndarray  # the same for OTHER clips
    n_rows: int


@dataclass
class _Banks:
    recorded: np.ndarray
    babble: list[np.ndarray]


def banks(records: Sequence[Record], seed: int) -> _Banks:
    """Real backgrounds and 4 babble banks (3-6 talkers, 60 s) from the OTHER records (training side)."""
    other = [r for r in records if r.label == OTHER]
    words = [r for r in other if not r.speaker.startswith("noise")]
    return _Banks(noise_bank(other, seconds=600.0, seed=seed), talker_banks(words, seed, 60.0, most=800))


def _versions(rec: Record, see: Callable[[np.ndarray], np.ndarray], b: _Banks, copies: int, seed: int, reverb: int = 0,
              speed: int = 0, speed_range: tuple[float, float] = (0.85, 1.15), low: int = 0,
              low_snr: tuple[float, float] = (-6.0, 6.0), denoise: float = 0.0,
              low_kinds: Sequence[str] = KINDS, mic: float = 0.0) -> list[np.ndarray]:
    """What `see` makes of each version of the record: its window embeddings, or the spectrogram
    they are computed from (train/embed_tune.py), for exactly the same draws. `low_kinds`: the
    noises the low-SNR copies draw from, uniformly (a kind named twice is drawn twice as often).
    `mic`: the share of copies heard through a random microphone (digitd.synth.mic_curve), from
    a generator of its own (0: every other draw as before)."""
    x = rec.load().astype(np.float64)
    xt = trim(x, DEFAULT_PARAMS)
    out = [see(x), see(xt)]
    key = int.from_bytes(hashlib.sha256(rec.name.encode()).digest()[:4], "little")
    rng = np.random.default_rng([seed, 12345, key])
    room_rng = np.random.default_rng([seed, 222, key])  # its own: reverb copies change no other copy's draws
    speed_rng = np.random.default_rng([seed, 333, key])  # the same for speed copies
    low_rng = np.random.default_rng([seed, 444, key])  # and for low-SNR copies
    mic_rng = np.random.default_rng([seed, 555, key])  # and for microphones
    def usable(k: str) -> bool:
        return (k != "recorded" or len(b.recorded) > len(x)) and (k != "babble" or bool(b.babble))
    kinds = [k for k in KINDS if usable(k)]
    lows = [k for k in low_kinds if usable(k)] or kinds
    first_low = copies + reverb + speed
    for i in range(first_low + low):
        if i == copies:
            rng = room_rng
        if i == copies + reverb:
            rng = speed_rng
        if i == first_low:
            rng = low_rng
        y = x if (rng.random() < 0.5 or len(xt) < 400) else xt
        if copies + reverb <= i < first_low:  # a faster or slower talker (tempo and pitch together), then noise and gain as the others
            y = change_speed(y, float(rng.uniform(*speed_range)))
        elif copies <= i < first_low:  # heard through a room (digitd.synth.room_impulse), then noise and gain as the others
            y = reverberate(y, room_impulse(float(rng.uniform(*ROOM_RT60_S)), float(rng.uniform(*ROOM_DRR_DB)), rng))
        p = speech_power(y)
        # a low-SNR copy is always noisy, at low_snr: a word heard through noise as loud as it
        # (the room bench's quiet words under a steady background)
        if i >= first_low or rng.random() < NOISE_P:
            pool = lows if i >= first_low else kinds
            kind = pool[int(rng.integers(len(pool)))]
            bank = b.recorded if kind == "recorded" else b.babble[int(rng.integers(len(b.babble)))] if kind == "babble" else None
            y = add_noise_as_heard(y, kind, float(rng.uniform(*(low_snr if i >= first_low else SNR_DB))), rng, bank, p, denoise)
        if mic > 0 and mic_rng.random() < mic:  # the microphone hears word and noise alike
            y = microphone(y, mic_curve("random", mic_rng))
        y = apply_gain(y / max(1e-9, float(np.max(np.abs(y)))) * 0.5, 10 ** (float(rng.uniform(*GAIN_DB)) / 20))
        out.append(see(y))
    return out


def head_windows(records: Sequence[Record], *, copies: int = 6, seed: int = 0, jobs: int = 2,
                 reverb: int = 0, speed: int = 0, speed_range: tuple[float, float] = (0.85, 1.15),
                 low: int = 0, low_snr: tuple[float, float] = (-6.0, 6.0), denoise: float = 0.0,
                 low_kinds: Sequence[str] = KINDS, frontend: Path | None = None, mels: bool = False,
                 mic: float = 0.0) -> list[list[np.ndarray]]:
    """Per record: [as recorded, trimmed, augmented copies..., reverberant copies..., speed-changed
    copies..., low-SNR copies...] window embeddings (11, 96) by `frontend` (default: the shipped
    one), or with `mels` the log-mel spectrograms they come from (MEL_FRAMES x 32, float16).
    `denoise`: the share of copies under steady noise heard through the daemon's denoiser
    (train.augment.add_denoised_noise). `mic`: the share heard through a random microphone."""
    see = _seer(SpeechEmbedding.load(frontend), mels)
    b = banks(records, seed)
    return map_records(list(records), lambda r: _versions(r, see, b, copies, seed, reverb, speed, speed_range, low, low_snr, denoise,
                                                                 low_kinds, mic), jobs=jobs,
                       label="speech-embedding spectrograms" if mels else "speech-embedding windows")


def _seer(fe: SpeechEmbedding, mels: bool) -> Callable[[np.ndarray], np.ndarray]:
    """What a clip becomes: its window embeddings (11, 96), or with `mels` the rows of its
    spectrogram they read (MEL_FRAMES, 32), kept as float16 (train/embed_tune.py learns from them)."""
    if mels:
        return lambda x: fe.clip_mel(x)[0][:MEL_FRAMES].astype(np.float16)
    return fe.clip_windows


def _heard_chunk(how: tuple[Path | None, bool], audios: list[np.ndarray]) -> list[np.ndarray]:
    frontend, mels = how
    see = _seer(SpeechEmbedding.load(frontend), mels)
    return [see(np.asarray(a, np.float64)) for a in audios]


def heard_windows(heard: Sequence[Heard], jobs: int = 2, frontend: Path | None = None, mels: bool = False) -> np.ndarray:
    """(n, 11, 96) window embeddings of the heard utterances, as the daemon computes them (by
    `frontend`, default the shipped one), or with `mels` their spectrograms (n, MEL_FRAMES, 32)."""
    if not heard:
        return np.zeros((0, MEL_FRAMES, 32) if mels else (0, 11, 96), np.float16 if mels else np.float32)
    chunks = [[h.audio for h in heard[i : i + 256]] for i in range(0, len(heard), 256)]
    got = map_tasks(_heard_chunk, chunks, shared=(frontend, mels), jobs=jobs,
                    label="heard utterances' spectrograms" if mels else "heard utterances' windows")
    return np.asarray([w for g in got for w in g], dtype=np.float16 if mels else np.float32)


def _torch_head(n_classes: int, spec: HeadSpec, dim: int):
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(dim, spec.channels, 3, padding=1)
            self.conv2 = nn.Conv1d(spec.channels, spec.channels, 3, padding=1)
            self.drop = nn.Dropout(spec.dropout)
            self.out = nn.Linear(2 * spec.channels, n_classes)

        def forward(self, x):  # (B, T, dim), standardised
            z = torch.relu(self.conv1(x.transpose(1, 2)))
            z = torch.relu(self.conv2(self.drop(z)))
            return self.out(self.drop(torch.cat([z.mean(2), z.amax(2)], 1)))

    return Head()


def export(net, mu: np.ndarray, sd: np.ndarray) -> HeadWeights:
    f32 = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    return {"mu": mu.astype(np.float32), "sd": sd.astype(np.float32),
            "convs": [(f32(net.conv1.weight), f32(net.conv1.bias)), (f32(net.conv2.weight), f32(net.conv2.bias))],
            "out": (f32(net.out.weight), f32(net.out.bias))}


def fit_head(W: np.ndarray, y: np.ndarray, n_classes: int, spec: HeadSpec = HeadSpec(), seed: int = 0) -> HeadWeights:
    """Train on windows W (n, T, 96) with class indices y; class-balanced cross-entropy, AdamW +
    one-cycle. Returns the numpy weights (digitd.embedhead scores them)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    flat = W.reshape(-1, W.shape[-1])
    mu, sd = flat.mean(axis=0), flat.std(axis=0) + 1e-6
    X = torch.tensor((W - mu) / sd, dtype=torch.float32)
    Y = torch.tensor(np.asarray(y, dtype=np.int64))
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    cw = torch.tensor(len(y) / (n_classes * np.maximum(counts, 1.0)), dtype=torch.float32)
    net = _torch_head(n_classes, spec, W.shape[-1])
    per_epoch = max(1, len(y) // spec.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=spec.lr * 2 / 3, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, spec.lr, total_steps=spec.epochs * per_epoch)
    net.train()
    for _ in range(spec.epochs):
        order = torch.from_numpy(rng.permutation(len(y)))
        for i in range(per_epoch):
            b = order[i * spec.batch : (i + 1) * spec.batch]
            loss = F.cross_entropy(net(X[b]), Y[b], weight=cw)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    return export(net, mu, sd)


_TORCH = threading.Lock()


@dataclass
class _Job:
    W: np.ndarray
    y: np.ndarray
    n_classes: int
    spec: HeadSpec
    seed: int


def _fit_task(job: _Job, rows: np.ndarray | None) -> HeadWeights:
    """One fit (a task): on `rows` of the job's data (None = all), one torch thread."""
    import torch

    with _TORCH:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            if rows is None:
                return fit_head(job.W, job.y, job.n_classes, job.spec, job.seed)
            return fit_head(job.W[rows], job.y[rows], job.n_classes, job.spec, job.seed)
        finally:
            torch.set_num_threads(threads)


def fit_head_member(records: Sequence[Record], classes: Sequence[str], *, copies: int = 6, seed: int = 0,
                    jobs: int = 2, folds: int = 5, spec: HeadSpec = HeadSpec(), reverb: int = 0,
                    speed: int = 0, speed_range: tuple[float, float] = (0.85, 1.15), low: int = 0,
                    low_snr: tuple[float, float] = (-6.0, 6.0), denoise: float = 0.0, low_kinds: Sequence[str] = KINDS,
                    mic: float = 0.0, heard: Sequence[Heard] = (), heard_w: np.ndarray | None = None, frontend: Path | None = None) -> HeadFit:
    """The head on every record's windows (digits with their labels, negatives as OTHER) and the
    `heard` utterances', and out-of-fold confidences from speaker-grouped folds (the clip as
    recorded) for the threshold. `heard_w`: their windows, if computed already (`heard_windows`).
    `frontend`: the speech embedding's file (default: the shipped one; a fine-tuned one's heads
    learn its windows)."""
    from sklearn.model_selection import GroupKFold

    from digitd import embedhead

    feats = head_windows(records, copies=copies, seed=seed, jobs=jobs, reverb=reverb, speed=speed, speed_range=speed_range,
                         low=low, low_snr=low_snr, denoise=denoise, low_kinds=low_kinds, frontend=frontend, mic=mic)
    names = list(classes) + [OTHER]
    index = {c: i for i, c in enumerate(names)}
    W = np.asarray([w for rows in feats for w in rows], dtype=np.float32)
    y = np.asarray([index[r.label] for r, rows in zip(records, feats) for _ in rows])
    g = np.asarray([r.speaker for r, rows in zip(records, feats) for _ in rows])
    first = np.asarray([i == 0 for rows in feats for i in range(len(rows))])
    if heard:
        if heard_w is None and any(h.audio.size == 0 for h in heard):
            raise ValueError("heard utterances without their audio need their windows (heard_w)")
        W = np.concatenate([W, heard_windows(heard, jobs, frontend) if heard_w is None else heard_w])
        y = np.concatenate([y, [index[h.label] for h in heard]])
        g = np.concatenate([g, [h.speaker or f"background {h.condition}" for h in heard]])
        first = np.concatenate([first, np.zeros(len(heard), bool)])
    splits = list(GroupKFold(n_splits=folds).split(W, y, g)) if folds > 1 else []
    job = _Job(W, y, len(names), spec, seed)
    fits = map_tasks(_fit_task, [tr for tr, _ in splits] + [None], shared=job, jobs=jobs, label="sequence head fits")
    digit_conf, other_conf = [], []
    for (_, va), head in zip(splits, fits):
        va = va[first[va]]
        conf = confidence(embedhead.proba(head, W[va]))
        is_digit = y[va] != index[OTHER]
        digit_conf.append(conf[is_digit])
        other_conf.append(conf[~is_digit])
    empty = np.zeros(0)
    return HeadFit(fits[-1], np.concatenate(digit_conf) if digit_conf else empty,
                   np.concatenate(other_conf) if other_conf else empty, len(W))
