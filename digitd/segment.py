"""Run-together words: split an utterance when the classifier hears two digits in it.

The endpointer cuts at pauses; a fluent "four one" (under ~100 ms between the words) has
none it can see, comes out as one utterance and one digit (measured on FSDD streams with
0-50 ms pauses: 33% of the digits lost). Energy still dips between words, but also inside
one ("se-ven", "si-x"), so a dip alone cannot decide. Here each of the deepest dips is a
candidate cut and the classifier judges both sides: the cut is taken when both sides are
confident digits, more confident than the whole, or both very confident. Pieces are split
again (up to SPLIT_DEPTH levels: four run-together digits).

Pure functions over a classify callable, so the pipeline, tests and tools share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from digitd import SAMPLE_RATE
from digitd.features import frame_db
from digitd.voicing import longest_voiced_ms

FRAME = 80  # 10 ms energy contour
MIN_SIDE_S = 0.2  # each side of a cut holds at least this much audio (a short digit: ~0.2 s)
MIN_DEPTH_DB = 3.0  # a candidate dip lies this far under the louder stretch on each side
CANDIDATES = 2  # the deepest dips tried per utterance (3 found nothing more on the tuning side, for 19% more classifications)
SPLIT_DEPTH = 2  # cut, then cut the pieces once more: up to 4 words per utterance
MIN_PIECE_CONF = 0.6  # both pieces at least this confident to beat the whole
# two halves heard as the same digit are more often one word heard twice than a repeated digit
# ("se-ven" as "7", "7"): they split only when both are about certain
SAME_LABEL_CONF = 0.97


@dataclass
class Piece:
    offset: int  # sample index of audio[0] in the utterance
    audio: np.ndarray
    prediction: Any  # what `classify` returned for this piece (the whole's, when unsplit): .label, .confidence


def cut_candidates(x: np.ndarray, k: int = CANDIDATES) -> list[int]:
    """Sample indices of the `k` deepest energy dips of `x` with MIN_SIDE_S on each side,
    deepest first."""
    db = frame_db(np.asarray(x, dtype=np.float64), FRAME)
    side = int(round(MIN_SIDE_S * SAMPLE_RATE / FRAME))
    if len(db) < 2 * side + 1:
        return []
    sm = np.convolve(db, np.ones(3) / 3, mode="same")
    left_max = np.maximum.accumulate(sm)
    right_max = np.maximum.accumulate(sm[::-1])[::-1]
    out = []
    for i in range(side, len(sm) - side):
        if sm[i] <= sm[i - 1] and sm[i] <= sm[i + 1]:
            depth = min(left_max[i - 1], right_max[i + 1]) - sm[i]
            if depth >= MIN_DEPTH_DB:
                out.append((depth, i))
    out.sort(reverse=True)
    return [i * FRAME + FRAME // 2 for _, i in out[:k]]


def split_words(x: np.ndarray, whole: Any, classify: Callable[[np.ndarray], Any],
                min_s: float, sure: float, min_voiced_ms: float = 0.0, _depth: int = 0) -> list[Piece]:
    """`x` as one or more pieces. `whole` is the classifier's prediction for all of `x` (with
    .label and .confidence); `classify(audio)` predicts a piece. Utterances shorter than
    `min_s` seconds stay whole; a cut is kept when both sides reach MIN_PIECE_CONF and beat
    the whole's confidence, or both reach `sure` (halves with the same label: SAME_LABEL_CONF).
    With `min_voiced_ms`, a cut is only tried when each side has that much continuous pitch
    (`voicing.longest_voiced_ms` at its default range, never narrower than the daemon's own gate):
    cheap, and it spares the classifier."""
    conf = float(whole.confidence)
    if _depth >= SPLIT_DEPTH or len(x) < min_s * SAMPLE_RATE:
        return [Piece(0, x, whole)]

    def good(p: float) -> bool:  # could a side this confident be half of a kept cut?
        return (p >= MIN_PIECE_CONF and p > conf) or p >= sure

    best = None
    for c in cut_candidates(x):
        if min_voiced_ms > 0 and min(longest_voiced_ms(x[:c]), longest_voiced_ms(x[c:])) < min_voiced_ms:
            continue  # two words have two voiced nuclei; a side without one would be rejected anyway
        left = classify(x[:c])
        if not good(float(left.confidence)):
            continue  # the right side cannot save this cut: not worth classifying
        right = classify(x[c:])
        m = min(float(left.confidence), float(right.confidence))
        if left.label == right.label and m < SAME_LABEL_CONF:
            continue
        if good(m) and (best is None or m > best[0]):
            best = (m, c, left, right)
    if best is None:
        return [Piece(0, x, whole)]
    _, c, left, right = best
    head = split_words(x[:c], left, classify, min_s, sure, min_voiced_ms, _depth + 1)
    tail = split_words(x[c:], right, classify, min_s, sure, min_voiced_ms, _depth + 1)
    return head + [Piece(p.offset + c, p.audio, p.prediction) for p in tail]
