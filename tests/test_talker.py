"""The talker's level (digitd/talker.py) and the rule that uses it: a word heard in background
talk far under the talker's recent digits must be more confident to be emitted (reason
`background_talk` otherwise). The rule runs on a room stream of unseen speakers under real
babble, once on and once off, through the real pipeline and the shipped model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from digitd import SAMPLE_RATE
from digitd.config import Config
from digitd.corpora import available
from digitd.events import DigitEvent, RejectedEvent
from digitd.model import agreed
from digitd.pipeline import peak_db
from digitd.talker import TalkerLevel, near_talker, under_talker
from recorded import run_recorded

CORPORA = ("speech-commands-digits", "audiomnist-digits", "speech-commands-words")
needs_corpora = pytest.mark.skipif(not set(CORPORA) <= set(available()),
                                   reason=f"needs {', '.join(CORPORA)} in ../shared (or $DIGITD_SHARED_DIR)")


def test_the_level_is_the_median_of_the_recent_digits_and_forgets_old_ones():
    t = TalkerLevel(words=3, memory_s=10.0)
    assert t.reference_db(0) is None
    for end, lv in ((1, -20.0), (2, -40.0), (3, -22.0)):
        t.add(end * SAMPLE_RATE, lv)
    assert t.reference_db(4 * SAMPLE_RATE) == -22.0  # one quiet word does not pull it down
    t.add(5 * SAMPLE_RATE, -30.0)  # only the last three count: -40, -22, -30
    assert t.reference_db(6 * SAMPLE_RATE) == -30.0
    # at 12.5 s the digit that ended at 2 s is older than 10 s: median of -22 and -30
    assert t.reference_db(int(12.5 * SAMPLE_RATE)) == -26.0
    assert t.reference_db(16 * SAMPLE_RATE) is None  # all forgotten: no reference, no rule
    assert t.since_last_s(16 * SAMPLE_RATE) == 11.0  # the last digit ended at 5 s, forgotten or not
    assert TalkerLevel().since_last_s(SAMPLE_RATE) is None


def test_under_talker_needs_a_reference_and_the_margin():
    assert under_talker(-31.0, -24.0, 6.0)
    assert not under_talker(-29.0, -24.0, 6.0)
    assert not under_talker(-60.0, None, 6.0)
    assert not under_talker(-60.0, -24.0, 0.0)  # 0 = off


@needs_corpora
def test_background_talk_rejections_are_words_the_rule_names_and_nothing_else_moves(model):
    """Babble 10 dB with the words' levels stepping +-10 dB: with the rule off, no word is
    rejected as background talk; with it on (at a bar every word under it must clear), the
    words it rejects are exactly digits the run without it emitted, each heard in talk, under
    the bar, without the two strong members agreeing, and `talk_under_db` under the median of
    the three digits emitted before it; every other event is the same."""
    from digitd.room import Condition, make_room_stream

    base = Config()
    b = dataclasses.replace(base.bench, room_words=40, room_background_s=10.0, room_level_step_db=10.0, seed=3)
    st = make_room_stream(Condition("babble_10db", "babble", 10.0), b)
    bar = 0.9
    off = dataclasses.replace(base, classify=dataclasses.replace(base.classify, talk_under_db=0.0, talk_threshold=bar))
    on = dataclasses.replace(base, classify=dataclasses.replace(base.classify, talk_threshold=bar))
    _, ev_off, rows_off = run_recorded(off, model, st.audio)
    _, ev_on, rows_on = run_recorded(on, model, st.audio)
    assert not any(r == "background_talk" for _, _, r in rows_off)

    span = lambda e: (round(e.start, 4), round(e.end, 4))  # noqa: E731
    words_off = {span(e): e for e in ev_off if isinstance(e, (DigitEvent, RejectedEvent))}
    words_on = {span(e): e for e in ev_on if isinstance(e, (DigitEvent, RejectedEvent))}
    assert words_on.keys() == words_off.keys()  # the same utterances and pieces
    moved = [k for k in words_on if type(words_on[k]) is not type(words_off[k])
             or getattr(words_on[k], "reason", None) != getattr(words_off[k], "reason", None)]
    assert moved, "the stream should hold words of the room's talk that the rule rejects"
    for k in moved:
        assert isinstance(words_off[k], DigitEvent)
        assert isinstance(words_on[k], RejectedEvent) and words_on[k].reason == "background_talk"
    # each rejection checked against the rule, recomputed from what the run emitted before it
    c = on.classify
    emitted = []  # (end sample, level) of digits the run with the rule emitted, in order
    checked = 0
    for u, pred, reason in rows_on:
        level = peak_db(u.audio)
        if reason == "background_talk":
            live = [lv for end, lv in emitted[-c.talker_words:] if u.start_sample - end < c.talker_memory_s * SAMPLE_RATE]
            assert u.talk_around and pred.confidence < bar
            assert not agreed(pred, c.agree_min, c.agree_min_speech)
            assert live and level < float(np.median(live)) - c.talk_under_db
            checked += 1
        elif reason is None:
            emitted.append((u.end_sample, level))
    assert checked == len(moved)


def test_near_talker_needs_a_reference_and_the_margin():
    assert near_talker(-29.0, -24.0, 6.0)
    assert near_talker(-30.0, -24.0, 6.0)  # the margin itself still counts as near
    assert not near_talker(-31.0, -24.0, 6.0)
    assert not near_talker(-10.0, None, 6.0)  # no remembered digit: nobody to be near
    assert not near_talker(-24.0, -24.0, 0.0)  # 0 = off
