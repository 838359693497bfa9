"""Deterministic test streams: FSDD TEST-split digits with random pauses, levels and noise.

Used by tests, tuning scripts and `digitd bench`. Truth times are the trimmed word
boundaries (`features.trim_bounds`, the same trim the daemon applies), in seconds.
Audio derived from the Free Spoken Digit Dataset, Zohar Jackson and contributors, CC BY-SA 4.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from digitd import SAMPLE_RATE
from digitd.audio import load_wav
from digitd.errors import DigitdError
from digitd.features import trim_bounds
from digitd.paths import fsdd_dir

TEST_TAKES = range(0, 5)  # FSDD's official test split: takes 0-4
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


@lru_cache(maxsize=4)
def fsdd_test_clips(data_dir: str | None = None) -> tuple[tuple[str, str], ...]:
    """((digit, path), ...) of the TEST split, sorted for determinism."""
    d = Path(data_dir) if data_dir else fsdd_dir()
    out = []
    for p in sorted(d.glob("*.wav")):
        m = _NAME.match(p.name)
        if m and int(m.group(3)) in TEST_TAKES:
            out.append((m.group(1), str(p)))
    if not out:
        raise DigitdError(f"{d}: no FSDD test-split clips ({{digit}}_{{speaker}}_{{0-4}}.wav); the FSDD stream is "
                          "built from them: run scripts/get-data.sh, or set DIGITD_FSDD_DIR")
    return tuple(out)


@dataclass
class Truth:
    digit: str
    start: float
    end: float

    def to_dict(self) -> dict:
        return {"digit": self.digit, "start": round(self.start, 4), "end": round(self.end, 4)}


def colored_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white, pink (1/f power) or brown (1/f^2 power: rumble, traffic, HVAC) noise;
    coloured noise is shaped from 20 Hz up, flat below, no DC."""
    w = rng.standard_normal(n)
    if kind in ("pink", "brown"):
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
        fm = np.maximum(f, 20.0)
        spec = spec / (np.sqrt(fm) if kind == "pink" else fm)
        spec[0] = 0.0
        w = np.fft.irfft(spec, n)
    elif kind != "white":
        raise ValueError(f"noise must be white, pink or brown, got {kind!r}")
    return (w / (np.sqrt(np.mean(w**2)) + 1e-12)).astype(np.float32)


def room_impulse(rt60_s: float, drr_db: float, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room impulse response: the direct path, then a diffuse tail of exponentially
    decaying noise (60 dB down after `rt60_s`) from 2.5 ms on, `drr_db` under the direct sound.
    Statistical (Polack's model), because no measured responses are at hand offline: it gets a
    room's energy decay right, which is what smears one frame of a word into the next."""
    n = max(2, int(rate * rt60_s))
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / max(rt60_s, 1e-3))
    tail[: int(0.0025 * rate)] = 0.0
    tail *= 10 ** (-drr_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] = 1.0
    return tail


def reverberate(x: np.ndarray, h: np.ndarray, tail_s: float = 0.3, rate: int = SAMPLE_RATE) -> np.ndarray:
    """`x` heard through the room `h`, keeping at most `tail_s` of reverberation after it."""
    from scipy.signal import fftconvolve

    y = fftconvolve(np.asarray(x, np.float64), h)
    return y[: len(x) + int(tail_s * rate)]


MICROPHONES = ("flat", "phone", "laptop", "dull", "boomy", "random")
# Named responses, (Hz, dB) corners joined linearly in dB: what a microphone and its housing do
# to everything it hears. phone: a telephone band; laptop: a small capsule, thin below 300 Hz
# with a presence peak; dull: behind cloth or off-axis, the top octave gone; boomy: a talker close
# to a directional microphone (proximity effect).
MIC_CURVES: dict[str, tuple[tuple[float, float], ...]] = {
    "phone": ((0, -40), (100, -30), (200, -15), (300, -3), (400, 0), (3000, 0), (3400, -3), (3700, -15), (4000, -40)),
    "laptop": ((0, -40), (100, -24), (200, -10), (300, -3), (500, 0), (2000, 2), (3000, 8), (3800, 4), (4000, 0)),
    "dull": ((0, 0), (1000, 0), (2000, -6), (3000, -14), (4000, -20)),
    "boomy": ((0, 10), (150, 10), (300, 6), (500, 0), (4000, 0)),
}
MIC_TAPS = 257  # ~31 Hz resolution at 8 kHz: a 300 Hz corner is drawn, not smeared


def mic_curve(kind: str, rng: np.random.Generator | None = None) -> tuple[tuple[float, float], ...] | None:
    """A microphone's response as (Hz, dB) corners; None for "flat". "random": a draw from `rng`
    of what inputs in the wild do: a low cut at 50-400 Hz (12 dB an octave), half the time a top
    rolled off from 2.5-4 kHz (18 dB an octave), and one peak or dip of up to +-8 dB at 0.7-3.5 kHz."""
    if kind == "flat":
        return None
    if kind in MIC_CURVES:
        return MIC_CURVES[kind]
    if kind != "random":
        raise ValueError(f"microphone must be one of {', '.join(MICROPHONES)}, got {kind!r}")
    rng = rng if rng is not None else np.random.default_rng()
    f = np.linspace(0, SAMPLE_RATE / 2, 65)
    db = np.zeros_like(f)
    low = float(np.exp(rng.uniform(np.log(50), np.log(400))))
    db += np.where(f < low, -12 * np.log2(low / np.maximum(f, 1.0)), 0.0)
    if rng.random() < 0.5:
        top = float(rng.uniform(2500, 4000))
        db += np.where(f > top, -18 * np.log2(np.maximum(f, top) / top), 0.0)  # 18 dB an octave
    centre, gain, width = float(np.exp(rng.uniform(np.log(700), np.log(3500)))), float(rng.uniform(-8, 8)), float(rng.uniform(0.5, 1.5))
    db += gain * np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre) / (width / 2)) ** 2)
    return tuple((float(a), float(max(b, -40.0))) for a, b in zip(f, db))


def microphone(x: np.ndarray, curve: tuple[tuple[float, float], ...] | None) -> np.ndarray:
    """`x` as a microphone with response `curve` (`mic_curve`) hears it: a linear-phase FIR
    (scipy.signal.firwin2) applied centred, so nothing moves in time and truth times hold."""
    if curve is None:
        return np.asarray(x, np.float64)
    from scipy.signal import fftconvolve, firwin2

    hz, db = zip(*curve)
    h = firwin2(MIC_TAPS, np.asarray(hz) / (SAMPLE_RATE / 2), 10 ** (np.asarray(db) / 20))
    return fftconvolve(np.asarray(x, np.float64), h, mode="same")


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (tempo and pitch together), by polyphase resampling: training
    copies (train.augment) and the room bench's quicker / slower voices (bench.room_voice_speed)."""
    from scipy.signal import resample_poly

    return resample_poly(x, 100, int(round(100 * factor)))


def make_stream(n_digits: int = 40, seed: int = 0, gap_min_s: float = 0.15, gap_max_s: float = 2.0,
                level_min_db: float = -20.0, level_max_db: float = -3.0, noise: str = "none",
                snr_db: float = 20.0, room_snr_db: float | None = 40.0, lead_s: float = 0.5, tail_s: float = 1.0,
                data_dir: str | None = None, gaps: Sequence[float] | None = None) -> tuple[np.ndarray, list[Truth]]:
    """(float32 8 kHz audio, truth). Each word is a whole clip (with its own background),
    scaled so the word's peak is at a random level in [level_min_db, level_max_db] dBFS;
    pauses between words (trimmed boundary to boundary) are uniform in [gap_min_s,
    gap_max_s]; where pauses are shorter than the clips' own silences these overlap-add.
    A faint pink room tone (`room_snr_db` under the mean speech power; None = off) is
    always added, since a real input is never digital silence. Noise (white|pink) is
    added at `snr_db` relative to the mean power of the speech. `gaps` (n_digits - 1 pauses
    in seconds) replaces the random pauses."""
    rng = np.random.default_rng(seed)
    clips = fsdd_test_clips(data_dir)
    placed: list[tuple[int, np.ndarray]] = []  # (offset of the whole clip, scaled clip)
    truth: list[Truth] = []
    speech_power = []
    pos = int(lead_s * SAMPLE_RATE)  # where the next word (trimmed) starts
    for i in range(n_digits):
        digit, path = clips[rng.integers(len(clips))]
        x = load_wav(path)
        s, e = trim_bounds(x)
        # the whole clip (its own room noise around the word), peak-normalised to a random level
        x = (x / (np.abs(x[s:e]).max() + 1e-9) * 10 ** (rng.uniform(level_min_db, level_max_db) / 20)).astype(np.float32)
        speech_power.append(float(np.mean(x[s:e].astype(np.float64) ** 2)))
        truth.append(Truth(digit, pos / SAMPLE_RATE, (pos + e - s) / SAMPLE_RATE))
        placed.append((pos - s, x))
        pos += e - s
        if i == n_digits - 1:
            gap = tail_s
        else:
            gap = gaps[i] if gaps is not None else rng.uniform(gap_min_s, gap_max_s)
        pos += int(round(gap * SAMPLE_RATE))
    shift = max(0, -min(o for o, _ in placed))  # a long clip lead could start before 0
    total = max(pos, max(o + len(x) for o, x in placed)) + shift
    audio = np.zeros(total, np.float64)
    for o, x in placed:
        audio[o + shift : o + shift + len(x)] += x  # neighbours' silences overlap-add (no speech overlaps)
    if shift:
        truth = [Truth(t.digit, t.start + shift / SAMPLE_RATE, t.end + shift / SAMPLE_RATE) for t in truth]
    p_speech = float(np.mean(speech_power))
    if room_snr_db is not None:  # a quiet room: real inputs are never digital silence
        audio = audio + colored_noise(len(audio), "pink", rng) * np.sqrt(p_speech / 10 ** (room_snr_db / 10))
    if noise != "none":
        audio = audio + colored_noise(len(audio), noise, rng) * np.sqrt(p_speech / 10 ** (snr_db / 10))
    return np.clip(audio, -1.0, 1.0).astype(np.float32), truth


def make_number_stream(lengths: Sequence[int], seed: int = 0, quick_s: tuple[float, float] = (0.2, 0.4),
                       pause_s: tuple[float, float] = (1.4, 2.2), **kw) -> tuple[np.ndarray, list[Truth]]:
    """Numbers spoken as people enter them: quick strings of `lengths[k]` digits (pauses in
    `quick_s`) separated by long pauses (`pause_s`). With `group.pause_ms` between the two
    ranges, the truth grouping is exactly `lengths`. Other arguments go to `make_stream`."""
    rng = np.random.default_rng(seed + 7919)
    gaps: list[float] = []
    for k, n in enumerate(lengths):
        gaps += [float(rng.uniform(*quick_s)) for _ in range(n - 1)]
        if k < len(lengths) - 1:
            gaps.append(float(rng.uniform(*pause_s)))
    return make_stream(int(sum(lengths)), seed=seed, gaps=gaps, **kw)


def noise_stream(seconds: float, kind: str, level_dbfs: float, seed: int = 0) -> np.ndarray:
    """Pure noise at an RMS level in dBFS (for false-accept tests)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    return np.clip(colored_noise(n, kind, rng) * 10 ** (level_dbfs / 20), -1, 1).astype(np.float32)
