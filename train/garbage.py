"""Non-digit sounds: what the speech detector learns to reject, and what `eval --open-set` tests.

Kinds: steady noise (white/pink/brown, any level), clicks (impulses, key taps), cough-like
bursts (band-passed noise with a fast attack and decay), hum, and time-reversed speech (sounds
like a word, is none). Training and testing draw from different random seeds. Clicks and coughs
live in `digitd/sounds.py` (the room benchmark uses them too).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from digitd.sounds import click_clip, cough_clip, random_level
from train.augment import pink_noise

RATE = 8000
KINDS = ("noise", "click", "cough", "hum", "reversed")


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
    return random_level(x, rng)


def hum_clip(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.3, 1.0) * RATE)
    f0 = rng.choice([50.0, 60.0, rng.uniform(100, 1000)])
    t = np.arange(n) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6) if f0 * k < RATE / 2)
    return random_level(x + rng.standard_normal(n) * 0.01, rng)


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
