"""Microphones (digitd.synth.mic_curve / microphone): what the room bench's `room_mic` and the
trainer's `mic_copies` hear everything through. Measured on noise, the response is the curve."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from digitd import SAMPLE_RATE
from digitd.config import BenchConfig
from digitd.synth import MIC_CURVES, MICROPHONES, mic_curve, microphone


def _response_db(curve, at_hz):
    """The gain in dB at each frequency, measured as output over input power on white noise."""
    x = np.random.default_rng(0).standard_normal(SAMPLE_RATE * 20)
    f, p_in = welch(x, SAMPLE_RATE, nperseg=1024)
    _, p_out = welch(microphone(x, curve), SAMPLE_RATE, nperseg=1024)
    r = 10 * np.log10(p_out / p_in)
    return [float(np.interp(h, f, r)) for h in at_hz]


def test_the_config_offers_exactly_the_microphones_there_are():
    import dataclasses

    field = {f.name: f for f in dataclasses.fields(BenchConfig)}["room_mic"]
    assert tuple(field.metadata["choices"]) == MICROPHONES


def test_flat_is_the_input_itself():
    x = np.random.default_rng(1).standard_normal(4000)
    assert mic_curve("flat") is None
    np.testing.assert_array_equal(microphone(x, None), x)


@pytest.mark.parametrize("name", sorted(MIC_CURVES))
def test_a_named_microphone_has_its_drawn_response(name):
    corners = [(hz, db) for hz, db in MIC_CURVES[name] if 150 <= hz <= 3700]  # away from the band's edges
    got = _response_db(MIC_CURVES[name], [hz for hz, _ in corners])
    for (hz, want), have in zip(corners, got):
        assert have == pytest.approx(want, abs=2.0), f"{name} at {hz} Hz"


def test_the_phone_band_loses_the_lows_and_keeps_the_middle():
    low, mid, high = _response_db(mic_curve("phone"), [120, 1000, 3900])
    assert low < -15 and abs(mid) < 1 and high < -20


def test_a_microphone_moves_nothing_in_time():
    """Applied centred (linear phase): a click comes out where it went in, so truth times hold."""
    x = np.zeros(4000)
    x[2000] = 1.0
    for name in MICROPHONES[1:]:
        y = microphone(x, mic_curve(name, np.random.default_rng(2)))
        assert int(np.argmax(np.abs(y))) == 2000 and len(y) == len(x)


def test_random_microphones_are_seeded_bounded_and_differ():
    a = mic_curve("random", np.random.default_rng(5))
    assert a == mic_curve("random", np.random.default_rng(5))
    draws = [mic_curve("random", np.random.default_rng(s)) for s in range(40)]
    assert len(set(draws)) == 40
    for d in draws:
        db = np.array([v for _, v in d])
        hz = np.array([h for h, _ in d])
        assert db.max() <= 8.5 and db.min() >= -40
        assert db[hz < 40].max() < -3  # every one cuts the lowest band
        assert np.abs(db[(hz > 500) & (hz < 700)]).max() <= 8.5


def test_an_unknown_microphone_is_refused():
    with pytest.raises(ValueError, match="microphone must be one of"):
        mic_curve("tin-can")
