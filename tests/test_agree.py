"""The agreement rule (classify.agree_min): when the CNN and the embedding member both name the
predicted digit that surely, neither low confidence nor missing pitch rejects the utterance."""

from __future__ import annotations

import re

import numpy as np
import pytest

from digitd.audio import load_wav
import dataclasses

from digitd.config import ClassifyConfig, Config
from digitd.model import reject_reason
from digitd.pipeline import Pipeline
from digitd.sources import FileSource


def _members(model):
    if model.cnn is None or model.embed is None:
        pytest.skip("the model has no CNN and embedding members (no shipped model)")


def _test_clips(fsdd, n=20):
    paths = [p for p in sorted(fsdd.glob("*.wav")) if int(re.match(r"\d_\w+_(\d+)", p.name)[1]) < 5]
    return paths[:: max(1, len(paths) // n)][:n]


def test_votes_are_each_members_own_best_guess(model, fsdd):
    """`votes` are what the CNN and the embedding member say alone, and the joined
    probabilities are those `probabilities` gives (scoring each member once changed nothing)."""
    _members(model)
    for p in _test_clips(fsdd, 8):
        f = model.features(load_wav(p))
        pred = model.classify(f)
        cnn = model.cnn.proba(f.spec)
        emb = model.embed.utterance_proba(f)[0]
        assert pred.votes["cnn"] == (model.classes[int(np.argmax(cnn))], pytest.approx(float(cnn.max())))
        label = (model.classes + ["other"])[int(np.argmax(emb))]
        assert pred.votes["embed"] == (label, pytest.approx(float(emb.max())))
        np.testing.assert_allclose([pred.probs[c] for c in model.classes], model.probabilities(f), rtol=1e-9)
        assert pred.votes["shipped"] == (pred.label, pytest.approx(pred.confidence))  # no profile: the model itself


def test_agreement_waives_a_rejection_only_when_both_members_are_that_sure(model, fsdd):
    _members(model)
    nothing_is_that_sure = ClassifyConfig(reject_threshold=1.0, min_voiced_ms=0.0, agree_min=0.0)
    n_waived = 0
    for p in _test_clips(fsdd):
        x = load_wav(p)
        pred = model.predict_wave(x)
        assert reject_reason(x, pred, nothing_is_that_sure) == "low_confidence"
        weakest = min(pred.votes["cnn"][1], pred.votes["embed"][1])
        both = pred.votes["cnn"][0] == pred.votes["embed"][0] == pred.label
        rule = dataclasses.replace(nothing_is_that_sure, agree_min=0.5)
        assert (reject_reason(x, pred, rule) is None) == (both and weakest >= 0.5)
        n_waived += reject_reason(x, pred, rule) is None
        if both:  # just over the weaker member's probability: rejected again
            assert reject_reason(x, pred, dataclasses.replace(nothing_is_that_sure, agree_min=min(1.0, weakest + 1e-6))) == "low_confidence"
    assert n_waived >= 15  # FSDD test digits: the members agree on nearly all of them


def test_agreement_lets_no_noise_click_or_cough_through(model):
    """The rule must not undo what the voicing test and the threshold reject in non-speech."""
    from train.garbage import garbage_clips

    _members(model)
    c = Config().classify
    with_rule = dataclasses.replace(c, agree_min=0.7)
    without = dataclasses.replace(c, agree_min=0.0)
    clips = [w for _, w in garbage_clips(60, np.random.default_rng(7), kinds=("noise", "click", "cough"))]
    emitted = [[reject_reason(w, model.predict_wave(w), r) is None for w in clips] for r in (without, with_rule)]
    assert sum(emitted[1]) == sum(emitted[0])


def test_agreement_waives_nothing_when_the_detector_hears_no_speech(model):
    """classify.agree_min_speech: v9's CNN and head both named a synthetic cough "8" (0.92 / 0.79)
    that the digit detector, trained on such sounds, put near 0. Such a cough, scored by the real
    detector, with those two votes: with the floor at 0 the agreement emits it, the floor rejects it.
    The shipped members (v10: three heads averaged) emit none of the 60 sounds with the rule on."""
    from train.garbage import garbage_clips

    _members(model)
    c = dataclasses.replace(Config().classify, agree_min=0.7)
    clips = [w for _, w in garbage_clips(60, np.random.default_rng(7), kinds=("noise", "click", "cough"))]
    preds = [model.predict_wave(w) for w in clips]
    assert all(0.0 <= p.speech <= 1.0 for p in preds)
    assert all(reject_reason(w, p, c) is not None for w, p in zip(clips, preds))
    heard_no_speech = [(w, p) for w, p in zip(clips, preds) if p.speech < c.agree_min_speech]
    assert heard_no_speech
    w, p = heard_no_speech[0]
    sure = dataclasses.replace(p, label="8", votes={"cnn": ("8", 0.92), "embed": ("8", 0.79)})
    assert reject_reason(w, sure, dataclasses.replace(c, agree_min=0.0)) is not None  # rejected without the rule
    assert reject_reason(w, sure, dataclasses.replace(c, agree_min_speech=0.0)) is None  # the agreement alone waives it
    assert reject_reason(w, sure, c) is not None  # the floor is what rejects it


def test_pipeline_emits_agreed_digits_the_threshold_rejects(model, short_stream):
    """Through the daemon's pipeline: with nothing sure enough for the threshold, only the
    agreement rule emits digits, and those are the stream's digits."""
    _members(model)
    path, _, truth = short_stream
    out = {}
    for agree in (0.0, 0.6):
        cfg = Config()
        cfg.classify.reject_threshold = 1.0
        cfg.classify.agree_min = agree
        pipe = Pipeline(cfg, model, [])
        summary = pipe.run(FileSource(path, "max"))
        out[agree] = list(pipe.transcript)
        assert summary.digits == len(out[agree])
    assert out[0.0] == []
    said = iter(t.digit for t in truth)
    assert len(out[0.6]) >= 6 and all(d in said for d in out[0.6])  # in order, a subsequence of what was said
