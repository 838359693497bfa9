"""Non-digit sounds: what the speech detector learns to reject, and what `eval --open-set` tests.

Kinds: steady noise (white/pink/brown, any level), clicks (impulses, key taps), cough-like
bursts (band-passed noise with a fast attack and decay), hum, and time-reversed speech (sounds
like a word, is none). Training and testing draw from different random seeds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.signal import butter, lfilter

from train.augment import pink_noise

RATE = 8000
KINDS = ("noise", "click", "cough", "hum", "reversed")


def _level(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    peak = np.max(np.abs(x)) + 1e-12
    return x / peak * 10 ** (rng.uniform(-40, -3) / 20)


def noise_clip(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.2, 1.0) * RATE)
    kind = rng.choice(["white", "pink", "brown"])
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        x = pink_noise(n, rng)
    else:
        x = np.cumsum(rng.standard_normal(n))
        x = x - np.convolve(x, np.ones(200) / 200, mode="same")
    return _level(x, rng)


def click_clip(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.15, 0.6) * RATE)
    x = rng.standard_normal(n) * 10 ** (rng.uniform(-70, -45) / 20)
    for _ in range(int(rng.integers(1, 4))):
        at = int(rng.integers(0, n - 40))
        ln = int(rng.integers(2, 40))
        x[at : at + ln] += rng.standard_normal(ln) * np.exp(-np.arange(ln) / max(1, ln / 4)) * rng.uniform(0.2, 0.9)
    return x


def cough_clip(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.15, 0.5) * RATE)
    lo, hi = sorted(rng.uniform(200, 3500, size=2))
    hi = max(hi, lo + 300)
    b, a = butter(2, [lo / (RATE / 2), min(0.99, hi / (RATE / 2))], btype="band")
    env = np.exp(-np.arange(n) / (rng.uniform(0.04, 0.15) * RATE)) * (1 - np.exp(-np.arange(n) / 40))
    x = lfilter(b, a, rng.standard_normal(n)) * env
    pad = rng.standard_normal(int(0.1 * RATE)) * 1e-4
    return _level(np.concatenate([pad, x, pad]), rng)


def hum_clip(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.3, 1.0) * RATE)
    f0 = rng.choice([50.0, 60.0, rng.uniform(100, 1000)])
    t = np.arange(n) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6) if f0 * k < RATE / 2)
    return _level(x + rng.standard_normal(n) * 0.01, rng)


def garbage_clips(n: int, rng: np.random.Generator, speech: Sequence[np.ndarray] = (), kinds: Sequence[str] = KINDS) -> list[tuple[str, np.ndarray]]:
    """`n` (kind, wave) pairs, kinds in turn; "reversed" needs `speech` clips to reverse."""
    kinds = [k for k in kinds if k != "reversed" or len(speech)]
    out = []
    for i in range(n):
        k = kinds[i % len(kinds)]
        if k == "noise":
            x = noise_clip(rng)
        elif k == "click":
            x = click_clip(rng)
        elif k == "cough":
            x = cough_clip(rng)
        elif k == "hum":
            x = hum_clip(rng)
        else:
            x = np.asarray(speech[int(rng.integers(0, len(speech)))], dtype=np.float64)[::-1].copy()
        out.append((k, np.clip(x, -1, 1)))
    return out
