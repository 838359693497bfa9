"""Steady-noise suppression (digitd/denoise.py, `denoise.*`): what it takes out of a real digit,
which noises it refuses, the background the endpointer hands it, and that the pipeline applies
it only under steady noise. Real FSDD digits; real babble of unseen Speech Commands talkers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from digitd.audio import float_to_int16, load_wav
from digitd.config import Config, EndpointConfig
from digitd.corpora import available
from digitd.denoise import change_db, noise_psd, suppress
from digitd.endpoint import Endpointer
from digitd.pipeline import Pipeline
from digitd.sources import FileSource
from digitd.synth import colored_noise, make_stream
from digitd.vad import Vad

FRAME = 240
CORPORA = ("speech-commands-digits", "audiomnist-digits", "speech-commands-words")


def snr_db(clean: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean**2) / np.sum((x - clean) ** 2)))


@pytest.mark.parametrize("snr", [0.0, 5.0])
def test_suppression_takes_white_noise_out_of_a_real_digit(fsdd, snr):
    """Noise estimated from a separate second of the same hiss; the word comes out >= 2 dB closer
    to the clean recording (measured: 0 -> 3.5 dB at 0 dB, 5.1 -> 8.2 dB at 5 dB), at its own length."""
    x = load_wav(fsdd / "3_george_0.wav").astype(np.float64)
    rng = np.random.default_rng(0)
    nz = rng.standard_normal(len(x) + 8000) * np.sqrt(np.mean(x**2) / 10 ** (snr / 10))
    noisy = (x + nz[: len(x)]).astype(np.float32)
    psd = noise_psd(nz[len(x):], max_change_db=1.0)
    assert psd is not None
    out = suppress(noisy, psd, over=1.5, floor_db=-5.0)
    assert out.dtype == np.float32 and len(out) == len(noisy)
    assert snr_db(x, out) >= snr_db(x, noisy) + 2.0
    # no noise estimate worth the name (over = 0): the word passes unchanged
    assert np.allclose(suppress(noisy, psd, over=0.0), noisy, atol=1e-4)


def test_only_a_noise_that_holds_still_is_estimated():
    rng = np.random.default_rng(1)
    white = rng.standard_normal(8000)
    brown = colored_noise(8000, "brown", rng).astype(np.float64)
    brown *= np.std(white) / np.std(brown)
    assert change_db(white) < 1.0 and change_db(brown) < 1.0
    assert noise_psd(white, 1.0) is not None and noise_psd(brown, 1.0) is not None
    moved = np.concatenate([white[:4000], brown[:4000]])  # same power, another spectrum half-way
    assert change_db(moved) > 5.0 and noise_psd(moved, 1.0) is None
    assert noise_psd(moved, 60.0) is not None  # the knob decides
    assert noise_psd(white[:500], 1.0) is None and noise_psd(None, 1.0) is None  # too little heard yet


def test_the_endpointer_hands_out_background_heard_outside_utterances(fsdd):
    """Each utterance's `background` is stream audio from before its pre-roll, never a word's."""
    audio, truth = make_stream(6, seed=3, noise="white", snr_db=20.0, lead_s=1.5, data_dir=fsdd)
    ep = Endpointer(EndpointConfig(), 30, keep_background_ms=1000)
    vad = Vad(3, 30, steady_aggressiveness=1)
    utts = []
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        f = audio[i : i + FRAME]
        utts += ep.push(f, vad(float_to_int16(f)))
    utts += ep.flush()
    assert len(utts) == len(truth)
    for k, u in enumerate(utts):
        bg = u.background
        assert bg is not None and 0 < len(bg) <= 1020 * 8
        # whole frames of the stream as they were, the latest last, all heard before the
        # utterance's pre-roll and none inside a word (across an earlier word's gap, the
        # frames either side of it)
        at = []
        for j in range(0, len(bg), FRAME):
            f = bg[j : j + FRAME]
            at.append(next(i for i in range(0, len(audio) - FRAME + 1, FRAME) if np.array_equal(audio[i : i + FRAME], f)))
        assert at == sorted(at) and at[-1] + FRAME <= u.start_sample
        for i in at:
            for t in truth:
                assert not (i < int(t.end * 8000) and int(t.start * 8000) < i + FRAME), (k, "a word is in the background")
    ep, vad = Endpointer(EndpointConfig(), 30), Vad(3, 30, steady_aggressiveness=1)  # keeps none by default
    plain = [u for i in range(0, len(audio) - FRAME + 1, FRAME) for u in ep.push(audio[i : i + FRAME], vad(float_to_int16(audio[i : i + FRAME])))]
    assert len(plain) >= len(truth) - 1 and all(u.background is None for u in plain)  # (the last may come only with flush)


def heard_by_pipeline(audio: np.ndarray, model, steady: bool) -> list[tuple[int, np.ndarray, bool, bool]]:
    cfg = Config()
    cfg.denoise = dataclasses.replace(cfg.denoise, steady=steady)
    got = []
    pipe = Pipeline(cfg, model, [])
    pipe.on_utterance = lambda u, heard, pred, reason: got.append((u.start_sample, heard, u.noise_around, u.talk_around))
    pipe.run(FileSource(audio, "max"))
    return got


@pytest.mark.skipif(not set(CORPORA) <= set(available()), reason="needs the Speech Commands / AudioMNIST folders")
def test_the_pipeline_subtracts_steady_noise_and_leaves_talk_alone(model):
    from digitd.room import Condition, make_room_stream

    b = dataclasses.replace(Config().bench, room_words=14, room_background_s=6.0, room_nondigit_share=0.0,
                            room_sound_share=0.0, room_espeak_share=0.0)
    white = make_room_stream(Condition("white_5db", "white", 5.0), b).audio
    off, on = heard_by_pipeline(white, model, False), heard_by_pipeline(white, model, True)
    assert [u[0] for u in off] == [u[0] for u in on]  # the same utterances; only what the classifier hears differs
    quieter = 0
    for (_, a, noise_around, _), (_, c, _, _) in zip(off, on):
        if noise_around:
            edge = slice(0, 480)  # the pre-roll: hiss, hardly any word
            quieter += 10 * np.log10(np.mean(a[edge].astype(np.float64) ** 2) / np.mean(c[edge].astype(np.float64) ** 2)) >= 3.0
        else:
            assert np.array_equal(a, c)
    assert quieter >= len(off) // 2, (quieter, len(off))

    babble = make_room_stream(Condition("babble_10db", "babble", 10.0), b).audio
    off, on = heard_by_pipeline(babble, model, False), heard_by_pipeline(babble, model, True)
    assert len(off) == len(on) and any(u[3] for u in on)
    for (_, a, _, _), (_, c, _, _) in zip(off, on):
        assert np.array_equal(a, c)  # talk is never steady: nothing subtracted


@pytest.mark.parametrize("n", [720, 3360, 4001, 8000])
def test_the_stft_is_scipys_without_importing_it(n):
    """numpy framing + scipy.fft reproduce scipy.signal's stft (up to its constant scale, which the
    gain's ratio cancels) and istft, so the daemon need not load scipy.signal (~47 MB)."""
    from scipy.signal import istft, stft

    from digitd.denoise import HOP, NPERSEG, _WINDOW, _istft, _stft

    x = np.random.default_rng(n).standard_normal(n)
    want = stft(x, nperseg=NPERSEG, noverlap=NPERSEG - HOP)[2]
    got = _stft(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want * _WINDOW.sum(), atol=1e-9)
    np.testing.assert_allclose(_istft(got, n), istft(want, nperseg=NPERSEG, noverlap=NPERSEG - HOP)[1][:n], atol=1e-9)
    np.testing.assert_allclose(_istft(got, n), x, atol=1e-9)


def test_the_daemon_side_never_imports_scipy_signal():
    import subprocess
    import sys
    from pathlib import Path

    # the denoiser and the microphone equaliser (digitd.equalize) at work: both filter without it
    code = ("import sys, numpy as np; import digitd.daemon, digitd.pipeline; from digitd.denoise import noise_psd, suppress; "
            "from digitd.config import EqualizeConfig; from digitd.equalize import Equalizer; "
            "r = np.random.default_rng(0); p = noise_psd(r.standard_normal(8000), 1.0); "
            "y = suppress(r.standard_normal(4000).astype(np.float32), p); "
            "e = Equalizer(EqualizeConfig(min_speech_s=0.5, deadband_db=0.0)); x = r.standard_normal(8000) * np.hanning(8000); "
            "[e.observe(x) for _ in range(3)]; assert e.curve_db() is not None; y = e.apply(y); "
            "print(len(y), 'scipy.signal' in sys.modules); sys.exit(1 if 'scipy.signal' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["4000", "False"]
