"""Voice activity per frame: a thin wrapper over webrtcvad that also measures the frame level.

webrtcvad separates silence from noise well but speech from noise poorly, so the
endpointer combines its decision with the frame level relative to a tracked noise floor.
Both decisions see the audio through a stateful 100 Hz high-pass (rumble, DC and
handling noise carry no digit information but make frame levels jump); the classifier
still gets the untouched audio, as in training.

webrtcvad's decision depends on the absolute level (its Gaussian models sit at fixed log
energies): words 15 dB quieter than the level it was tuned at are called unvoiced far more
often, and the endpointer then takes them for the background. So webrtcvad hears the frame
raised by a slow gain that brings the loud end of the last 20 s (95th percentile of frame
levels) up to `gain_target_db`; the measured `level_db` stays the true level. A quiet
microphone then gets the decisions a normal one gets; a loud one is never turned down.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import math

import numpy as np

from digitd import SAMPLE_RATE

HPF_HZ = 100.0
MAX_BLOCK = 480  # HighPass: longer input goes through in pieces this long
GAIN_WINDOW_S = 20.0  # the loud end the gain is set from: 95th percentile of this much of frame levels
GAIN_AFTER_MS = 150  # no gain before this much sound has been heard (vad.gain_after_ms)
SILENCE_DB = -100.0  # a frame under this level is digital silence (exact zeros: a device that opens, a muted input), not sound
GAIN_PERCENTILE = 95
GAIN_EVERY = 5  # frames between gain updates (150 ms: the percentile is a partition of ~670 values)


class HighPass:
    """A 2nd-order high-pass section (bilinear transform, as scipy.signal.butter designs it;
    q = 1/sqrt(2) is the 2nd-order Butterworth), run a block at a time in closed form.

    A block's output is linear in the block and in the two state values carried in (direct
    form II transposed): one precomputed (n, n + 2) matrix times [block, state], the impulse
    response as a lower-triangular Toeplitz matrix beside the state's ring; the state carried
    out follows from the block's last two samples. Exact, unlike a truncated FIR, and one BLAS
    product per 30 ms frame (~2x faster than a 512-tap np.convolve here). Why not
    scipy.signal.sosfilt: importing scipy.signal costs ~1 s of cold start and ~50 MB of
    resident memory, more than the rest of the daemon (tests compare this with sosfilt).
    """

    def __init__(self, cutoff_hz: float = HPF_HZ, rate: int = SAMPLE_RATE, q: float = 1 / math.sqrt(2)) -> None:
        """`q` 1/sqrt(2): the 2nd-order Butterworth; other values make the sections of higher
        orders (`butterworth`)."""
        w0 = 2 * math.pi * cutoff_hz / rate
        alpha = math.sin(w0) / (2 * q)
        c = math.cos(w0)
        a0 = 1 + alpha
        self._b = ((1 + c) / 2 / a0, -(1 + c) / a0, (1 + c) / 2 / a0)
        self._a = (-2 * c / a0, (1 - alpha) / a0)  # a1, a2 (a0 = 1)
        self._z = np.zeros(2)  # the state carried from block to block
        self._matrices: dict[int, np.ndarray] = {}

    def _matrix(self, n: int) -> np.ndarray:
        """(n, n + 2): the outputs of a block of n samples from [block, state]; once per block
        length (the daemon's frames all have one)."""
        if n not in self._matrices:
            if len(self._matrices) > 8:
                self._matrices.clear()
            (b0, b1, b2), (a1, a2) = self._b, self._a
            resp = np.zeros((3, n))  # to a unit impulse; to the states (1, 0) and (0, 1) with no input
            for row, (x0, z1, z2) in enumerate(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))):
                for i in range(n):
                    x = x0 if i == 0 else 0.0
                    y = b0 * x + z1
                    z1, z2 = b1 * x - a1 * y + z2, b2 * x - a2 * y
                    resp[row, i] = y
            m = np.zeros((n, n + 2))
            for j in range(n):
                m[j:, j] = resp[0, : n - j]
            m[:, n:] = resp[1:].T
            self._matrices[n] = m
        return self._matrices[n]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        if n > MAX_BLOCK:  # a long signal in frame-sized pieces: the matrix grows as n squared
            return np.concatenate([self(x[i : i + MAX_BLOCK]) for i in range(0, n, MAX_BLOCK)])
        if n == 0:
            return np.zeros(0)
        y = self._matrix(n) @ np.concatenate([x, self._z])
        (_, b1, b2), (a1, a2) = self._b, self._a
        z2_before_last = b2 * x[-2] - a2 * y[-2] if n > 1 else self._z[1]
        self._z = np.array([b1 * x[-1] - a1 * y[-1] + z2_before_last, b2 * x[-1] - a2 * y[-1]])
        return y


def butterworth(cutoff_hz: float, order: int, rate: int = SAMPLE_RATE) -> Callable[[np.ndarray], np.ndarray]:
    """A Butterworth high-pass of even `order` as a cascade of `HighPass` sections (each
    section's Q from the poles' angles, as scipy.signal.butter's sos output pairs them)."""
    if order < 2 or order % 2:
        raise ValueError(f"high-pass order must be an even number >= 2, got {order}")
    sections = [HighPass(cutoff_hz, rate, 1 / (2 * math.sin(math.pi * (2 * k + 1) / (2 * order)))) for k in range(order // 2)]
    if len(sections) == 1:
        return sections[0]

    def run(x: np.ndarray) -> np.ndarray:
        for s in sections:
            x = s(x)
        return x

    return run


@dataclass
class FrameInfo:
    voiced: bool  # webrtcvad's decision
    level_db: float  # mean-square level after the high-pass, dBFS (full-scale sine = -3 dB)
    voiced_steady: bool | None = None  # webrtcvad's decision in the mode for steady noise (None: not asked)
    gain_db: float = 0.0  # the gain webrtcvad heard this frame with (level_db + gain_db: the level it heard)


class Vad:
    """One call per frame of int16 samples at 8 kHz (10, 20 or 30 ms)."""

    def __init__(self, aggressiveness: int = 3, frame_ms: int = 30, rate: int = SAMPLE_RATE,
                 steady_aggressiveness: int | None = None, gain_target_db: float = -27.0,
                 max_gain_db: float = 0.0, highpass_hz: float = HPF_HZ, highpass_order: int = 2,
                 gain_after_ms: int = GAIN_AFTER_MS) -> None:
        """`steady_aggressiveness`: also ask webrtcvad in this mode (FrameInfo.voiced_steady), for
        the endpointer to use while the background is steady noise; None = do not.
        `max_gain_db` > 0: webrtcvad hears quiet input raised by up to this much, so that the
        loud end of the last 20 s sits at `gain_target_db` (0 = as it comes), from the moment
        `gain_after_ms` of sound has been heard (digital silence is not sound). `highpass_hz`,
        `highpass_order`: the Butterworth high-pass in front of webrtcvad and the frame level."""
        import webrtcvad

        if frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms}")
        self._vad = webrtcvad.Vad(int(aggressiveness))
        same = steady_aggressiveness is None or int(steady_aggressiveness) == int(aggressiveness)
        self._steady = None if same else webrtcvad.Vad(int(steady_aggressiveness))
        self.rate = rate
        self.frame_len = rate * frame_ms // 1000
        self._hp = butterworth(highpass_hz, highpass_order, rate)
        self.gain_target_db = float(gain_target_db)
        self.max_gain_db = float(max_gain_db)
        self._gain_levels: deque[float] = deque(maxlen=max(1, int(GAIN_WINDOW_S * 1000 / frame_ms)))
        self._gain_min = max(1, int(gain_after_ms) // frame_ms)
        self._gain_db = 0.0
        self._frames = 0
        self._heard = 0  # frames of sound (not digital silence) so far: the window holds at most its last 20 s

    @property
    def gain_db(self) -> float:
        """The gain webrtcvad hears the input with now (dB, >= 0)."""
        return self._gain_db

    def _update_gain(self, level: float) -> None:
        # A recording that opens on a word must not wait long for the gain: a quiet word in the
        # first second was lost for want of it (stop 50). Digital silence stays out of the window:
        # a device that opens on zeros would otherwise set the gain to its ceiling for what follows.
        if level > SILENCE_DB:
            self._gain_levels.append(level)
            self._heard += 1
        self._frames += 1
        if self.max_gain_db <= 0 or self._heard < self._gain_min or self._frames % GAIN_EVERY:
            return
        a = np.fromiter(self._gain_levels, dtype=np.float64, count=len(self._gain_levels))
        k = int(round((len(a) - 1) * GAIN_PERCENTILE / 100))
        loud = float(np.partition(a, k)[k])
        self._gain_db = min(self.max_gain_db, max(0.0, self.gain_target_db - loud))

    def __call__(self, frame: np.ndarray) -> FrameInfo:
        if frame.dtype != np.int16 or len(frame) != self.frame_len:
            raise ValueError(f"expected {self.frame_len} int16 samples, got {len(frame)} {frame.dtype}")
        f = self._hp(frame.astype(np.float64) / 32768.0)
        gain_db = self._gain_db  # set from the frames before this one
        scale = 32768.0 * (10 ** (gain_db / 20) if gain_db else 1.0)
        hp = np.clip(np.round(f * scale), -32768, 32767).astype(np.int16)
        b = hp.tobytes()
        voiced = self._vad.is_speech(b, self.rate)
        level = 10.0 * float(np.log10(float(np.dot(f, f)) / len(f) + 1e-12))
        self._update_gain(level)
        return FrameInfo(bool(voiced), level, None if self._steady is None else bool(self._steady.is_speech(b, self.rate)),
                         gain_db)
