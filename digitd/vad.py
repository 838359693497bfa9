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
from dataclasses import dataclass

import math

import numpy as np

from digitd import SAMPLE_RATE

HPF_HZ = 100.0
GAIN_WINDOW_S = 20.0  # the loud end the gain is set from: 95th percentile of this much of frame levels
GAIN_MIN_S = 1.0  # no gain before this much has been heard
GAIN_PERCENTILE = 95
GAIN_EVERY = 5  # frames between gain updates (150 ms: the percentile is a partition of ~670 values)


class HighPass:
    """2nd-order Butterworth high-pass (bilinear transform, as scipy.signal.butter designs it),
    run as a stateful FIR of its impulse response truncated below 1e-9.

    Why not scipy.signal.sosfilt: importing scipy.signal costs ~1 s of cold start and ~50 MB
    of resident memory, more than the rest of the daemon; one np.convolve per frame does the
    same filtering (tests compare it with sosfilt).
    """

    def __init__(self, cutoff_hz: float = HPF_HZ, rate: int = SAMPLE_RATE, taps: int = 512) -> None:
        w0 = 2 * math.pi * cutoff_hz / rate
        alpha = math.sin(w0) / (2 * (1 / math.sqrt(2)))  # Q = 1/sqrt(2): Butterworth
        c = math.cos(w0)
        a0 = 1 + alpha
        b = [(1 + c) / 2 / a0, -(1 + c) / a0, (1 + c) / 2 / a0]
        a = [1.0, -2 * c / a0, (1 - alpha) / a0]
        h = np.zeros(taps)
        x1 = x2 = y1 = y2 = 0.0
        for n in range(taps):  # impulse response, once
            x0 = 1.0 if n == 0 else 0.0
            y0 = b[0] * x0 + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
            h[n] = y0
            x2, x1, y2, y1 = x1, x0, y1, y0
        self.h = h
        self._hist = np.zeros(taps - 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._hist, np.asarray(x, dtype=np.float64)])
        y = np.convolve(buf, self.h, mode="valid")
        self._hist = buf[len(buf) - len(self._hist):]
        return y


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
                 max_gain_db: float = 0.0) -> None:
        """`steady_aggressiveness`: also ask webrtcvad in this mode (FrameInfo.voiced_steady), for
        the endpointer to use while the background is steady noise; None = do not.
        `max_gain_db` > 0: webrtcvad hears quiet input raised by up to this much, so that the
        loud end of the last 20 s sits at `gain_target_db` (0 = as it comes)."""
        import webrtcvad

        if frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms}")
        self._vad = webrtcvad.Vad(int(aggressiveness))
        same = steady_aggressiveness is None or int(steady_aggressiveness) == int(aggressiveness)
        self._steady = None if same else webrtcvad.Vad(int(steady_aggressiveness))
        self.rate = rate
        self.frame_len = rate * frame_ms // 1000
        self._hp = HighPass(HPF_HZ, rate)
        self.gain_target_db = float(gain_target_db)
        self.max_gain_db = float(max_gain_db)
        self._gain_levels: deque[float] = deque(maxlen=max(1, int(GAIN_WINDOW_S * 1000 / frame_ms)))
        self._gain_min = max(1, int(GAIN_MIN_S * 1000 / frame_ms))
        self._gain_db = 0.0
        self._frames = 0

    @property
    def gain_db(self) -> float:
        """The gain webrtcvad hears the input with now (dB, >= 0)."""
        return self._gain_db

    def _update_gain(self, level: float) -> None:
        self._gain_levels.append(level)
        self._frames += 1
        if self.max_gain_db <= 0 or len(self._gain_levels) < self._gain_min or self._frames % GAIN_EVERY:
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
