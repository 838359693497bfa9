"""Augmentation / condition primitives: the SNR, gain and padding they claim, on real audio."""

from dataclasses import replace

import numpy as np
import pytest

from digitd.audio import load_wav
from digitd.features import DEFAULT_PARAMS, extract
from train.augment import AugmentSpec, add_noise, apply_gain, augment_wave, change_speed, make_babble, pad, speech_power
from train.garbage import KINDS, garbage_clips


@pytest.fixture(scope="module")
def clip(fsdd_dir):
    return load_wav(fsdd_dir / "4_lucas_20.wav").astype(np.float64)


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr", [20.0, 5.0])
def test_add_noise_hits_the_snr(clip, fsdd_dir, kind, snr):
    rng = np.random.default_rng(0)
    bab = make_babble([load_wav(p) for p in sorted(fsdd_dir.glob("*_theo_4*.wav"))], 3.0, rng)
    y = add_noise(clip, kind, snr, rng, bab)
    p = speech_power(clip)
    measured = 10 * np.log10(p / np.mean((y - clip) ** 2))
    assert abs(measured - snr) < 0.5


def test_gain_clips_and_pad_lengthens(clip):
    loud = apply_gain(clip, 10.0)
    assert np.max(np.abs(loud)) == pytest.approx(1.0) and np.mean(np.abs(loud) >= 1.0) > 0.001
    padded = pad(clip, 300, 150, 50.0, np.random.default_rng(0))
    assert len(padded) == len(clip) + 2400 + 1200
    assert np.sqrt(np.mean(padded[:2400] ** 2)) < 0.01 * np.sqrt(speech_power(clip))


def test_speed_change_length(clip):
    assert abs(len(change_speed(clip, 1.1)) - len(clip) / 1.1) < 3
    assert abs(len(change_speed(clip, 0.9)) - len(clip) / 0.9) < 3


def test_augment_is_seeded_and_varied(clip):
    spec = AugmentSpec(copies=3, warps=[0.9, 1.1])
    a = augment_wave(clip, spec, np.random.default_rng(5))
    b = augment_wave(clip, spec, np.random.default_rng(5))
    assert len(a) == 2 + 3  # one clean copy per non-1 warp, then the random copies
    for (wa, fa, ca), (wb, fb, cb) in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
        assert fa == fb and ca == cb
    vecs = [extract(w, warp=f) for w, f, _ in a]
    assert all(v.shape == (DEFAULT_PARAMS.dim,) and np.all(np.isfinite(v)) for v in vecs)
    assert len({v.tobytes() for v in vecs}) == len(vecs)


def test_warp_one_is_the_plain_feature(clip):
    np.testing.assert_array_equal(extract(clip, warp=1.0), extract(clip))
    assert not np.allclose(extract(clip, warp=1.15), extract(clip))


def test_garbage_clips_cover_every_kind(clip):
    out = garbage_clips(20, np.random.default_rng(0), [clip])
    assert {k for k, _ in out} == set(KINDS)
    for _, w in out:
        assert len(w) > 100 and np.all(np.isfinite(w)) and np.max(np.abs(w)) <= 1.0
    rev = next(w for k, w in out if k == "reversed")
    np.testing.assert_array_equal(rev, clip[::-1])


def test_aug_kinds_select_the_effects(clip):
    rng = np.random.default_rng(3)
    none = augment_wave(clip, AugmentSpec(copies=2, kinds=[]), rng)
    assert all(np.array_equal(w, clip) and not c for w, _, c in none)
    padded = augment_wave(clip, AugmentSpec(copies=3, kinds=["pad"], pad_ms=[50.0, 300.0], pad_prob=1.0), rng)
    assert all(len(w) > len(clip) + 800 and not c for w, _, c in padded)
    noisy = augment_wave(clip, AugmentSpec(copies=3, kinds=["noise"], noise_prob=1.0, snr_db=[5.0]), rng)
    for w, _, c in noisy:
        assert len(w) == len(clip) and c
        snr = 10 * np.log10(speech_power(clip) / np.mean((w - clip) ** 2))
        assert abs(snr - 5.0) < 0.5


def test_recorded_and_brown_noise_kinds(clip):
    """The CNN's extra kinds: "recorded" adds a slice of the real-background bank it is given
    (and is skipped without one), "brown" is rumble (most of its power under 200 Hz)."""
    rng = np.random.default_rng(1)
    bank = np.sin(2 * np.pi * 440 * np.arange(8000 * 3) / 8000)  # a bank whose slices are easy to recognise
    spec = AugmentSpec(copies=3, kinds=["noise"], noise_prob=1.0, snr_db=[5.0], noise_kinds=["recorded"])
    for w, _, c in augment_wave(clip, spec, rng, recorded=bank):
        n = w - clip
        f = np.abs(np.fft.rfft(n))
        assert c and abs(np.argmax(f) * 8000 / len(n) - 440) < 5
        assert abs(10 * np.log10(speech_power(clip) / np.mean(n**2)) - 5.0) < 0.5
    with pytest.raises(ValueError):  # no bank, no other kind: nothing to draw from
        augment_wave(clip, spec, rng)
    brown = AugmentSpec(copies=2, kinds=["noise"], noise_prob=1.0, snr_db=[0.0], noise_kinds=["brown"])
    for w, _, _ in augment_wave(clip, brown, rng):
        n = w - clip
        p = np.abs(np.fft.rfft(n)) ** 2
        low = p[: int(200 * len(n) / 8000)].sum()
        assert low > 0.5 * p.sum()


def test_clipping_gain_marks_the_copy_corrupted(clip):
    spec = AugmentSpec(copies=6, kinds=["gain"], gain_db=[20.0, 26.0])
    loud = augment_wave(clip, spec, np.random.default_rng(0))
    assert all(c and np.max(np.abs(w)) == 1.0 for w, _, c in loud)
    soft = augment_wave(clip, AugmentSpec(copies=6, kinds=["gain"], gain_db=[-30.0, -10.0]), np.random.default_rng(0))
    assert not any(c for _, _, c in soft)


def test_room_impulse_decays_at_its_rt60_with_its_direct_to_reverberant_ratio():
    from digitd.synth import room_impulse

    for rt60, drr in ((0.3, 6.0), (0.8, -3.0)):
        h = room_impulse(rt60, drr, np.random.default_rng(0))
        assert h[0] == 1.0 and len(h) == int(8000 * rt60)
        assert 10 * np.log10(1.0 / np.sum(h[1:] ** 2)) == pytest.approx(drr, abs=0.01)
        # Schroeder backward integration: the energy left falls 60 dB over rt60 (fit between -5 and -25 dB)
        edc = 10 * np.log10(np.cumsum((h[1:] ** 2)[::-1])[::-1] / np.sum(h[1:] ** 2))
        t = np.arange(len(edc)) / 8000
        sel = (edc < -5) & (edc > -25)
        slope = np.polyfit(t[sel], edc[sel], 1)[0]
        assert -60 / slope == pytest.approx(rt60, rel=0.15)


def test_reverb_is_opt_in_and_rings_on_after_the_word(clip):
    """Recipes without "reverb" draw exactly as before (the shipped model's copies stay reproducible);
    with it, a reverberated copy is longer by the kept tail, marked corrupted, and still the word."""
    base = AugmentSpec(copies=4)
    a = augment_wave(clip, base, np.random.default_rng(5))
    b = augment_wave(clip, AugmentSpec(copies=4, reverb_prob=1.0), np.random.default_rng(5))
    assert all(np.array_equal(x, y) for (x, _, _), (y, _, _) in zip(a, b))
    spec = AugmentSpec(copies=3, kinds=["reverb"], reverb_prob=1.0, rt60_s=[0.6, 0.6], drr_db=[0.0, 0.0])
    for w, _, c in augment_wave(clip, spec, np.random.default_rng(5)):
        assert c and len(w) == len(clip) + int(0.3 * 8000)
        assert np.corrcoef(w[: len(clip)], clip)[0, 1] > 0.5
        tail = w[len(clip):]
        assert 10 * np.log10(np.mean(tail**2) / speech_power(clip)) > -40  # the room still rings after the word


def test_cnn_babble_from_words_is_training_side_talk_not_digits(clip):
    """train.cnn_babble = words: the CNN's babble is built from training-side non-digit words
    (never a dev-slice speaker with --hold-out-dev), 20 s each of 3-6 talkers; "digits" keeps
    the bank it is given; without a words folder the recipe stops with a one-line error."""
    import dataclasses

    from digitd.config import Config
    from pathlib import Path

    from digitd.corpora import available, is_dev, is_unseen
    from digitd.errors import DigitdError
    from train import cli as tcli
    from train.trainer import Recipe

    shared = available()
    if "speech-commands-words" not in shared or "speech-commands-noise" not in shared:
        pytest.skip("needs speech-commands-words and -noise in ../shared")
    cfg = Config()
    digits_bank = np.ones(8000)
    assert tcli.cnn_babble_bank(Recipe(), cfg, digits_bank) is digits_bank
    cfg.train = dataclasses.replace(cfg.train, negatives=f'{shared["speech-commands-words"]},{shared["speech-commands-noise"]}', hold_out_dev=True)
    words = tcli.babble_word_records(cfg)
    digit_names = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", *map(str, range(10))}
    assert len(words) > 1000 and not any(is_dev(r.speaker) or is_unseen(r.speaker) or r.speaker.startswith("noise") for r in words)
    assert not any(Path(r.path).name.split("_")[0] in digit_names for r in words)
    bank = tcli.cnn_babble_bank(Recipe(cnn_babble="words", seed=3), cfg, digits_bank)
    assert len(bank) == 4 * 20 * 8000 and np.all(np.isfinite(bank))
    for k in range(4):  # each talker count's 20 s is unit RMS
        part = bank[k * 160000 : (k + 1) * 160000]
        assert np.sqrt(np.mean(part**2)) == pytest.approx(1.0, rel=1e-6)
    again = tcli.cnn_babble_bank(Recipe(cnn_babble="words", seed=3), cfg, digits_bank)
    assert np.array_equal(bank, again)  # seeded: the same recipe makes the same copies
    cfg.train = dataclasses.replace(cfg.train, negatives=str(shared["speech-commands-noise"]))
    with pytest.raises(DigitdError, match="needs non-digit words"):
        tcli.cnn_babble_bank(Recipe(cnn_babble="words"), cfg, digits_bank)


def test_denoised_copies_hear_the_daemons_subtraction(clip):
    """train.denoise_copies: a steady-noise copy passes through digitd.denoise, with the noise's
    spectrum estimated on more of the same noise, so it is closer to the clean word than the raw
    mix at the same SNR; babble is never subtracted, and a share of 0 draws exactly as before."""
    from digitd.config import DenoiseConfig
    from digitd.denoise import noise_psd, suppress
    from train.augment import add_denoised_noise

    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    raw = add_noise(clip, "white", 5.0, rng_a)
    dn = add_denoised_noise(clip, "white", 5.0, rng_b)
    err = lambda y: float(np.mean((y - clip) ** 2))  # noqa: E731
    assert len(dn) == len(clip) and err(dn) < 0.6 * err(raw)
    # the same subtraction the daemon applies: its estimate is 1 s of noise at the same level
    rng_c = np.random.default_rng(3)
    nz = np.random.default_rng(3).standard_normal(len(clip) + 8000)
    nz = nz / np.sqrt(np.mean(nz**2)) * np.sqrt(speech_power(clip) / 10 ** 0.5)
    d = DenoiseConfig()
    want = suppress((clip + nz[8000:]).astype(np.float32), noise_psd(nz[:8000].astype(np.float32), 99.0), d.over, d.floor_db)
    assert np.allclose(add_denoised_noise(clip, "white", 5.0, rng_c), want, atol=1e-5)

    steady = AugmentSpec(copies=6, kinds=["noise"], noise_kinds=["white", "pink"], snr_db=[5.0], noise_prob=1.0)
    at_snr = speech_power(clip) / 10 ** 0.5  # the raw copies' noise power
    raw_copies = augment_wave(clip, steady, np.random.default_rng(7))
    assert all(abs(err(y) / at_snr - 1) < 0.05 for y, _, _ in raw_copies)
    assert all(err(y) < 0.6 * at_snr for y, _, _ in augment_wave(clip, replace(steady, denoise_prob=1.0), np.random.default_rng(7)))
    babble = replace(steady, noise_kinds=["babble"], denoise_prob=1.0)
    bab = make_babble([clip, clip[::-1]], 3.0, np.random.default_rng(1))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(augment_wave(clip, babble, np.random.default_rng(7), bab),
                                                          augment_wave(clip, replace(babble, denoise_prob=0.0), np.random.default_rng(7), bab)))


def test_microphone_copies_are_opt_in_and_change_no_other_draw(clip):
    """AugmentSpec.mic_prob (train.mic_copies): 0 draws exactly as before; with 1 every copy is the
    copy it would have been, heard through a random microphone (same length, same gain draw, a
    different spectrum), its microphone drawn from a generator spawned off the copies' own."""
    from digitd.synth import mic_curve, microphone

    a = augment_wave(clip, AugmentSpec(copies=4), np.random.default_rng(7))
    b = augment_wave(clip, AugmentSpec(copies=4, mic_prob=0.0), np.random.default_rng(7))
    c = augment_wave(clip, AugmentSpec(copies=4, mic_prob=1.0), np.random.default_rng(7))
    assert all(np.array_equal(x, y) and wx == wy for (x, wx, _), (y, wy, _) in zip(a, b))
    for (x, _, _), (y, _, _) in zip(a, c):
        assert len(x) == len(y) and not np.allclose(x, y)
    spec = AugmentSpec(copies=1, kinds=[], mic_prob=1.0)  # no other effect: the copy is the clip through its microphone
    rng = np.random.default_rng(3)
    (w, _, corrupted), = augment_wave(clip, spec, rng)
    mics = np.random.default_rng(3).spawn(1)[0]
    mics.random()  # the draw that chose to colour this copy
    expected = microphone(np.asarray(clip, np.float64), mic_curve("random", mics))
    np.testing.assert_allclose(w, expected)
    assert not corrupted
