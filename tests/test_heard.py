"""Training words as the daemon hears them (train/heard.py, digitd/hear.py): the trainer's front end
is the live one, byte for byte, and each utterance gets the truth it lies on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from digitd import SAMPLE_RATE
from digitd.config import Config
from digitd.corpora import available, is_dev, is_unseen
from digitd.hear import denoised, heard, utterances
from digitd.model import OTHER
from digitd.pipeline import Pipeline
from digitd.room import Condition, Item, make_room_stream
from digitd.sources import FileSource
from train.heard import heard_utterances, truth_label

NEEDED = ("speech-commands-digits", "audiomnist-digits", "speech-commands-words", "speech-commands-noise")
needs_corpora = pytest.mark.skipif(not set(NEEDED) <= set(available()),
                                   reason=f"needs {', '.join(NEEDED)} in ../shared (or $DIGITD_SHARED_DIR)")


def _item(kind: str, label: str, start: float, end: float, speaker: str = "s") -> Item:
    return Item(kind, label, start, end, speaker, "x.wav", -30.0)


def test_an_utterance_is_labelled_by_the_one_item_it_lies_on():
    truth = [_item("digit", "4", 1.0, 1.5, "ann"), _item("word", "left", 2.0, 2.4, "bob"),
             _item("background", "", 3.0, 6.0, ""), _item("digit", "7", 6.5, 7.0, "cy"), _item("digit", "1", 7.1, 7.6, "cy")]
    assert truth_label(0.95, 1.55, truth) == ("4", "ann")  # the word with a little room around it
    assert truth_label(1.9, 2.5, truth) == (OTHER, "bob")  # a non-digit word
    assert truth_label(3.5, 4.2, truth) == (OTHER, "")  # background only (the stretch is no item)
    assert truth_label(6.5, 7.6, truth) is None  # two digits run together: no one label
    assert truth_label(1.40, 1.5, truth) is None  # the last fifth of "4": a piece, not the digit
    assert truth_label(0.2, 1.1, truth) is None  # mostly room before the word


@needs_corpora
@pytest.mark.parametrize("cond", [Condition("clean", "none", None), Condition("white_5db", "white", 5.0),
                                  Condition("babble_10db", "babble", 10.0)])
def test_the_trainer_hears_each_utterance_exactly_as_the_daemon(model, cond):
    """Same cut, same denoising, same context as `digitd run` hands the classifier (pieces the
    classifier split in two aside: the trainer keeps whole utterances). The microphone equaliser
    is off here: it is learned from the classifier's decisions, which the trainer does not replay."""
    cfg = Config()
    cfg.equalize = dataclasses.replace(cfg.equalize, mic=False)
    b = dataclasses.replace(cfg.bench, room_words=30, room_background_s=3.0, room_speakers="fit")
    st = make_room_stream(cond, b, espeak=False)
    got: list = []
    pipe = Pipeline(cfg, model, [], history=None)
    pipe.on_utterance = lambda u, audio, pred, reason: got.append((u.start_sample, u.end_sample, np.array(audio)))
    pipe.run(FileSource(st.audio, speed="max", block_ms=cfg.audio.block_ms, ring_seconds=cfg.audio.ring_seconds, name="x"))
    live = {(a, e): x for a, e, x in got}
    mine = [(u.start_sample, u.end_sample, heard(denoised(u, cfg.denoise), cfg.classify.context)) for u in utterances(st.audio, cfg)]
    same = [(a, e) for a, e, _ in mine if (a, e) in live]
    assert len(same) >= 0.9 * len(mine) and len(mine) >= 20, (len(same), len(mine))
    for a, e, (x, trimmed) in mine:
        if (a, e) in live:
            np.testing.assert_array_equal(x, live[a, e])
    trimmed = [t for _, _, (_, t) in mine]
    if cond.background == "babble":  # talk around the word: the trimmed word
        assert np.mean(trimmed) > 0.8
    else:  # a quiet room or steady noise: mostly the word with its pre-roll and hangover
        assert np.mean(trimmed) < 0.2


@needs_corpora
def test_heard_words_come_from_training_voices_only():
    """Only training-side speakers outside the dev slice (hold_out_dev), no espeak-ng voice, and
    the same words for the same seed."""
    cfg = Config()
    cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, room_backgrounds="none,babble", room_snrs_db="10",
                                                             room_words=30, room_background_s=3.0))
    hs = heard_utterances(cfg, 1, hold_out_dev=True, jobs=1)
    assert {h.condition for h in hs} == {"clean", "babble_10db"}
    digits = [h for h in hs if h.label != OTHER]
    assert len(digits) >= 30 and any(h.label == OTHER for h in hs)
    for h in hs:
        assert h.audio.dtype == np.float32 and len(h.audio) >= 0.05 * SAMPLE_RATE
        if h.speaker:
            assert not is_unseen(h.speaker) and not is_dev(h.speaker), h.speaker
    assert all(h.speaker for h in digits)
    assert heard_utterances(cfg, 1, hold_out_dev=True, jobs=1)[0].audio.tobytes() == hs[0].audio.tobytes()  # seeded


@pytest.mark.parametrize("flags, env_empty, phrase", [
    (["--embed", "--embed-head", "--heard-streams", "2"], True, "no training-side clips"),
    (["--heard-streams", "2"], False, "needs --embed --embed-head"),
])
def test_heard_streams_without_their_corpora_or_head_fail_in_one_line_before_training(tmp_path, flags, env_empty, phrase):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    if env_empty:
        env["DIGITD_SHARED_DIR"] = str(tmp_path)  # no corpus there
    r = subprocess.run([sys.executable, "-m", "digitd", "train", *flags, "--out-dir", str(tmp_path / "m")],
                       capture_output=True, text=True, timeout=120, env=env, cwd=root)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitd: error: --heard-streams") and phrase in lines[0], r.stderr
    assert not (tmp_path / "m").exists()  # nothing was trained
