"""Endpointer: one VAD-tagged frame in, maybe one utterance out (like silero's VADIterator).

States: silence -> speech -> (trailing) -> silence.
- start: `start_frames` active frames within the last `start_window`; the utterance then
  begins `preroll_ms` before that window, so soft onsets are kept.
- A frame is *active* when webrtcvad calls it voiced AND it is loud enough: above
  `min_level_dbfs`, `floor_snr_db` over the tracked noise floor and, with `split_dips`,
  no more than `dip_db` under the utterance's peak. The level test is what splits
  run-together digits (the VAD bridges 150-300 ms gaps) and what keeps steady noise out.
- end: `hangover_ms` of inactive frames; `max_utterance_ms` force-cuts runaway noise.
- split: at the end, pauses of >= 90 ms more than `valley_db` under the loudest frame,
  with speech on both sides, cut the utterance into words (`valley_splits`).
- drop: fewer than `min_speech_ms` of active frames (clicks), or peak under `min_level_dbfs`.
Emitted audio is trimmed with `features.trim_bounds`, exactly like training clips.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from digitd import SAMPLE_RATE
from digitd.config import EndpointConfig
from digitd.features import frame_db, trim_bounds
from digitd.vad import FrameInfo

DITHER_DB = 50.0
NOISE_WINDOW_S = 3.0  # noise floor = low percentile of frame levels over this window


VALLEY_FRAME = 80  # 10 ms energy contour for valley splitting
VALLEY_MIN_FRAMES = 9  # a pause of >= 90 ms under the valley threshold
VALLEY_SIDE_FRAMES = 10  # with >= 100 ms of louder audio on both sides


def valley_splits(x: np.ndarray, valley_db: float) -> list[int]:
    """Sample indices where to cut `x` between run-together words.

    A cut goes in the middle of every run of >= 90 ms whose 10 ms frames are all more than
    `valley_db` under the loudest frame, when >= 100 ms of louder audio lies on each side.
    Unlike the online test (level vs running peak), this sees both words, so it still splits
    when the pause holds room noise only ~15 dB under the speech.
    """
    db = frame_db(np.asarray(x, dtype=np.float64), VALLEY_FRAME)
    low = db < db.max() - valley_db
    cuts, i, n = [], 0, len(low)
    while i < n:
        if not low[i]:
            i += 1
            continue
        j = i
        while j < n and low[j]:
            j += 1
        if j - i >= VALLEY_MIN_FRAMES and np.sum(~low[:i]) >= VALLEY_SIDE_FRAMES and np.sum(~low[j:]) >= VALLEY_SIDE_FRAMES:
            k = i + int(np.argmin(db[i:j]))
            cuts.append(k * VALLEY_FRAME + VALLEY_FRAME // 2)
        i = j
    return cuts


@dataclass
class Utterance:
    """A trimmed word and where it sits in the stream (sample indices at 8 kHz)."""

    audio: np.ndarray  # float32, trimmed
    start_sample: int  # stream index of audio[0]
    end_sample: int  # stream index one past the last sample
    detected_sample: int  # stream position when the end was decided
    peak_db: float
    forced: bool = False  # cut at max_utterance_ms

    @property
    def duration_s(self) -> float:
        return (self.end_sample - self.start_sample) / SAMPLE_RATE


class Endpointer:
    def __init__(self, cfg: EndpointConfig, frame_ms: int = 30, rate: int = SAMPLE_RATE) -> None:
        self.cfg = cfg
        self.rate = rate
        self.frame_ms = frame_ms
        self.frame_len = rate * frame_ms // 1000
        self.preroll_frames = int(round(cfg.preroll_ms / frame_ms))
        self.hangover_frames = max(1, int(round(cfg.hangover_ms / frame_ms)))
        self.max_frames = max(1, cfg.max_utterance_ms // frame_ms)
        self.min_active = max(1, int(np.ceil(cfg.min_speech_ms / frame_ms)))
        self._levels: deque[float] = deque(maxlen=max(10, int(NOISE_WINDOW_S * 1000 / frame_ms)))
        self._floor = -120.0
        self._nframes = 0
        self.pos = 0  # stream samples consumed
        self.dropped_short = 0
        self.dropped_quiet = 0
        self.forced_cuts = 0
        self._rng = np.random.default_rng(0)
        self._reset_state()

    # -- public -----------------------------------------------------------------------
    @property
    def state(self) -> str:
        if not self._in_speech:
            return "silence"
        return "trailing" if self._silent_run else "speech"

    @property
    def noise_floor_db(self) -> float:
        return self._floor

    @property
    def horizon(self) -> int:
        """Earliest stream sample a word not yet handed out could start at: the start of the
        utterance in progress, else the oldest frame that could become its pre-roll."""
        if self._in_speech:
            return self._start
        return self.pos - len(self._hist) * self.frame_len

    def push(self, frame: np.ndarray, info: FrameInfo) -> list[Utterance]:
        """Feed one frame (float32, `frame_len` samples) with its VAD info; returns the
        utterances it completed (usually none; several when run-together words are split)."""
        self.pos += len(frame)
        self._track_floor(info.level_db)
        if not self._in_speech:
            return self._push_silence(frame, info)
        return self._push_speech(frame, info)

    def flush(self) -> list[Utterance]:
        """End of stream: close a pending utterance as if silence followed."""
        if not self._in_speech:
            self._reset_state()
            return []
        utts = self._finish(forced=False)
        self._reset_state()
        return utts

    def skip(self, n_samples: int) -> None:
        """Audio was lost: advance the clock and forget any half-heard utterance."""
        self.pos += int(n_samples)
        self._reset_state()

    # -- internals --------------------------------------------------------------------
    def _reset_state(self) -> None:
        self._in_speech = False
        self._hist: deque[np.ndarray] = deque(maxlen=self.preroll_frames + self.cfg.start_window)
        self._flags: deque[bool] = deque(maxlen=self.cfg.start_window)
        self._frames: list[np.ndarray] = []
        self._start = 0
        self._active = 0
        self._silent_run = 0
        self._peak = -120.0

    def _track_floor(self, level: float) -> None:
        self._levels.append(level)
        self._nframes += 1
        if self._nframes % 5 == 1:  # cheap: a 100-value partition every 150 ms
            a = np.fromiter(self._levels, dtype=np.float64)
            k = max(0, int(len(a) * 0.1) - 1)
            self._floor = float(np.partition(a, k)[k])

    def _loud(self, level: float, peak: float | None) -> bool:
        c = self.cfg
        if level < c.min_level_dbfs or level < self._floor + c.floor_snr_db:
            return False
        if c.split_dips and peak is not None and level < peak - c.dip_db:
            return False
        return True

    def _push_silence(self, frame: np.ndarray, info: FrameInfo) -> list[Utterance]:
        self._hist.append(frame)
        self._flags.append(info.voiced and self._loud(info.level_db, None))
        if sum(self._flags) < self.cfg.start_frames:
            return []
        self._in_speech = True
        self._frames = list(self._hist)
        self._start = self.pos - len(self._frames) * self.frame_len
        self._active = sum(self._flags)
        self._silent_run = 0
        self._peak = info.level_db
        return []

    def _push_speech(self, frame: np.ndarray, info: FrameInfo) -> list[Utterance]:
        self._frames.append(frame)
        active = info.voiced and self._loud(info.level_db, self._peak)
        if active:
            self._active += 1
            self._silent_run = 0
            self._peak = max(self._peak, info.level_db)
        else:
            self._silent_run += 1
        if self._silent_run >= self.hangover_frames:
            utts = self._finish(forced=False)
            self._reset_state()
            return utts
        if len(self._frames) >= self.max_frames:
            self.forced_cuts += 1
            utts = self._finish(forced=True)
            self._reset_state()
            return utts
        return []

    def _finish(self, forced: bool) -> list[Utterance]:
        if self._active < self.min_active:
            self.dropped_short += 1
            return []
        if self._peak < self.cfg.min_level_dbfs:
            self.dropped_quiet += 1
            return []
        x = np.concatenate(self._frames)
        # Digital silence (exact zeros, e.g. a muted or virtual source) has no counterpart in
        # training clips and wrecks MFCC minima: add a faint fixed-seed hiss DITHER_DB under peak.
        x = x + self._rng.standard_normal(len(x)).astype(np.float32) * np.float32(10 ** ((self._peak - DITHER_DB) / 20))
        cuts = valley_splits(x, self.cfg.valley_db) if self.cfg.split_dips and self.cfg.valley_db > 0 else []
        bounds = [0, *cuts, len(x)]
        out = []
        for a, b in zip(bounds, bounds[1:]):
            s, e = trim_bounds(x[a:b])
            if e - s < self.rate * self.cfg.min_speech_ms // 1000:
                self.dropped_short += 1
                continue
            out.append(Utterance(x[a + s : a + e].astype(np.float32), self._start + a + s, self._start + a + e,
                                 self.pos, self._peak, forced))
        return out
