"""Short non-speech sounds of a room: coughs, clicks and door knocks, made with numpy/scipy.

One place for them because two users need the same sounds: the trainer's digit-vs-garbage
detector (`train/garbage.py`, its own seeds) and the room benchmark stream (`digitd/room.py`).
Every generator is deterministic for a given `numpy.random.Generator` state.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter

from digitd import SAMPLE_RATE

RATE = SAMPLE_RATE
SOUND_KINDS = ("cough", "click", "knock")


def random_level(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`x` with its peak at a random level in -40..-3 dBFS (the trainer's garbage levels)."""
    peak = np.max(np.abs(x)) + 1e-12
    return x / peak * 10 ** (rng.uniform(-40, -3) / 20)


def click_clip(rng: np.random.Generator) -> np.ndarray:
    """1-3 sharp decaying impulses (key taps, a pen on a desk) over a very faint floor."""
    n = int(rng.uniform(0.15, 0.6) * RATE)
    x = rng.standard_normal(n) * 10 ** (rng.uniform(-70, -45) / 20)
    for _ in range(int(rng.integers(1, 4))):
        at = int(rng.integers(0, n - 40))
        ln = int(rng.integers(2, 40))
        x[at : at + ln] += rng.standard_normal(ln) * np.exp(-np.arange(ln) / max(1, ln / 4)) * rng.uniform(0.2, 0.9)
    return x


def cough_clip(rng: np.random.Generator) -> np.ndarray:
    """A cough-like burst: band-passed noise with a fast attack and a 40-150 ms decay."""
    n = int(rng.uniform(0.15, 0.5) * RATE)
    lo, hi = sorted(rng.uniform(200, 3500, size=2))
    hi = max(hi, lo + 300)
    b, a = butter(2, [lo / (RATE / 2), min(0.99, hi / (RATE / 2))], btype="band")
    env = np.exp(-np.arange(n) / (rng.uniform(0.04, 0.15) * RATE)) * (1 - np.exp(-np.arange(n) / 40))
    x = lfilter(b, a, rng.standard_normal(n)) * env
    pad = rng.standard_normal(int(0.1 * RATE)) * 1e-4
    return random_level(np.concatenate([pad, x, pad]), rng)


def knock_clip(rng: np.random.Generator) -> np.ndarray:
    """2-4 knocks on a door 0.12-0.3 s apart: each a short noise impact exciting a few
    decaying low resonances (the door panel, 70-450 Hz, 8-35 ms decay)."""
    k = int(rng.integers(2, 5))
    spacing = rng.uniform(0.12, 0.3, size=k - 1)
    modes = rng.uniform(70, 450, size=3)
    decays = rng.uniform(0.008, 0.035, size=3)
    ring = int(0.25 * RATE)
    t = np.arange(ring) / RATE
    pad = int(0.1 * RATE)
    n = pad + int(np.sum(spacing) * RATE) + ring + pad
    x = rng.standard_normal(n) * 1e-4
    at = pad
    for i in range(k):
        hit = sum(np.exp(-t / d) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f, d in zip(modes, decays))
        tap = np.zeros(ring)
        tap[:24] = rng.standard_normal(24) * np.exp(-np.arange(24) / 6.0)  # the knuckle's impact
        x[at : at + ring] += (hit + 0.8 * tap) * rng.uniform(0.6, 1.0)
        if i < k - 1:
            at += int(spacing[i] * RATE)
    return x


def sound_clip(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One sound of `kind` (cough | click | knock), float64, arbitrary level."""
    if kind == "cough":
        return cough_clip(rng)
    if kind == "click":
        return click_clip(rng)
    if kind == "knock":
        return knock_clip(rng)
    raise ValueError(f"sound kind must be one of {', '.join(SOUND_KINDS)}, got {kind!r}")
