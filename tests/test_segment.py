"""Run-together words (digitd/segment.py): fluent strings split into their digits, single words
stay whole. Real FSDD recordings and the real model throughout."""

from __future__ import annotations

import dataclasses

import numpy as np

from digitd import SAMPLE_RATE
from digitd.audio import load_wav
from digitd.config import Config
from digitd.features import trim_bounds
from digitd.pipeline import Pipeline
from digitd.scoring import score
from digitd.segment import MIN_SIDE_S, cut_candidates, split_words
from digitd.sources import FileSource
from digitd.synth import make_stream


def _word(fsdd, name: str) -> np.ndarray:
    x = load_wav(fsdd / name)
    s, e = trim_bounds(x)
    return x[s:e]


def test_deepest_dip_is_the_join_of_two_fluent_words(fsdd):
    a, b = _word(fsdd, "4_jackson_0.wav"), _word(fsdd, "1_theo_0.wav")
    join = len(a) + int(0.02 * SAMPLE_RATE)
    x = np.concatenate([a, np.zeros(join - len(a), np.float32), b])
    x = x + np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * 1e-4
    cuts = cut_candidates(x)
    assert cuts, "no candidate cut in two words with 20 ms between them"
    assert abs(cuts[0] - join) < 0.06 * SAMPLE_RATE
    side = int(MIN_SIDE_S * SAMPLE_RATE)
    assert all(side - 80 <= c <= len(x) - side + 80 for c in cuts)


def test_two_fluent_digits_come_out_as_both(model, fsdd):
    a, b = _word(fsdd, "4_jackson_0.wav"), _word(fsdd, "1_theo_0.wav")
    x = np.concatenate([a, np.zeros(int(0.02 * SAMPLE_RATE), np.float32), b])
    cl = model.predict_wave
    pieces = split_words(x, cl(x), cl, 0.4, 0.9)
    assert [p.prediction.label for p in pieces] == ["4", "1"]
    assert pieces[0].offset == 0 and abs(pieces[1].offset - len(a)) < 0.08 * SAMPLE_RATE
    # the pieces tile the utterance
    assert sum(len(p.audio) for p in pieces) == len(x)


def test_single_words_stay_whole(model, fsdd):
    cl = model.predict_wave
    names = sorted(p.name for p in fsdd.glob("*_[0-4].wav"))[::3]  # 100 test-split clips, every digit and speaker
    split = []
    for n in names:
        x = _word(fsdd, n)
        whole = cl(x)
        pieces = split_words(x, whole, cl, 0.4, 0.9)
        if len(pieces) > 1:
            split.append(n)
        else:
            assert pieces[0].prediction is whole and pieces[0].audio is x
    assert len(split) <= 1, split
    # shorter than min_s: never tried
    x = _word(fsdd, "7_jackson_0.wav")
    assert len(split_words(x, cl(x), lambda _: (_ for _ in ()).throw(AssertionError("classified")), 10.0, 0.9)) == 1


class _Collect:
    def __init__(self) -> None:
        self.events: list = []

    def handle(self, e) -> None:
        self.events.append(e)


def _run(model, audio, cfg: Config):
    sink = _Collect()
    Pipeline(cfg, model, [sink]).run(FileSource(audio, speed="max", block_ms=cfg.audio.block_ms,
                                                ring_seconds=cfg.audio.ring_seconds, name="fluent"))
    return sink.events


def test_pipeline_splits_fluent_strings_and_keeps_spaced_ones(model, fsdd):
    fluent, truth = make_stream(24, seed=3, gap_min_s=0.0, gap_max_s=0.06)
    on = Config()
    off = dataclasses.replace(on, classify=dataclasses.replace(on.classify, split_min_ms=0))
    ev_on, ev_off = _run(model, fluent, on), _run(model, fluent, off)
    s_on, s_off = score(ev_on, truth), score(ev_off, truth)
    assert s_on.correct >= s_off.correct + 3, (s_on, s_off)
    assert s_on.der < s_off.der
    digits = [e for e in ev_on if e.kind == "digit"]
    assert all(a.end <= b.start + 1e-9 for a, b in zip(digits, digits[1:])), "split words overlap or run backwards"
    # spaced digits (>= 0.3 s apart): splitting changes nothing
    spaced, _ = make_stream(12, seed=4, gap_min_s=0.3, gap_max_s=1.0)
    a = [(e.kind, getattr(e, "digit", None)) for e in _run(model, spaced, on)]
    b = [(e.kind, getattr(e, "digit", None)) for e in _run(model, spaced, off)]
    assert a == b


def test_a_side_without_pitch_is_not_classified(model, fsdd):
    """A word followed by a noise burst: with the voicing rule the cut is never tried (the burst
    would be rejected as unvoiced anyway), so the classifier is not asked about its pieces."""
    a = _word(fsdd, "4_jackson_0.wav")
    burst = np.random.default_rng(1).standard_normal(int(0.3 * SAMPLE_RATE)).astype(np.float32) * 0.3 * np.abs(a).max()
    x = np.concatenate([a, np.zeros(int(0.03 * SAMPLE_RATE), np.float32), burst])
    whole = model.predict_wave(x)
    assert cut_candidates(x), "the burst must offer a cut, or this test proves nothing"
    calls = []

    def counting(y):
        calls.append(len(y))
        return model.predict_wave(y)

    split_words(x, whole, counting, 0.4, 0.9, min_voiced_ms=0.0)
    assert calls, "without the voicing rule the cut is tried"
    calls.clear()
    assert len(split_words(x, whole, counting, 0.4, 0.9, min_voiced_ms=45.0)) == 1
    assert calls == []
