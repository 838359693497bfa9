"""Steady-noise suppression: the word with the room's hiss taken out before it is classified.

Under steady noise close under the word (`Utterance.noise_around`), the endpointer hands out,
with each utterance, the last stretch of background it heard outside utterances
(`Utterance.background`). When that noise held still (the power spectra of its two halves
within `max_change_db` per band: a fan, hum, hiss, not dishes or a tap), its mean power
spectrum is the noise estimate: each STFT bin of the word keeps its power over that estimate
(`over` times the noise subtracted), never less than `floor_db` of what it had, so weak bins are
turned down, not zeroed (no musical tones from holes), and the word comes back through the
inverse STFT at its own length.

Why not train on denoised audio instead: the members already learned noisy copies; the
suppression moves a noisy word toward the clean one they also know, and on isolated unseen
digits that made them surer where they were already right (white noise as loud as the word:
right and accepted 75.0 -> 81.5%, best guess 89.5 -> 90.0%). A noise that changes is not
subtracted: the estimate a second old is then wrong, and on the room bench's real recordings
(1 s clips of different rooms, end to end) subtracting it cost more digits than it won. Talk in
the background is never steady: there nothing is done.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft  # already loaded by python_speech_features; scipy.signal (~47 MB) stays out of the daemon

NPERSEG = 256  # 32 ms at 8 kHz: the noise spectrum's resolution (31 Hz bins)
HOP = 64
MIN_BACKGROUND = 4 * NPERSEG  # fewer background samples than this: no estimate, nothing done
BANDS = 16  # the stillness test compares the halves' spectra in this many bands (8 per-bin estimates are too noisy)
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NPERSEG) / NPERSEG)  # periodic Hann


def _padded(x: np.ndarray) -> np.ndarray:
    """`x` with NPERSEG // 2 zeros either side and zeros after, to whole hops (scipy.signal.stft's
    boundary="zeros", padded=True), float64."""
    x = np.asarray(x, dtype=np.float64)
    half = NPERSEG // 2
    n = len(x) + 2 * half
    extra = (-(n - NPERSEG) % HOP) if n > NPERSEG else NPERSEG - n
    return np.concatenate([np.zeros(half), x, np.zeros(half + extra)])


def _stft(x: np.ndarray) -> np.ndarray:
    """(NPERSEG // 2 + 1, frames) complex spectrum: scipy.signal.stft(x, nperseg=NPERSEG,
    noverlap=NPERSEG - HOP) up to its constant scale (tests check), with numpy framing and scipy.fft."""
    frames = sliding_window_view(_padded(x), NPERSEG)[::HOP]
    return fft.rfft(frames * _WINDOW, axis=1).T


def _overlap_add(frames: np.ndarray) -> np.ndarray:
    """Frames (F, NPERSEG) laid HOP apart and summed: NPERSEG / HOP shifted sums, no Python loop over frames."""
    f, k = frames.shape[0], NPERSEG // HOP
    out = np.zeros((f + k - 1) * HOP)
    for j, chunk in enumerate(np.moveaxis(frames.reshape(f, k, HOP), 1, 0)):
        out[j * HOP : j * HOP + f * HOP] += chunk.reshape(-1)
    return out


def _istft(spec: np.ndarray, n: int) -> np.ndarray:
    """The first `n` samples of the weighted overlap-add inverse of `_stft` (scipy.signal.istft's)."""
    frames = fft.irfft(spec.T, n=NPERSEG, axis=1) * _WINDOW
    norm = _overlap_add(np.broadcast_to(_WINDOW**2, frames.shape))
    half = NPERSEG // 2
    return (_overlap_add(frames) / np.where(norm > 1e-10, norm, 1.0))[half : half + n]


def _power(x: np.ndarray) -> np.ndarray:
    return np.abs(_stft(x)) ** 2


def _change_db(power: np.ndarray) -> float:
    h = power.shape[1] // 2
    a, b = (np.array([v.mean() for v in np.array_split(p[2:-2].mean(axis=1), BANDS)]) for p in (power[:, :h], power[:, h:]))
    return float(np.mean(np.abs(10.0 * np.log10((a + 1e-20) / (b + 1e-20)))))


def change_db(background: np.ndarray) -> float:
    """How much the noise's spectrum moved across `background`: the mean over BANDS bands of
    |level of its first half - level of its second half|, dB. White, pink or brown noise:
    0.3-0.5 (room bench, 90th percentile <= 0.8 at 10 and 5 dB); its real recordings: median 2.3-2.8."""
    return _change_db(_power(background))


def noise_psd(background: np.ndarray | None, max_change_db: float) -> np.ndarray | None:
    """Mean power per STFT bin of background-only audio ((NPERSEG // 2 + 1, 1)), or None when
    there is too little of it (the start of a stream) or it did not hold still."""
    if background is None or len(background) < MIN_BACKGROUND:
        return None
    power = _power(background)  # one STFT for the test and the estimate
    if _change_db(power) > max_change_db:
        return None
    return power.mean(axis=1, keepdims=True)


def suppress(x: np.ndarray, psd: np.ndarray, over: float = 1.0, floor_db: float = -5.0) -> np.ndarray:
    """`x` (float32, its own length) with the noise of power spectrum `psd` subtracted: each
    bin keeps max(1 - over * noise / power, floor) of its power."""
    y = _stft(x)
    power = np.abs(y) ** 2
    gain = np.maximum(1.0 - over * psd / np.maximum(power, 1e-20), 10.0 ** (floor_db / 10.0))
    return _istft(y * np.sqrt(gain), len(x)).astype(np.float32)
