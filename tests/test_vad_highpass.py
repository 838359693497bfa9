"""The numpy high-pass in front of the VAD equals scipy's Butterworth sosfilt, frame by frame."""

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from digitd.vad import HighPass

SIGNAL = np.random.default_rng(1).standard_normal(8000 * 2)


def test_highpass_matches_scipy_butterworth_across_frames():
    x = np.random.default_rng(0).standard_normal(8000 * 3)
    ref = sosfilt(butter(2, 100.0, btype="highpass", fs=8000, output="sos"), x)
    hp = HighPass(100.0, 8000)
    y = np.concatenate([hp(x[i : i + 240]) for i in range(0, len(x), 240)])
    assert np.max(np.abs(y - ref)) < 1e-9


@pytest.mark.parametrize("block", [1, 7, 80, 1000, len(SIGNAL)])
def test_highpass_carries_its_state_across_any_block_length(block):
    """Odd, tiny and long blocks (long ones go through in pieces) give sosfilt's output too."""
    ref = sosfilt(butter(2, 100.0, btype="highpass", fs=8000, output="sos"), SIGNAL)
    hp = HighPass(100.0, 8000)
    y = np.concatenate([hp(SIGNAL[i : i + block]) for i in range(0, len(SIGNAL), block)])
    assert len(y) == len(SIGNAL)
    assert np.max(np.abs(y - ref)) < 1e-9


def test_highpass_removes_dc_and_keeps_speech_band():
    t = np.arange(8000) / 8000
    hp = HighPass(100.0, 8000)
    y = hp(0.5 + np.sin(2 * np.pi * 1000 * t))
    assert abs(y[4000:].mean()) < 1e-3  # DC gone once the filter settled
    assert abs(np.sqrt(np.mean(y[4000:] ** 2)) - np.sqrt(0.5)) < 0.01  # 1 kHz passes
