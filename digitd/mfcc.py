"""The parts of python_speech_features that digitd computes features with, in numpy alone.

Why not the library: `import python_speech_features` runs `from scipy.fftpack import dct`,
which imports scipy.fft: ~20 MB of resident memory and ~0.1 s of cold start for the daemon,
for one 26-point DCT per frame (here a small matrix product). The other steps are the
library's own numpy code, step for step (same framing, window, FFT, filterbank, floors), so
the features equal its `mfcc`, `logfbank` and `delta` to float64 rounding
(tests/test_features.py compares them). Filterbanks, the window and the DCT matrix are built
once per parameter set instead of on every call, and `delta` is vectorised (the library loops
over frames in Python).
"""

from __future__ import annotations

import decimal
import math
from functools import lru_cache

import numpy as np

EPS = np.finfo(float).eps  # python_speech_features' floor for zero energies before the log


def round_half_up(x: float) -> int:
    """python_speech_features.sigproc.round_half_up (frame lengths in samples)."""
    return int(decimal.Decimal(x).quantize(decimal.Decimal("1"), rounding=decimal.ROUND_HALF_UP))


def hz2mel(hz: np.ndarray | float) -> np.ndarray | float:
    return 2595 * np.log10(1 + hz / 700.0)


def mel2hz(mel: np.ndarray | float) -> np.ndarray | float:
    return 700 * (10 ** (mel / 2595.0) - 1)


@lru_cache(maxsize=16)
def filterbank(nfilt: int, nfft: int, samplerate: int, lowfreq: float = 0, highfreq: float | None = None) -> np.ndarray:
    """python_speech_features.get_filterbanks: (nfilt, nfft // 2 + 1) triangles (read-only: cached)."""
    highfreq = highfreq or samplerate / 2
    if highfreq > samplerate / 2:
        raise ValueError("highfreq is greater than samplerate/2")
    melpoints = np.linspace(hz2mel(lowfreq), hz2mel(highfreq), nfilt + 2)
    bins = np.floor((nfft + 1) * mel2hz(melpoints) / samplerate)
    fb = np.zeros([nfilt, nfft // 2 + 1])
    for j in range(nfilt):
        for i in range(int(bins[j]), int(bins[j + 1])):
            fb[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(int(bins[j + 1]), int(bins[j + 2])):
            fb[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    fb.flags.writeable = False
    return fb


@lru_cache(maxsize=4)
def _hamming(n: int) -> np.ndarray:
    w = np.hamming(n)
    w.flags.writeable = False
    return w


@lru_cache(maxsize=4)
def dct_matrix(n: int, k: int) -> np.ndarray:
    """(n, k): x @ it = scipy.fftpack.dct(x, type=2, norm="ortho")[..., :k]."""
    i = np.arange(n)[:, None]
    d = np.cos(np.pi * np.arange(k)[None, :] * (2 * i + 1) / (2 * n))
    d *= np.where(np.arange(k) == 0, math.sqrt(1.0 / n), math.sqrt(2.0 / n))
    d.flags.writeable = False
    return d


def power_frames(signal: np.ndarray, samplerate: int, winlen: float, winstep: float, nfft: int, preemph: float,
                 hamming: bool) -> np.ndarray:
    """Pre-emphasis, framing (zero-padded to whole frames) and the power spectrum (frames, nfft // 2 + 1):
    sigproc.preemphasis + framesig + powspec."""
    sig = np.append(signal[0], signal[1:] - preemph * signal[:-1])
    frame_len, frame_step = round_half_up(winlen * samplerate), round_half_up(winstep * samplerate)
    slen = len(sig)
    n = 1 if slen <= frame_len else 1 + int(math.ceil((1.0 * slen - frame_len) / frame_step))
    padded = np.concatenate((sig, np.zeros((int((n - 1) * frame_step + frame_len) - slen,))))
    idx = np.arange(frame_len)[None, :] + np.arange(0, n * frame_step, frame_step)[:, None]
    frames = padded[idx]
    if hamming:
        frames = frames * _hamming(frame_len)
    return 1.0 / nfft * np.square(np.absolute(np.fft.rfft(frames, nfft)))


def fbank(pspec: np.ndarray, fb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(filterbank energies, frame energies), zeros floored at EPS: python_speech_features.fbank."""
    energy = np.sum(pspec, 1)
    energy = np.where(energy == 0, EPS, energy)
    feat = np.dot(pspec, fb.T)
    return np.where(feat == 0, EPS, feat), energy


def lifter(cepstra: np.ndarray, L: int = 22) -> np.ndarray:
    if L <= 0:
        return cepstra
    lift = 1 + (L / 2.0) * np.sin(np.pi * np.arange(cepstra.shape[1]) / L)
    return lift * cepstra


def mfcc_from_power(pspec: np.ndarray, fb: np.ndarray, numcep: int, ceplifter: int) -> np.ndarray:
    """python_speech_features.mfcc after the power spectrum, with appendEnergy=True and the given filterbank."""
    feat, energy = fbank(pspec, fb)
    feat = np.log(feat) @ dct_matrix(fb.shape[0], numcep)
    feat = lifter(feat, ceplifter)
    feat[:, 0] = np.log(energy)
    return feat


def logfbank(signal: np.ndarray, samplerate: int, winlen: float, winstep: float, nfilt: int, nfft: int,
             lowfreq: float = 0, highfreq: float | None = None, preemph: float = 0.97) -> np.ndarray:
    """python_speech_features.logfbank (rectangular window, as the library's default)."""
    pspec = power_frames(signal, samplerate, winlen, winstep, nfft, preemph, hamming=False)
    return np.log(fbank(pspec, filterbank(nfilt, nfft, samplerate, lowfreq, highfreq))[0])


def delta(feat: np.ndarray, n: int) -> np.ndarray:
    """python_speech_features.delta: regression over +-n frames, edges repeated."""
    if n < 1:
        raise ValueError("N must be an integer >= 1")
    t = len(feat)
    padded = np.pad(feat, ((n, n), (0, 0)), mode="edge")
    out = np.zeros_like(feat, dtype=np.result_type(feat, np.float64))
    for i in range(1, n + 1):
        out += i * (padded[n + i : n + i + t] - padded[n - i : n - i + t])
    return out / (2 * sum(i * i for i in range(1, n + 1)))
