"""The microphone equaliser (digitd.equalize): it learns a microphone's broad colouring from real
words heard through it, undoes it on what the members hear, and changes nothing before it knows."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from digitd.audio import load_wav
from digitd.config import Config, EqualizeConfig
from digitd.equalize import BINS, TAPS, Equalizer, StreamFilter, correction_db, fir, frame_power, load_reference, minimum_phase_fir, speech_spectrum
from digitd.errors import DigitdError
from digitd.synth import mic_curve, microphone

_F = np.fft.rfftfreq(256, 1 / 8000)
BAND = (_F >= 400) & (_F <= 3300)  # where a 1/3-octave smoothing of the corners can follow them


def _words(fsdd, n: int = 40) -> list[np.ndarray]:
    """Real words of all six FSDD voices (test takes), each between 0.2 s of silence."""
    rng = np.random.default_rng(0)
    paths = sorted(fsdd.glob("*_[0-4].wav"))
    out = []
    for i in rng.choice(len(paths), n, replace=False):
        x = load_wav(paths[i]).astype(np.float64)
        pad = np.zeros(1600)
        out.append(np.concatenate([pad, x / np.abs(x).max() * 0.3, pad]))
    return out


def _learned(words, curve, noise_db: float | None = None) -> np.ndarray:
    """The correction an Equalizer learns from `words` heard through `curve`, in white noise
    `noise_db` under each word's power (its background handed over as the pipeline hands it)."""
    eq = Equalizer(EqualizeConfig(deadband_db=0.0))  # the estimate itself, every dB of it
    rng = np.random.default_rng(1)
    for w in words:
        bg = None
        if noise_db is not None:
            nz = rng.standard_normal(len(w) + 8000) * np.sqrt(np.mean(w[w != 0] ** 2) * 10 ** (-noise_db / 10))
            w, bg = w + nz[: len(w)], nz[len(w):]
        heard = microphone(w, curve)
        eq.observe(heard, None if bg is None else microphone(bg, curve))
    c = eq.curve_db()
    assert c is not None
    return c


def _speechlike(ref_db: np.ndarray, seconds: float = 2.0) -> np.ndarray:
    """Noise shaped like `ref_db`'s spectrum, in bursts with quiet between: frames over the noise
    whose long-term spectrum is the reference's."""
    from scipy.signal import firwin2

    rng = np.random.default_rng(3)
    x = np.convolve(rng.standard_normal(int(seconds * 8000)), firwin2(257, _F / 4000, 10 ** (ref_db / 20)), mode="same")
    x *= (np.arange(len(x)) // 2400) % 2  # 0.3 s on, 0.3 s off
    return x + rng.standard_normal(len(x)) * 1e-5


def _centred_inverse(curve) -> np.ndarray:
    """What undoes `curve` per bin, its mean over 300-3500 Hz at 0 dB (the correction's level)."""
    hz, db = zip(*curve)
    inv = -np.interp(_F, hz, db)
    return inv - inv[(_F >= 300) & (_F <= 3500)].mean()


@pytest.mark.parametrize("name", ["laptop", "dull"])
def test_it_learns_the_inverse_of_a_microphone_from_real_words(fsdd, name):
    words = _words(fsdd)
    flat, coloured = _learned(words, None), _learned(words, mic_curve(name))
    # the same words flat and through the microphone: the difference is the microphone's alone
    got = coloured - flat
    want = np.clip(_centred_inverse(mic_curve(name)), -12, 12)
    got -= got[BAND].mean()
    want -= want[BAND].mean()
    assert np.max(np.abs(got[BAND] - want[BAND])) < 3.0, (np.round(got[BAND], 1), np.round(want[BAND], 1))


def test_noise_handed_over_as_background_does_not_pass_for_the_microphone(fsdd):
    words = _words(fsdd)
    quiet = _learned(words, mic_curve("laptop"))
    noisy = _learned(words, mic_curve("laptop"), noise_db=10.0)
    assert np.max(np.abs(noisy[BAND] - quiet[BAND])) < 3.0


def test_nothing_changes_before_enough_speech_or_when_off(fsdd):
    words = _words(fsdd, 12)
    eq = Equalizer(EqualizeConfig(min_speech_s=3.0))
    heard = [microphone(w, mic_curve("laptop")) for w in words]
    x = heard[0].astype(np.float32)
    for w in heard:
        assert eq.curve_db() is not None or eq.apply(x) is x  # the input itself until it knows
        eq.observe(w)
    assert eq.speech_s >= 3.0 and eq.curve_db() is not None
    y = eq.apply(x)
    assert y.dtype == np.float32 and len(y) == len(x) and not np.array_equal(y, x)

    off = Equalizer(EqualizeConfig(mic=False))
    for w in heard:
        off.observe(w)
    assert off.curve_db() is None and off.apply(x) is x


def test_the_correction_does_not_move_the_word_in_time(fsdd):
    words = _words(fsdd, 20)
    eq = Equalizer(EqualizeConfig())
    for w in words:
        eq.observe(microphone(w, mic_curve("laptop")))
    x = words[0].astype(np.float32)
    y = eq.apply(x)
    lags = np.arange(-40, 41)
    xc = [np.dot(x[40:-40], y[40 + k : len(y) - 40 + k]) for k in lags]
    assert lags[int(np.argmax(xc))] == 0


def test_it_forgets_an_old_microphone(fsdd):
    words = _words(fsdd, 40)
    eq = Equalizer(EqualizeConfig(memory_s=5.0, deadband_db=0.0))
    for w in words[:20]:
        eq.observe(microphone(w, mic_curve("dull")))
    dull = eq.curve_db()
    for w in words[20:]:
        eq.observe(microphone(w, mic_curve("laptop")))
    now, laptop = eq.curve_db(), _learned(words[20:], mic_curve("laptop"))
    assert np.max(np.abs(now[BAND] - laptop[BAND])) < np.max(np.abs(dull[BAND] - laptop[BAND])) / 3


def test_speech_spectrum_counts_only_frames_over_the_noise():
    rng = np.random.default_rng(0)
    hiss = rng.standard_normal(8000) * 1e-3
    assert speech_spectrum(frame_power(hiss), frame_power(hiss).mean(axis=0))[1] == 0
    tone = hiss.copy()
    tone[3000:5000] += np.sin(2 * np.pi * 1000 * np.arange(2000) / 8000)
    s, n = speech_spectrum(frame_power(tone), frame_power(hiss).mean(axis=0))  # 250 ms of tone: 15 frames, and 2 that half hold it
    assert 14 <= n <= 18 and abs(_F[np.argmax(s)] - 1000) < 40 and np.isclose(s.sum(), 1.0)
    assert speech_spectrum(frame_power(np.zeros(100)))[1] == 0  # shorter than a frame


def test_the_shipped_reference_is_a_speech_spectrum():
    ref = load_reference()
    assert ref.shape == (BINS,) and ref.max() == 0.0
    # speech: most of its power under 1 kHz, 10+ dB less at 3 kHz
    assert ref[np.argmin(abs(_F - 500))] > ref[np.argmin(abs(_F - 3000))] + 10


def test_a_broken_reference_is_refused(tmp_path):
    p = tmp_path / "ref.json"
    p.write_text(json.dumps({"rate": 8000, "nperseg": 256, "db": [0.0] * 10}))
    with pytest.raises(DigitdError, match="speech spectrum"):
        load_reference(str(p))
    with pytest.raises(DigitdError, match="cannot read"):
        load_reference(str(tmp_path / "missing.json"))


def test_a_flat_microphone_gets_a_flat_correction():
    ref = load_reference()
    c = correction_db(ref, ref, 12, 12)
    assert np.allclose(c, 0.0, atol=1e-9)
    wobbly = ref + 1.5 * np.sin(np.arange(BINS) / 7.0)  # a flat microphone's estimate wanders 1-2 dB
    eq = Equalizer(EqualizeConfig(min_speech_s=0.0), reference_db=wobbly)
    eq.observe(_speechlike(ref))
    x = np.ones(100, np.float32)
    assert eq.curve_db() is None and eq.apply(x) is x  # within the dead band: nothing applied
    eq = Equalizer(EqualizeConfig(min_speech_s=0.0, deadband_db=0.0), reference_db=wobbly)
    eq.observe(_speechlike(ref))
    assert eq.curve_db() is not None
    lifted = correction_db(ref - 30 * (_F < 250), ref, 12, 6)  # a dead band under 250 Hz: lifted at most 12 dB
    assert lifted.max() <= 12 and lifted.min() >= -6 and lifted[np.argmin(abs(_F - 100))] > 6


def test_the_pipeline_corrects_only_after_it_has_heard_digits(model, fsdd):
    """Members mode: the members hear the correction, the VAD and the endpointer do not."""
    from digitd.pipeline import Pipeline
    from digitd.sources import FileSource

    audio = microphone(np.concatenate(_words(fsdd, 16)), mic_curve("laptop")).astype(np.float32)
    heard: dict[bool, dict[int, np.ndarray]] = {True: {}, False: {}}
    for mic in (True, False):
        cfg = Config()
        cfg.equalize = dataclasses.replace(cfg.equalize, mic=mic, where="members")
        pipe = Pipeline(cfg, model, history=None)
        pipe.on_utterance = lambda u, x, pred, reason, got=heard[mic]: got.setdefault(u.start_sample, np.array(x))
        pipe.run(FileSource(audio, speed="max"))
        if mic:
            assert pipe.equalizer.speech_s >= cfg.equalize.min_speech_s
    on, off = heard[True], heard[False]
    starts = sorted(set(on) & set(off))
    assert len(starts) >= 12  # the VAD and the endpointer hear the input as it came: the same utterances
    assert np.array_equal(on[starts[0]], off[starts[0]])  # the first word, before any digit was heard: as it came
    assert not np.array_equal(on[starts[-1]], off[starts[-1]])  # the last, corrected


def test_the_filter_is_scipys_design_without_scipy_signal():
    from scipy.signal import fftconvolve, firwin2

    from digitd.equalize import convolve, fir

    db = np.clip(_centred_inverse(mic_curve("laptop")), -12, 12)
    ours, theirs = fir(db), firwin2(257, _F / 4000, 10 ** (db / 20))
    assert np.max(np.abs(ours - theirs)) < 0.01 * np.max(np.abs(theirs))
    x = np.random.default_rng(0).standard_normal(3000)
    np.testing.assert_allclose(convolve(x, ours), fftconvolve(x, ours, mode="same"), atol=1e-9)


@pytest.mark.parametrize("where", ["members", "stream"])
def test_the_live_screen_says_how_much_the_microphone_is_corrected(model, fsdd, where):
    import io

    from rich.console import Console

    from digitd.pipeline import Pipeline
    from digitd.sources import FileSource
    from digitd.ui import LiveUI

    audio = microphone(np.concatenate(_words(fsdd, 16)), mic_curve("laptop")).astype(np.float32)
    cfg = Config()
    cfg.equalize = dataclasses.replace(cfg.equalize, where=where)
    p = Pipeline(cfg, model, [], history=None)
    p.run(FileSource(audio, speed="max", name="laptop"))
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=False).print(LiveUI(p, cfg)._header())
    assert p.equalizer.strength_db >= 3 and f"mic eq {p.equalizer.strength_db:.0f} dB" in out.getvalue()


def _run(model, audio, where="stream", speed="max", **kw):
    from digitd.bench import Recorder
    from digitd.pipeline import Pipeline
    from digitd.sources import FileSource

    cfg = Config()
    cfg.equalize = dataclasses.replace(cfg.equalize, where=where, **kw)
    sink = Recorder()
    pipe = Pipeline(cfg, model, [sink], history=None)
    frames: list[np.ndarray] = []
    vad = pipe.vad
    pipe.vad = lambda pcm: (frames.append(pcm), vad(pcm))[1]  # what the VAD hears, frame by frame
    pipe.run(FileSource(audio, speed=speed))
    return pipe, sink.events, np.concatenate(frames)


def test_in_stream_mode_every_stage_hears_the_correction_once_it_is_known(model, fsdd):
    """Stream mode: the VAD, the endpointer and the members hear the corrected stream, from the
    first quiet frame SETTLE_S after the word that completed `min_speech_s`; before it, the stream
    exactly as it came."""
    from digitd.equalize import SETTLE_S

    audio = microphone(np.concatenate(_words(fsdd, 16)), mic_curve("laptop")).astype(np.float32)
    on, _, heard_on = _run(model, audio)
    off, _, heard_off = _run(model, audio, mic=False)
    switches = [at for at, c in on.equalizer._history if c is not None]
    assert switches and on.equalizer.strength_db >= 3
    first = switches[0]
    assert first >= int(SETTLE_S * 8000) and first % 240 == 0  # on a frame
    np.testing.assert_array_equal(heard_on[:first], heard_off[:first])
    after = slice(first + 240, None)  # past the cross-fade
    assert not np.array_equal(heard_on[after], heard_off[after])
    # after the last switch, what the VAD hears is the input through the correction then in force
    last, c = on.equalizer._history[-1]
    tail = slice(last + 240, None)
    ratio = 10 * np.log10(frame_power(heard_on[tail].astype(np.float64)).mean(axis=0) / frame_power(heard_off[tail].astype(np.float64)).mean(axis=0))
    band = (_F >= 300) & (_F <= 3500)
    assert np.max(np.abs(c[band])) >= 3 and np.max(np.abs(ratio[band] - c[band])) < 0.5


def test_a_paced_stream_switches_where_the_file_does(model, fsdd):
    """The worker decides a correction whenever it finishes a word; the stream takes it up
    SETTLE_S later at a quiet frame, and a live pipeline thread waits for a worker running late,
    so a paced (threaded) run switches at the same samples as an unpaced one and reads the same
    digits, even with a worker slower than SETTLE_S."""
    import time

    class Slow:  # the shipped model, 80 ms slower per look: later than SETTLE_S at twice real time
        def __init__(self, m):
            self.m = m

        def __getattr__(self, name):
            return getattr(self.m, name)

        def features(self, x, trimmed=False):
            time.sleep(0.08)
            return self.m.features(x, trimmed=trimmed)

    audio = microphone(np.concatenate(_words(fsdd, 10)), mic_curve("laptop")).astype(np.float32)
    fast, fast_ev, _ = _run(model, audio, min_speech_s=1.0)
    paced, paced_ev, _ = _run(Slow(model), audio, speed=2.0, min_speech_s=1.0)
    assert [at for at, _ in paced.equalizer._history] == [at for at, _ in fast.equalizer._history]
    assert len(fast.equalizer._history) >= 3
    from digitd.events import DigitEvent

    digits = lambda ev: [(e.digit, round(e.start, 3)) for e in ev if isinstance(e, DigitEvent)]
    assert digits(paced_ev) == digits(fast_ev) and len(digits(fast_ev)) >= 6


def test_the_stream_filter_is_the_minimum_phase_twin_of_the_members_filter():
    db = np.clip(_centred_inverse(mic_curve("laptop")), -12, 12)
    h = minimum_phase_fir(db)
    assert len(h) == TAPS
    got = 20 * np.log10(np.abs(np.fft.rfft(h, 256)))
    lin = 20 * np.log10(np.abs(np.fft.rfft(fir(db), 256)))
    band = (_F >= 100) & (_F <= 3900)
    assert np.max(np.abs(got[band] - db[band])) < 0.5 and np.max(np.abs(got[band] - lin[band])) < 0.5
    from scipy.signal import minimum_phase

    theirs = 20 * np.log10(np.abs(np.fft.rfft(minimum_phase(fir(db), half=False), 256)))
    assert np.max(np.abs(got[band] - theirs[band])) < 0.5  # scipy's, without scipy.signal in the daemon
    e = np.cumsum(h**2) / np.sum(h**2)
    assert e[23] > 0.99  # its energy within 3 ms: nothing in the stream is delayed (the linear-phase one: 16 ms)
    x = np.random.default_rng(0).standard_normal(2400)
    f = StreamFilter()
    assert f.process(x[:240].astype(np.float32)) is not None
    f.reset()
    f.set(h)
    y = np.concatenate([f.process(x[i : i + 240].astype(np.float32)) for i in range(0, 2400, 240)])
    np.testing.assert_allclose(y[240:], np.convolve(x, h)[240:2400], atol=1e-5)  # past the first frame's cross-fade


def test_a_swap_is_cross_faded_and_a_gap_forgets_the_past():
    tone = np.sin(2 * np.pi * 500 * np.arange(4800) / 8000).astype(np.float32)
    f = StreamFilter()
    f.set(minimum_phase_fir(np.full(BINS, 0.0)))
    out = [f.process(tone[i : i + 240]) for i in range(0, 2400, 240)]
    f.set(minimum_phase_fir(np.full(BINS, -6.0)))  # half the amplitude
    out += [f.process(tone[i : i + 240]) for i in range(2400, 4800, 240)]
    y = np.concatenate(out)
    assert np.max(np.abs(np.diff(y[2300:2700]))) < 1.1 * np.max(np.abs(np.diff(tone)))  # no step at the swap
    assert 0.45 < np.abs(y[4000:]).max() < 0.55
    f.reset()
    z = f.process(np.zeros(240, np.float32))
    assert np.abs(z).max() == 0.0  # the tone before the gap does not ring on after it
