"""The numpy high-pass in front of the VAD equals scipy's Butterworth sosfilt, frame by frame."""

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from digitd.audio import load_wav
from digitd.config import load as load_config
from digitd.hear import utterances
from digitd.vad import HighPass, butterworth

SIGNAL = np.random.default_rng(1).standard_normal(8000 * 2)


def framewise(filt, x: np.ndarray, block: int) -> np.ndarray:
    """`filt` run over `x` one block at a time, as the VAD feeds it frames."""
    return np.concatenate([filt(x[i : i + block]) for i in range(0, len(x), block)])


def test_highpass_matches_scipy_butterworth_across_frames():
    x = np.random.default_rng(0).standard_normal(8000 * 3)
    ref = sosfilt(butter(2, 100.0, btype="highpass", fs=8000, output="sos"), x)
    hp = HighPass(100.0, 8000)
    y = framewise(hp, x, 240)
    assert np.max(np.abs(y - ref)) < 1e-9


@pytest.mark.parametrize("block", [1, 7, 80, 1000, len(SIGNAL)])
def test_highpass_carries_its_state_across_any_block_length(block):
    """Odd, tiny and long blocks (long ones go through in pieces) give sosfilt's output too."""
    ref = sosfilt(butter(2, 100.0, btype="highpass", fs=8000, output="sos"), SIGNAL)
    hp = HighPass(100.0, 8000)
    y = framewise(hp, SIGNAL, block)
    assert len(y) == len(SIGNAL)
    assert np.max(np.abs(y - ref)) < 1e-9


def test_highpass_removes_dc_and_keeps_speech_band():
    t = np.arange(8000) / 8000
    hp = HighPass(100.0, 8000)
    y = hp(0.5 + np.sin(2 * np.pi * 1000 * t))
    assert abs(y[4000:].mean()) < 1e-3  # DC gone once the filter settled
    assert abs(np.sqrt(np.mean(y[4000:] ** 2)) - np.sqrt(0.5)) < 0.01  # 1 kHz passes


@pytest.mark.parametrize("cutoff,order", [(120.0, 4), (150.0, 6)])
def test_butterworth_cascade_matches_scipy(cutoff, order):
    ref = sosfilt(butter(order, cutoff, btype="highpass", fs=8000, output="sos"), SIGNAL)
    hp = butterworth(cutoff, order)
    y = framewise(hp, SIGNAL, 240)
    assert np.max(np.abs(y - ref)) < 1e-9


def test_odd_order_is_refused():
    with pytest.raises(ValueError, match="even"):
        butterworth(100.0, 3)


def test_mains_hum_louder_than_the_words_hides_them_from_a_gentle_high_pass_only(fsdd):
    """Twenty FSDD words under 60 Hz hum (and its 120 Hz harmonic) twice as loud as their peaks,
    as from a ground loop: the 2nd-order 100 Hz filter leaves the hum over the words and the
    endpointer finds almost none; the 4th-order 120 Hz one takes it ~24 dB down and finds all."""
    files = sorted(fsdd.glob("*_jackson_0.wav")) + sorted(fsdd.glob("*_theo_0.wav"))
    assert len(files) == 20
    parts = []
    for f in files:
        x = load_wav(f)
        parts += [np.zeros(6400, np.float32), x / np.max(np.abs(x)) * 0.3]
    clean = np.concatenate(parts + [np.zeros(8000, np.float32)])
    t = np.arange(len(clean)) / 8000
    hum = 0.6 * np.sin(2 * np.pi * 60 * t) + 0.18 * np.sin(2 * np.pi * 120 * t)
    audio = (clean + hum + 1e-3 * np.random.default_rng(0).standard_normal(len(clean))).astype(np.float32)
    found = {o: len(utterances(audio, load_config(None, [f"vad.highpass_hz={hz}", f"vad.highpass_order={o}"])))
             for hz, o in [(100, 2), (120, 4)]}
    assert found[4] == 20
    assert found[2] <= 5
