"""Faint words (endpoint.faint_words) and the steady-noise bar (classify.steady_reject_threshold).

A word that does not stand `word_over_bg_db` out of the background's loud end was always dropped
as the room's; a digit said 5-10 dB quieter than the last into babble sits right there. With
`faint_words = "agreed"` the endpointer hands it on marked `faint`, and the pipeline keeps it only
when the CNN and the embedding member agree on a digit and it is at the talker's level
(`classify.near_talker_db` of his recent digits). Run on a real babble room stream of
unseen speakers through the shipped model, once each way."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from digitd.audio import load_wav
from digitd.config import ClassifyConfig, Config
from digitd.corpora import available
from digitd.events import DigitEvent
from digitd.model import agreed, reject_reason
from digitd.pipeline import peak_db
from recorded import run_recorded

CORPORA = ("speech-commands-digits", "audiomnist-digits", "speech-commands-words")
needs_corpora = pytest.mark.skipif(not set(CORPORA) <= set(available()),
                                   reason=f"needs {', '.join(CORPORA)} in ../shared (or $DIGITD_SHARED_DIR)")


@needs_corpora
def test_faint_words_are_kept_only_when_the_members_agree(model):
    """The endpointer's decisions do not change: the faint pieces the classifier now sees are
    exactly the pieces "drop" dropped as background (same count, same spans). Of them, only
    those both strong members name surely are emitted, and on this stream that finds digits
    the "drop" run lost."""
    from digitd.room import Condition, make_room_stream

    base = Config()
    b = dataclasses.replace(base.bench, room_words=40, room_background_s=10.0, room_level_step_db=10.0, seed=3)
    st = make_room_stream(Condition("babble_10db", "babble", 10.0), b)
    drop = dataclasses.replace(base, endpoint=dataclasses.replace(base.endpoint, faint_words="drop"))
    keep = dataclasses.replace(base, endpoint=dataclasses.replace(base.endpoint, faint_words="agreed"))
    p_drop, ev_drop, rows_drop = run_recorded(drop, model, st.audio)
    p_keep, ev_keep, rows_keep = run_recorded(keep, model, st.audio)

    assert not any(u.faint for u, _, _ in rows_drop)
    dropped = sorted((a, z) for a, z, kind in p_drop.endpointer.drops if kind == "background")
    assert dropped and p_drop.faint_dropped == 0
    assert p_keep.endpointer.dropped_background == 0  # handed on instead
    kept = [(u, pred, reason) for u, pred, reason in rows_keep if u.faint]
    faint_spans = sorted([(u.start_sample, u.end_sample) for u, _, _ in kept]
                         + [(a, z) for a, z, kind in p_keep.endpointer.drops if kind == "background"])
    assert faint_spans == dropped
    assert p_drop.dropped_background == len(dropped)
    assert p_keep.dropped_background == p_keep.faint_dropped == len(dropped) - len(kept)
    c = keep.classify
    assert kept and all(agreed(pred, c.agree_min, c.agree_min_speech) for _, pred, _ in kept)
    # ...and each at the talker's level (within near_talker_db of the digits emitted before it)
    # and within faint_within_s of the last of them
    emitted = []
    for u, pred, reason in rows_keep:
        if u.faint:
            live = [lv for end, lv in emitted[-c.talker_words:] if u.start_sample - end < c.talker_memory_s * 8000]
            assert live and peak_db(u.audio) >= float(np.median(live)) - c.near_talker_db
            assert u.start_sample - emitted[-1][0] < c.faint_within_s * 8000  # soon after his last digit
        if reason is None:
            emitted.append((u.end_sample, peak_db(u.audio)))

    truth = [t for t in st.truth if t.kind == "digit"]
    found = [u for u, pred, reason in kept if reason is None
             and any(t.start < u.end_sample / 8000 and t.end > u.start_sample / 8000 and t.label == pred.label for t in truth)]
    assert found, "the stream holds quiet digits under the babble that both members name"
    n_drop = sum(isinstance(e, DigitEvent) for e in ev_drop)
    assert sum(isinstance(e, DigitEvent) for e in ev_keep) > n_drop


def test_steady_noise_has_its_own_bar(model, fsdd):
    """Under steady noise close under a word at the talker's level (`steady_bar`: the pipeline
    knows his level) the bar is `steady_reject_threshold`; elsewhere `reject_threshold`, also
    under steady noise alone. Without the agreement waiver."""
    clips = [p for p in sorted(fsdd.glob("*.wav")) if int(re.match(r"\d_\w+_(\d+)", p.name)[1]) < 5][::60][:5]
    c = ClassifyConfig(reject_threshold=1.0, steady_reject_threshold=0.0, min_voiced_ms=0.0,
                       steady_min_voiced_ms=0.0, agree_min=0.0)
    for p in clips:
        x = load_wav(p)
        pred = model.predict_wave(x)
        assert reject_reason(x, pred, c) == "low_confidence"
        assert reject_reason(x, pred, c, noise_around=True) == "low_confidence"
        assert reject_reason(x, pred, c, noise_around=True, steady_bar=True) is None
        swapped = dataclasses.replace(c, reject_threshold=0.0, steady_reject_threshold=1.0)
        assert reject_reason(x, pred, swapped, noise_around=True) is None
        assert reject_reason(x, pred, swapped, noise_around=True, steady_bar=True) == "low_confidence"


@needs_corpora
def test_the_steady_bar_moves_only_steady_noise_words_at_the_talkers_level(model):
    """White noise 5 dB, the voice stepping +-10 dB: with the steady bar at the general one (off)
    and at its default, the same utterances are cut; the words that change are low-confidence
    rejections that become digits, each heard in steady noise close under it (`noise_around`),
    at or over the lower bar, and within near_talker_db of the digits emitted before it."""
    from digitd.room import Condition, make_room_stream

    base = Config()
    b = dataclasses.replace(base.bench, room_words=40, room_background_s=10.0, room_level_step_db=10.0, seed=0)
    st = make_room_stream(Condition("white_5db", "white", 5.0), b)
    c = base.classify
    off = dataclasses.replace(base, classify=dataclasses.replace(c, steady_reject_threshold=c.reject_threshold))
    _, _, rows_off = run_recorded(off, model, st.audio)
    _, _, rows_on = run_recorded(base, model, st.audio)
    span = lambda u: (u.start_sample, u.end_sample)  # noqa: E731
    assert [span(u) for u, _, _ in rows_on] == [span(u) for u, _, _ in rows_off]
    emitted, moved = [], 0
    for (u, pred, reason), (_, _, was) in zip(rows_on, rows_off):
        if reason != was:
            assert was == "low_confidence" and reason is None
            assert u.noise_around and c.steady_reject_threshold <= pred.confidence < c.reject_threshold
            live = [lv for end, lv in emitted[-c.talker_words:] if u.start_sample - end < c.talker_memory_s * 8000]
            assert live and peak_db(u.audio) >= float(np.median(live)) - c.near_talker_db
            moved += 1
        if reason is None:
            emitted.append((u.end_sample, peak_db(u.audio)))
    assert moved, "the stream should hold digits the lower bar lets through"


def test_cnn_vote_is_the_vote_classify_records(model, fsdd):
    """`cnn_vote` is the convolutional member's vote as `classify` records it: the shortcut
    the pipeline takes on faint words reads the same number."""
    for p in sorted(fsdd.glob("*.wav"))[::300]:
        x = load_wav(p)
        assert model.cnn_vote(x) == model.predict_wave(x).votes["cnn"]


@needs_corpora
def test_faint_words_the_cnn_turns_down_skip_the_full_classification(model, monkeypatch):
    """A faint word the convolutional member does not name surely is dropped before the full
    classification (`Pipeline._cnn_may_agree`): the same events and dropped pieces as classifying
    it in full and asking `agreed`, with fewer full classifications."""
    from digitd.pipeline import Pipeline
    from digitd.room import Condition, make_room_stream

    base = Config()
    b = dataclasses.replace(base.bench, room_words=40, room_background_s=10.0, room_level_step_db=10.0, seed=3)
    st = make_room_stream(Condition("babble_10db", "babble", 10.0), b)
    full = []
    features = model.features
    monkeypatch.setattr(model, "features", lambda x, **kw: full.append(1) or features(x, **kw))
    p_on, ev_on, rows_on = run_recorded(base, model, st.audio)
    n_on = len(full)
    full.clear()
    monkeypatch.setattr(Pipeline, "_cnn_may_agree", lambda self, heard, trimmed: True)  # every faint word in full
    p_off, ev_off, rows_off = run_recorded(base, model, st.audio)
    n_off = len(full)

    key = lambda e: (e.kind, getattr(e, "digit", getattr(e, "best", None)), getattr(e, "confidence", None),  # noqa: E731
                     getattr(e, "start", None), getattr(e, "end", None))
    assert [key(e) for e in ev_on] == [key(e) for e in ev_off]
    assert list(p_on.endpointer.drops) == list(p_off.endpointer.drops)
    assert p_on.faint_dropped == p_off.faint_dropped > 0
    assert n_on < n_off, "the stream's faint words should include some the CNN turns down"
