"""The shared feature function on real FSDD audio."""

import numpy as np
import pytest
from scipy.io import wavfile

from digitd.features import DEFAULT_PARAMS, extract, trim


@pytest.fixture(scope="module")
def clip(fsdd_dir):
    rate, x = wavfile.read(fsdd_dir / "7_theo_3.wav")
    assert rate == 8000 and x.dtype == np.int16
    return x


def test_shape_dtype_finite(clip):
    v = extract(clip)
    assert v.shape == (338,) == (DEFAULT_PARAMS.dim,)
    assert v.dtype == np.float32
    assert np.all(np.isfinite(v))


def test_int16_and_float_input_agree(clip):
    a = extract(clip)
    b = extract(clip.astype(np.float32) / 32768.0)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_deterministic(clip):
    np.testing.assert_array_equal(extract(clip), extract(clip.copy()))


def test_roughly_level_invariant(clip):
    x = clip.astype(np.float64) / 32768.0
    loud, quiet = extract(x * 2.0), extract(x * 0.05)
    other = extract(np.random.default_rng(1).standard_normal(len(x)) * 0.1)
    # A level change moves the vector far less than a different signal does.
    assert np.linalg.norm(loud - quiet) < 0.2 * np.linalg.norm(loud - other)


def test_trim_keeps_the_word_drops_padding(clip, fsdd_dir):
    x = clip.astype(np.float64) / 32768.0
    noise = np.random.default_rng(0).standard_normal(8000) * 1e-3  # quiet room noise
    padded = np.concatenate([noise[:4000], x, noise[4000:]])
    t = trim(padded)
    assert len(x) * 0.5 < len(t) < len(x) + 2000
    # the padded clip stays much closer to itself than to another digit of the same speaker
    other = wavfile.read(fsdd_dir / "2_theo_3.wav")[1]
    assert np.linalg.norm(extract(padded) - extract(x)) < 0.5 * np.linalg.norm(extract(other) - extract(x))


def test_empty_and_short_input():
    with pytest.raises(ValueError, match="empty"):
        extract(np.zeros(0, dtype=np.int16))
    with pytest.raises(ValueError, match="NaN"):
        extract(np.array([0.1, np.nan, 0.2]))
    v = extract(np.array([0.5, -0.5, 0.25], dtype=np.float32))  # shorter than one frame: padded
    assert v.shape == (DEFAULT_PARAMS.dim,) and np.all(np.isfinite(v))
    s = extract(np.zeros(800, dtype=np.int16))  # digital silence stays finite
    assert np.all(np.isfinite(s))


def test_weighted_means_move_less_in_noise(fsdd_dir):
    """The v3 energy-weighted mean exists because white noise at 10 dB moves it less than the
    plain global mean, measured in units of the clean clips' spread (~0.8x on FSDD)."""
    import dataclasses

    from digitd.audio import load_wav
    from train.augment import add_noise

    waves = [load_wav(p).astype(np.float64) for p in sorted(fsdd_dir.glob("*_1[0-4].wav"))[::10]]
    assert len(waves) >= 30
    clean = np.array([extract(x) for x in waves])
    noisy = np.array([extract(add_noise(x, "white", 10.0, np.random.default_rng(i))) for i, x in enumerate(waves)])
    sd = clean.std(0) + 1e-6
    d = 2 * DEFAULT_PARAMS.numcep
    n_plain = 4 + DEFAULT_PARAMS.segments

    def shift(block: int) -> float:
        s = slice(block * d, (block + 1) * d)
        return float(np.mean(np.linalg.norm((clean[:, s] - noisy[:, s]) / sd[s], axis=1)))

    assert shift(n_plain) < 0.9 * shift(0)
    # switching the pooling off gives the v2-sized vector, whose head is unchanged
    v2 = dataclasses.replace(DEFAULT_PARAMS, weight_power=0.0, loud_range_db=0.0)
    assert v2.dim == 182 and np.array_equal(extract(waves[0], v2), clean[0][:182])
