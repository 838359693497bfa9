"""The talker's level: how loud the person at the microphone has recently been.

Talk in the room (people across it, a television) reaches the classifier as words too, and now
and then one sounds enough like a digit to pass the confidence threshold. The person at the
microphone is nearer, so louder: a word heard in background talk (`Utterance.talk_around`) that
is far under the level of the talker's recent digits must be more confident to be emitted. The
reference forgets old digits (`memory_s`), so a talker who moves away is not held to a level
they no longer speak at for long; it never closes the door, only raises the bar.

A word at the talker's level is his, on the other hand: under steady noise it needs less
confidence, and a word too faint to stand out of the background is kept when the classifier's
strong members agree on it (`near_talker`, classify.near_talker_db).

A stage of its own, fed by the pipeline's classifying thread: `add` each emitted digit,
`reference_db` before deciding the next word.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from digitd import SAMPLE_RATE


class TalkerLevel:
    def __init__(self, words: int = 3, memory_s: float = 60.0, rate: int = SAMPLE_RATE) -> None:
        """`words`: how many recent digits set the level (their median: one loud or quiet word
        does not move it); `memory_s`: digits that ended longer ago than this are forgotten."""
        self.memory = int(memory_s * rate)
        self._recent: deque[tuple[int, float]] = deque(maxlen=max(1, words))

    def add(self, end_sample: int, level_db: float) -> None:
        """An emitted digit: where it ended and its level (`pipeline.peak_db`)."""
        self._recent.append((end_sample, level_db))

    def since_last_s(self, now_sample: int, rate: int = SAMPLE_RATE) -> float | None:
        """Seconds from the end of the last emitted digit to `now_sample` (None: none yet)."""
        return (now_sample - self._recent[-1][0]) / rate if self._recent else None

    def reference_db(self, now_sample: int) -> float | None:
        """The talker's level at `now_sample` (median of the remembered digits), or None when
        no digit is remembered."""
        live = [lv for end, lv in self._recent if now_sample - end < self.memory]
        return float(np.median(live)) if live else None


def under_talker(level_db: float, reference_db: float | None, under_db: float) -> bool:
    """Is a word at `level_db` more than `under_db` under the talker's level (0 = rule off)?"""
    return under_db > 0 and reference_db is not None and level_db < reference_db - under_db


def near_talker(level_db: float, reference_db: float | None, near_db: float) -> bool:
    """Is a word at `level_db` within `near_db` of the talker's level (so his, not the room's)?
    False without a reference or with near_db = 0 (off)."""
    return near_db > 0 and reference_db is not None and level_db >= reference_db - near_db
