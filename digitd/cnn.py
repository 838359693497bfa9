"""A small convolutional net over the word's log-mel spectrogram, scored with numpy.

Why it exists: pooled MFCC statistics forget the word's time structure, and that caps them at
~97 % in 10 dB white noise even when trained on exactly that condition (train/README.md). Three
3x3 convolutions see a vowel's formants next to its consonants wherever they fall in time, and
a masked max/mean over time keeps the answer independent of where the word sits.

The trainer (train/cnn.py) fits it with torch; the bundle keeps plain arrays with batch norm
folded into the convolutions, so the daemon never imports torch. Layout (all float32):
  convs: [(W (out, in, 3, 3), b (out,)), ...]  each: conv (same padding), ReLU, then 2x2 max
         pooling after all but the last;
  proj:  (W (hidden, channels * bands_after), b)  a per-frame projection (1x1 conv), ReLU;
  fc:    (W (classes, 2 * hidden), b)  on [max over time, mean over time].
"""

from __future__ import annotations

from typing import Any

import numpy as np

CnnWeights = dict[str, Any]


def pad_frames(spec: np.ndarray, floor: float, multiple: int) -> np.ndarray:
    """Pad (frames, bands) at the end with `floor` to a multiple of `multiple` frames (>= multiple)."""
    t = max(multiple, -(-len(spec) // multiple) * multiple)
    out = np.full((t, spec.shape[1]), floor, dtype=np.float32)
    out[: len(spec)] = spec
    return out


def _conv3x3(h: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(C, F, T) -> (O, F, T), zero 'same' padding, as torch.nn.Conv2d(padding=1).

    im2col from the nine shifted slices of a channels-last copy (contiguous blocks, ~2.5x faster
    than gathering a (C, F, T, 3, 3) window view), then one matrix product."""
    c, f, t = h.shape
    hp = np.zeros((f + 2, t + 2, c), dtype=np.float32)
    hp[1:-1, 1:-1] = h.transpose(1, 2, 0)
    cols = np.concatenate([hp[dy : dy + f, dx : dx + t] for dy in range(3) for dx in range(3)], axis=2)
    wm = w.transpose(2, 3, 1, 0).reshape(9 * c, w.shape[0])  # rows ordered (dy, dx, c) like cols
    out = cols.reshape(f * t, 9 * c) @ wm + b
    return out.T.reshape(w.shape[0], f, t)


def _maxpool2(h: np.ndarray) -> np.ndarray:
    c, f, t = h.shape
    h = h[:, : f // 2 * 2, : t // 2 * 2]
    return h.reshape(c, f // 2, 2, t // 2, 2).max(axis=(2, 4))


def forward(net: CnnWeights, spec: np.ndarray) -> np.ndarray:
    """Logits (classes,) for one spectrogram (frames, bands); frames are padded here."""
    n_pool = len(net["convs"]) - 1
    x = pad_frames(np.asarray(spec, dtype=np.float32), float(net["floor"]), 2**n_pool)
    valid = max(1, len(spec) // 2**n_pool)
    h = x.T[None]  # (1, bands, frames)
    for i, (w, b) in enumerate(net["convs"]):
        h = np.maximum(_conv3x3(h, w, b), 0.0)
        if i < n_pool:
            h = _maxpool2(h)
    c, f, t = h.shape
    w, b = net["proj"]
    z = np.maximum(w @ h.reshape(c * f, t) + b[:, None], 0.0)[:, :valid]  # (hidden, valid frames)
    w, b = net["fc"]
    return w @ np.concatenate([z.max(axis=1), z.mean(axis=1)]) + b


def proba(net: CnnWeights, spec: np.ndarray) -> np.ndarray:
    z = forward(net, spec).astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def n_parameters(net: CnnWeights) -> int:
    return int(sum(w.size + b.size for w, b in [*net["convs"], net["proj"], net["fc"]]))
