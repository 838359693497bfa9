"""Training words as the daemon hears them: room streams of training-side voices, cut by the live front end.

Why: the members learned from clips (a whole word, noise mixed over it), but the daemon hands
them what its endpointer cut out of a stream: under white noise only the word's loudest
100-200 ms, under babble the trimmed word with talk in it, after a level step a word 10 dB
under the last. Those are the words they were least sure of (most of the room bench's deleted
digits were heard and rejected as low confidence). Here the room scenario's generator
(digitd/room.py, its `room_*` knobs) builds streams from TRAINING-side speakers only (without the
dev slice for a --hold-out-dev model; no espeak-ng voice: its voices there are the evaluation
ones), digitd/hear.py cuts and hears them exactly as `digitd run` does, and each utterance is
labelled by the truth it overlaps: the digit, OTHER (a non-digit word, a sound, background), or
dropped when it straddles two items. The daemon's microphone equaliser (digitd/equalize.py) is not
applied: it is learned from the decisions a stream's words got, and these streams are heard through
no microphone, where its dead band leaves what the members hear mostly as it came.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from digitd import SAMPLE_RATE
from digitd.errors import DigitdError
from digitd.hear import denoised, heard, utterances
from digitd.model import OTHER
from train.parallel import map_tasks

SEED0 = 1000  # stream seeds SEED0, SEED0 + 1, ...: never the bench's own (0, 1, 2 ...)
MIN_SHARE = 0.5  # an utterance is an item's when at least this share of it lies on that item
MIN_DIGIT_SHARE = 0.3  # ... and, for a digit, it covers at least this share of the digit
MAX_STRAY = 0.2  # ... and at most this share of it lies on other items


@dataclass
class Heard:
    """One utterance as the classifier hears it, with its truth."""

    audio: np.ndarray  # float32 at 8 kHz: the context or the trimmed word (`trimmed`)
    trimmed: bool
    label: str  # "0".."9" or OTHER
    speaker: str  # who said it ("" for background and sounds): out-of-speaker folds group by it
    condition: str  # the room condition, e.g. "babble_5db"

    def without_audio(self) -> "Heard":
        """Its label and groups alone: all a head's fit reads once the windows are computed
        (train.embed_head.heard_windows), so that 20 seeds' audio (0.49 GB for v11's 27,775 utterances) is not held through the fits."""
        return replace(self, audio=np.zeros(0, np.float32))


def truth_label(start: float, end: float, truth: Sequence[Any]) -> tuple[str, str] | None:
    """(label, speaker) of the utterance [start, end) s against the stream's truth items, or None
    when it is no one item's (two words run together, or a piece of a word)."""
    length = max(end - start, 1e-9)
    over = [(min(end, t.end) - max(start, t.start), t) for t in truth if t.kind != "background"]
    over = [(o, t) for o, t in over if o > 0]
    if not over:
        return OTHER, ""  # background only
    o, t = max(over, key=lambda p: p[0])
    stray = sum(p[0] for p in over) - o
    if o < MIN_SHARE * length or stray > MAX_STRAY * length:
        return None
    if t.kind == "digit":
        return (t.label, t.speaker) if o >= MIN_DIGIT_SHARE * (t.end - t.start) else None
    return OTHER, t.speaker


def _stream_task(shared: tuple[Any, Any, str | None], item: tuple[int, Any]) -> list[Heard]:
    """One (seed, condition) stream, cut, heard and labelled."""
    from digitd.room import make_room_stream

    cfg, bench, root = shared
    seed, cond = item
    st = make_room_stream(cond, replace(bench, seed=seed), root, espeak=False)
    out = []
    for u in utterances(st.audio, cfg):
        lab = truth_label(u.start_sample / SAMPLE_RATE, u.end_sample / SAMPLE_RATE, st.truth)
        if lab is None:
            continue
        audio, trimmed = heard(denoised(u, cfg.denoise), cfg.classify.context)
        out.append(Heard(np.asarray(audio, np.float32), trimmed, lab[0], lab[1], cond.name))
    return out


def _bench(cfg: Any, hold_out_dev: bool) -> Any:
    """The bench's room knobs with training-side voices: without the dev slice for a --hold-out-dev model."""
    return replace(cfg.bench, room_speakers="fit" if hold_out_dev else "train")


def check_heard(cfg: Any, *, hold_out_dev: bool, root: str | None = None) -> None:
    """Fail in one line, before any training, when the streams cannot be built (a corpus or a
    training-side clip missing, a bad bench.room_* knob)."""
    from digitd.room import RoomError, conditions, require_corpora

    bench = _bench(cfg, hold_out_dev)
    try:
        require_corpora(bench, conditions(bench), root)
    except RoomError as e:
        raise DigitdError(f"--heard-streams: {e}") from None


def heard_utterances(cfg: Any, streams: int, *, hold_out_dev: bool, root: str | None = None, jobs: int = 2) -> list[Heard]:
    """Utterances of `streams` seeds x every room condition (bench.room_backgrounds x
    bench.room_snrs_db), training-side voices only (`hold_out_dev`: without the dev slice)."""
    from digitd.room import conditions

    bench = _bench(cfg, hold_out_dev)
    items = [(SEED0 + s, c) for s in range(streams) for c in conditions(bench)]
    got = map_tasks(_stream_task, items, shared=(cfg, bench, root), jobs=jobs, label="heard room streams")
    return [h for g in got for h in g]
