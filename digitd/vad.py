"""Voice activity per frame: a thin wrapper over webrtcvad that also measures the frame level.

webrtcvad separates silence from noise well but speech from noise poorly, so the
endpointer combines its decision with the frame level relative to a tracked noise floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitd import SAMPLE_RATE


@dataclass
class FrameInfo:
    voiced: bool  # webrtcvad's decision
    level_db: float  # mean-square level, dBFS (full-scale sine = -3 dB)


class Vad:
    """One call per frame of int16 samples at 8 kHz (10, 20 or 30 ms)."""

    def __init__(self, aggressiveness: int = 3, frame_ms: int = 30, rate: int = SAMPLE_RATE) -> None:
        import webrtcvad

        if frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms}")
        self._vad = webrtcvad.Vad(int(aggressiveness))
        self.rate = rate
        self.frame_len = rate * frame_ms // 1000

    def __call__(self, frame: np.ndarray) -> FrameInfo:
        if frame.dtype != np.int16 or len(frame) != self.frame_len:
            raise ValueError(f"expected {self.frame_len} int16 samples, got {len(frame)} {frame.dtype}")
        voiced = self._vad.is_speech(frame.tobytes(), self.rate)
        f = frame.astype(np.float32) / 32768.0
        level = 10.0 * float(np.log10(float(np.dot(f, f)) / len(f) + 1e-12))
        return FrameInfo(bool(voiced), level)
