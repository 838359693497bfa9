"""A small 1-D convolutional head over the speech embedding's windows, scored with numpy.

Why it exists: the embedding member's logistic regression sees the utterance pooled (mean, max
and middle of its 11 window embeddings), which loses their order; in background talk the pooled
vector is a blur of the word and the talk. Two 3-tap convolutions along the windows keep which
embedding follows which, and a max/mean over time keeps the answer independent of where the word
sits. Measured on held-out training-side speakers (the dev slice, never the unseen split), with
the same noise-augmented training rows for both: babble 10 / 5 / 0 dB 89.0 / 81.4 / 71.5% (pooled
LR) -> 92.6 / 86.2 / 78.9%, clean 96.6 -> 98.9%, non-digit words rejected 88.6 -> 97.4%
(train/README.md, "Sequence head"). 32k parameters, ~0.3 ms per utterance.

The trainer (train/embed_head.py) fits it with torch; the daemon scores these plain arrays:
  mu, sd: (96,)  per-dimension standardisation of the window embeddings;
  convs:  [(W (out, in, 3), b (out,)), ...]  each: conv along the windows (same padding), ReLU;
  out:    (W (classes, 2 * channels), b)  on [mean over windows, max over windows], softmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from digitd.embedding import window_view

HeadWeights = dict[str, Any]


def _conv3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, T, C) -> (n, T, O): zero 'same' padding, as torch.nn.Conv1d(C, O, 3, padding=1)."""
    n, t, c = x.shape
    xp = np.zeros((n, t + 2, c), dtype=x.dtype)
    xp[:, 1:-1] = x
    cols = window_view(xp, (n, t, c, 3), (0, 1, 2, 1)).reshape(n * t, c * 3)  # (n*T, C*3), ordered C then tap
    return (cols @ w.reshape(len(w), -1).T + b).reshape(n, t, len(w))


def logits(head: HeadWeights, windows: np.ndarray) -> np.ndarray:
    """(n, classes) for window embeddings (n, T, 96) or one utterance's (T, 96)."""
    x = np.asarray(windows, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    h = (x - head["mu"]) / head["sd"]
    for w, b in head["convs"]:
        h = np.maximum(_conv3(h, w, b), 0.0)
    w, b = head["out"]
    return np.concatenate([h.mean(axis=1), h.max(axis=1)], axis=1) @ w.T + b


def proba(head: HeadWeights, windows: np.ndarray) -> np.ndarray:
    z = logits(head, windows)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def mean_proba(heads: list[HeadWeights], windows: np.ndarray) -> np.ndarray:
    """The average of several heads' probabilities (heads trained from different seeds)."""
    return np.mean([proba(h, windows) for h in heads], axis=0)


def n_parameters(head: HeadWeights) -> int:
    return int(sum(w.size + b.size for w, b in head["convs"]) + head["out"][0].size + head["out"][1].size)


def check(head: HeadWeights, n_classes: int, dim: int) -> None:
    """Raise ValueError unless the arrays fit together and give `n_classes` scores for `dim`-wide windows."""
    if np.shape(head["mu"]) != (dim,) or np.shape(head["sd"]) != (dim,):
        raise ValueError(f"mu/sd must be ({dim},)")
    p = proba(head, np.zeros((1, 11, dim), dtype=np.float32))
    if p.shape != (1, n_classes) or not np.all(np.isfinite(p)):
        raise ValueError(f"it gives {p.shape[1]} scores, not {n_classes}")
