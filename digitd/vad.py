"""Voice activity per frame: a thin wrapper over webrtcvad that also measures the frame level.

webrtcvad separates silence from noise well but speech from noise poorly, so the
endpointer combines its decision with the frame level relative to a tracked noise floor.
Both decisions see the audio through a stateful 100 Hz high-pass (rumble, DC and
handling noise carry no digit information but make frame levels jump); the classifier
still gets the untouched audio, as in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi

from digitd import SAMPLE_RATE


HPF_HZ = 100.0


@dataclass
class FrameInfo:
    voiced: bool  # webrtcvad's decision
    level_db: float  # mean-square level after the high-pass, dBFS (full-scale sine = -3 dB)


class Vad:
    """One call per frame of int16 samples at 8 kHz (10, 20 or 30 ms)."""

    def __init__(self, aggressiveness: int = 3, frame_ms: int = 30, rate: int = SAMPLE_RATE) -> None:
        import webrtcvad

        if frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms}")
        self._vad = webrtcvad.Vad(int(aggressiveness))
        self.rate = rate
        self.frame_len = rate * frame_ms // 1000
        self._sos = butter(2, HPF_HZ, btype="highpass", fs=rate, output="sos")
        self._zi = sosfilt_zi(self._sos) * 0.0

    def __call__(self, frame: np.ndarray) -> FrameInfo:
        if frame.dtype != np.int16 or len(frame) != self.frame_len:
            raise ValueError(f"expected {self.frame_len} int16 samples, got {len(frame)} {frame.dtype}")
        f, self._zi = sosfilt(self._sos, frame.astype(np.float64) / 32768.0, zi=self._zi)
        hp = np.clip(np.round(f * 32768.0), -32768, 32767).astype(np.int16)
        voiced = self._vad.is_speech(hp.tobytes(), self.rate)
        level = 10.0 * float(np.log10(float(np.dot(f, f)) / len(f) + 1e-12))
        return FrameInfo(bool(voiced), level)
