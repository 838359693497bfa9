"""Endpointer: one VAD-tagged frame in, maybe one utterance out (like silero's VADIterator).

States: silence -> speech -> (trailing) -> silence.
- start: `start_frames` active frames within the last `start_window`; the utterance then
  begins `preroll_ms` before that window, so soft onsets are kept.
- A frame is *active* when webrtcvad calls it voiced AND it is loud enough: above
  `min_level_dbfs` (at the VAD's input, after its gain), `floor_snr_db` over the tracked noise floor, with `background_gate`
  `speech_over_bg_db` over the background's loud end (below), and, with `split_dips`,
  no more than `dip_db` under the utterance's peak. The level test is what splits
  run-together digits (the VAD bridges 150-300 ms gaps) and what keeps steady noise out.
- background: the noise floor (10th percentile) says where silence is; babble is
  speech, so it passes webrtcvad and the floor test. Its loud end (90th percentile of the
  levels heard outside utterances over `background_s`) is what the talker at the
  microphone rises above and background talk does not: with `background_gate`, frames must
  be over it to count as speech (babble stops opening utterances and stops running them
  on past the word) and every word's loudest 90 ms must be `word_over_bg_db` over it.
- onsets: the frames that open an utterance were heard in silence and joined the background's
  levels; under steady noise, when the utterance opens within 300 ms of the last one's end (a
  fluent talker), those within 20 dB of the background's median are taken back out
  (`onset_is_speech`), or his own onsets become its loud end. `cold_steady_db` (off by
  default): while the window is young, an even quiet end is steady.
- steady noise (the background's 90th percentile within STEADY_SPREAD_DB of its median):
  webrtcvad tells it from speech poorly in either mode, the level tests do the work, so the
  VAD's lenient `vad.steady_aggressiveness` decision is used (it misses fewer word frames),
  and the level margins are `steady_floor_snr_db` / `steady_word_over_bg_db`: levels that move
  1-2 dB need no 4 dB margin, and words under the noise need every dB.
- late: under talk in the background (not steady noise), frames more than `late_ms` into an
  utterance count as speech only `late_over_bg_db` over the background's loud end. A digit is
  mostly said by then; babble that passes the 0 dB test kept utterances open past the word
  (up to the cut), and the digit came out that much later.
- end: `hangover_ms` of inactive frames; `max_utterance_ms` force-cuts runaway noise.
- split: at the end, pauses of >= 90 ms more than `valley_db` under the loudest frame,
  with speech on both sides, cut the utterance into words (`valley_splits`).
- drop: fewer than `min_speech_ms` of active frames (clicks), peak under `min_level_dbfs`,
  or (each word) not standing out of the background, or trimmed shorter than `min_speech_ms`
  (not under steady noise close under the word, where the trim keeps only its loudest part).
  With `faint_words = "agreed"` a word that does not stand out is handed on marked `faint`
  instead: the pipeline keeps it only at the talker's level, soon after his last digit, and
  when the classifier's two strong members agree on it.
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
# The background's loud end ("bg"): BG_PERCENTILE of the frame levels heard outside utterances
# over the last `background_s`, capped at BG_SPREAD_DB over their median and BG_OVER_FLOOR_DB
# over the noise floor. Measured on the room bench's streams (seed 0): babble of 4 talkers spreads
# 5-7 dB from median to 90th percentile, steady and recorded noises 1-3 dB; a wider spread is a
# fast talker's own onsets caught in short pauses (uncapped, the 90th percentile sat at -25 dBFS
# over a -64 dBFS room and 22% of a 0.15-0.3 s-gap digit stream was dropped). Babble's loud end
# lies 11-23 dB (10th-90th percentile) over the 3 s floor; when the background stops, the floor
# follows within a second while the window would hold the old loud end for ~7 s, deaf to a talker
# quieter than it (the 25 dB cap: heard 0.5 s after 20 s of babble stopped, not 7 s).
BG_PERCENTILE = 90
BG_SPREAD_DB = 10.0
BG_OVER_FLOOR_DB = 25.0
# talk in the background close enough under the word to be heard in its pre-roll and hangover, or
# steady noise close enough to mask its pitch: the word's peak frame within this of the background's
# loud end (babble 20 dB: ~20 dB; white 10 dB: 6-20 dB; a quiet room: 35+)
TALK_MARGIN_DB = 20.0
STEADY_SPREAD_DB = 3.0  # steady noise: white/pink 0.7-1.3 dB, recorded noise 1.4-2.4, brown 2-4.4; babble never under 4.8
BG_SCARCE = 0.5  # cut_is_background = "scarce": a cut teaches the background while fewer than this share of its window was heard outside utterances
# cut_is_background = "crowd": in the stream's first background_s, unless the background is steady noise, a cut
# teaches the background when its frames (after the pre-roll) look like a crowd, not one talker: fewer than CROWD_DIPS frames CROWD_DIP_DB
# under their median and frame-to-frame level steps under CROWD_STEP_DB (RMS). One talker's level dips
# between syllables and words; four overlapping talkers' does not (stop 26 measured both on fluent FSDD
# cuts and training-side babble cuts; stop 48's measurements of the mode: config.toml)
CROWD_DIPS = 3
CROWD_DIP_DB = 10.0
CROWD_STEP_DB = 4.0
BG_MIN_FRAMES = 20  # fewer background frames than this (600 ms) give no background level yet
TOP_FRAMES = 3  # a word's level = mean of its loudest 3 frames (90 ms, a vowel nucleus)
FLUENT_FRAMES = 10  # onset_is_speech = "fluent": an utterance opening this soon (300 ms) after the last one ended
DROPS_KEPT = 4096  # Endpointer.drops: the latest this-many dropped pieces

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
    forced: bool = False  # cut at max_utterance_ms
    context: np.ndarray | None = None  # the word with the pre-roll and hangover around it (untrimmed)
    talk_around: bool = False  # background talk within TALK_MARGIN_DB of the word: its pre-roll and hangover hold talk too
    noise_around: bool = False  # steady noise within TALK_MARGIN_DB of the word: it masks the word's quiet parts and its pitch
    background: np.ndarray | None = None  # the latest background heard outside utterances before it (`keep_background_ms`): the noise estimate
    context_offset: int = 0  # where `audio` starts inside `context`
    faint: bool = False  # under `word_over_bg_db` (faint_words = "agreed"): the room's unless the pipeline finds it the talker's

    @property
    def duration_s(self) -> float:
        return (self.end_sample - self.start_sample) / SAMPLE_RATE


class Endpointer:
    def __init__(self, cfg: EndpointConfig, frame_ms: int = 30, rate: int = SAMPLE_RATE, keep_background_ms: int = 0) -> None:
        """`keep_background_ms`: hand out this much of the latest background audio with each
        utterance (frames that left the pre-roll window without opening one; 0 = none)."""
        self.cfg = cfg
        self.rate = rate
        self.frame_ms = frame_ms
        self.frame_len = rate * frame_ms // 1000
        self.preroll_frames = int(round(cfg.preroll_ms / frame_ms))
        self.hangover_frames = max(1, int(round(cfg.hangover_ms / frame_ms)))
        self.max_frames = max(1, cfg.max_utterance_ms // frame_ms)
        self.late_frames = cfg.late_ms // frame_ms if cfg.late_ms > 0 else None
        self.min_active = max(1, int(np.ceil(cfg.min_speech_ms / frame_ms)))
        self._levels: deque[float] = deque(maxlen=max(10, int(NOISE_WINDOW_S * 1000 / frame_ms)))
        self._floor = -120.0
        self._bg_window = max(BG_MIN_FRAMES, int(cfg.background_s * 1000 / frame_ms))
        self._bg_levels: deque[tuple[int, float]] = deque()  # (frame number, level) heard outside utterances
        self._bg = -120.0
        self._bg_median = -120.0
        self._steady = False  # the background is steady noise: the VAD's steady-noise mode applies
        self._gain = 0.0  # the VAD's input gain (FrameInfo.gain_db): min_level_dbfs is a level at the VAD's input
        self._nframes = 0
        self._last_end = -(10**9)  # frame number at which the last utterance ended
        self.pos = 0  # stream samples consumed
        self.dropped_short = 0
        self.dropped_quiet = 0
        self.dropped_background = 0
        # the latest drops, (start sample, end sample, "short" | "quiet" | "background"): what
        # scripts/room_losses.py reads to say why a word never became an utterance
        self.drops: deque[tuple[int, int, str]] = deque(maxlen=DROPS_KEPT)
        self.forced_cuts = 0
        self._rng = np.random.default_rng(0)
        self._bg_audio: deque[np.ndarray] = deque(maxlen=max(1, -(-keep_background_ms // frame_ms)) if keep_background_ms > 0 else 0)
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

    @property
    def steady(self) -> bool:
        """Is the background steady noise? (Then the lenient VAD mode and the steady margins apply.)"""
        return self._steady

    @property
    def background_db(self) -> float:
        """The loud end of the background heard outside utterances (-120 until known)."""
        return self._bg

    def push(self, frame: np.ndarray, info: FrameInfo) -> list[Utterance]:
        """Feed one frame (float32, `frame_len` samples) with its VAD info; returns the
        utterances it completed (usually none; several when run-together words are split)."""
        self.pos += len(frame)
        self._gain = info.gain_db
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
        self._hist_lv: deque[float] = deque(maxlen=self.preroll_frames + self.cfg.start_window)
        self._lv: list[float] = []  # the utterance's frame levels, parallel to _frames
        self._lv_heard = 0  # how many of them (the pre-roll's) the background has already heard
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

    def _track_background(self, level: float, now: bool = False, frame: int | None = None) -> None:
        # The window is stream time, not a count: while talk in the room keeps utterances open,
        # few frames land here, and a count-based window would hold what came before (e.g. the
        # silence before it started) for minutes. Older frames go, but BG_MIN_FRAMES always stay.
        # `frame`: the frame number the level was heard at (default: the current frame).
        self._bg_levels.append((self._nframes if frame is None else frame, level))
        while len(self._bg_levels) > BG_MIN_FRAMES and self._bg_levels[0][0] <= self._nframes - self._bg_window:
            self._bg_levels.popleft()
        if now or self._nframes % 5 == 1:  # every 150 ms
            self._update_background()

    def _update_background(self) -> None:
        if len(self._bg_levels) >= BG_MIN_FRAMES:
            a = np.fromiter((lv for _, lv in self._bg_levels), dtype=np.float64, count=len(self._bg_levels))
            k10, k50, k = (len(a) - 1) // 10, (len(a) - 1) // 2, int(round((len(a) - 1) * BG_PERCENTILE / 100))
            a = np.partition(a, (k10, k50, k))
            self._bg_median = float(a[k50])
            self._steady = float(a[k]) - self._bg_median <= STEADY_SPREAD_DB
            bg = min(float(a[k]), self._bg_median + BG_SPREAD_DB, self._floor + BG_OVER_FLOOR_DB)
            cold = self.cfg.cold_steady_db
            if (not self._steady and cold > 0 and self._bg_levels[0][0] > self._nframes - self._bg_window
                    and self._bg_median - float(a[k10]) <= cold):
                # still the stream's first background_s: a talker who starts at once has filled the
                # loud end with his own onsets; a quiet end this even is steady noise under them
                self._steady = True
                bg = min(bg, self._bg_median + STEADY_SPREAD_DB)
            self._bg = bg

    def _voiced(self, info: FrameInfo) -> bool:
        if self._steady and info.voiced_steady is not None:
            return info.voiced_steady
        return info.voiced

    def _loud(self, level: float, peak: float | None) -> bool:
        c = self.cfg
        snr = c.steady_floor_snr_db if self._steady else c.floor_snr_db
        if level + self._gain < c.min_level_dbfs or level < self._floor + snr:
            return False
        if c.background_gate and level < self._bg + c.speech_over_bg_db:
            return False
        if (c.background_gate and peak is not None and self.late_frames is not None and not self._steady
                and self._bg > -120.0 and len(self._frames) > self.late_frames and level < self._bg + c.late_over_bg_db):
            return False
        if c.split_dips and peak is not None and level < peak - c.dip_db:
            return False
        return True

    def _push_silence(self, frame: np.ndarray, info: FrameInfo) -> list[Utterance]:
        self._track_background(info.level_db)
        if self._bg_audio.maxlen and len(self._hist) == self._hist.maxlen:
            self._bg_audio.append(self._hist[0])  # leaves the pre-roll window without having opened an utterance
        self._hist.append(frame)
        self._hist_lv.append(info.level_db)
        self._flags.append(self._voiced(info) and self._loud(info.level_db, None))
        if sum(self._flags) < self.cfg.start_frames:
            return []
        mode = self.cfg.onset_is_speech
        fluent = self._nframes - self._last_end <= FLUENT_FRAMES
        if self.cfg.background_gate and (mode == "always" or (mode == "steady" and self._steady)
                                         or (mode == "fluent" and self._steady and fluent)):
            self._forget_onset()
        self._in_speech = True
        self._frames = list(self._hist)
        self._lv = list(self._hist_lv)
        self._lv_heard = len(self._lv)
        self._start = self.pos - len(self._frames) * self.frame_len
        self._active = sum(self._flags)
        self._silent_run = 0
        self._peak = info.level_db
        return []

    def _forget_onset(self) -> None:
        """The start window's active frames were the word's onset, not the background: take
        their levels back out (those within TALK_MARGIN_DB of the background's median). A fluent
        talker (pauses of 50-150 ms) opens an utterance every half second, and two onset frames
        at his own level per word were enough to lift the loud end 9 dB over white noise within
        25 s, after which his quieter words joined it."""
        # every frame since the last reset was heard in silence: the window's newest entries are
        # the start window's frames, in order (the flags hold at least start_frames actives)
        n = min(len(self._flags), len(self._bg_levels))
        tail = [self._bg_levels.pop() for _ in range(n)][::-1]
        # only onsets near the noise: in a quiet room (hiss 30+ dB under the word) taking them out
        # dropped the loud end to the hiss, and word tails opened utterances of their own
        near = self._bg_median + TALK_MARGIN_DB
        self._bg_levels.extend(e for e, active in zip(tail, list(self._flags)[-n:]) if not active or e[1] > near)
        self._update_background()

    def _push_speech(self, frame: np.ndarray, info: FrameInfo) -> list[Utterance]:
        self._frames.append(frame)
        self._lv.append(info.level_db)
        active = self._voiced(info) and self._loud(info.level_db, self._peak)
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
            if self.cfg.background_gate and self._cut_is_background():
                # No digit runs this long: what kept it open is the room (talk, a radio). While
                # frames outside utterances are that scarce, the background's level lags for
                # seconds (8 s under babble at 5 dB that was there from the first second).
                # The pre-roll's levels are in the window already; each level keeps its frame number.
                first = self._nframes - len(self._lv) + 1
                for i in range(self._lv_heard, len(self._lv)):
                    self._track_background(self._lv[i], now=i == len(self._lv) - 1, frame=first + i)
            utts = self._finish(forced=True)
            self._reset_state()
            return utts
        return []

    def _cut_is_background(self) -> bool:
        """Does a cut utterance teach the background its levels? "unknown": only while the
        background has never been heard long enough to have a level (talk from the first second:
        a talker who says digits in one breath after a quiet start reaches the cut too, and
        must not teach the gate his own level). "crowd": that, and through the stream's first
        `background_s` a cut whose level moves like a crowd's (after the first cut under talk the
        gate hears only the babble's dips between utterances and lags it for seconds); never under
        steady noise, which masks a fluent talker's dips and whose level is known anyway.
        "scarce": while under half of its window was heard outside utterances (not when plenty
        was: in a ringing room the cut is the reverberation, and the level is known)."""
        mode = self.cfg.cut_is_background
        if mode in ("unknown", "crowd") and len(self._bg_levels) < BG_MIN_FRAMES:
            return True
        if mode == "crowd":
            return self._nframes < self._bg_window and not self._steady and self._sounds_like_a_crowd()
        return mode == "scarce" and len(self._bg_levels) < BG_SCARCE * self._bg_window

    def _sounds_like_a_crowd(self) -> bool:
        """Do the cut utterance's own frames (after its pre-roll: a device that opens on zeros
        puts a 60 dB step there) hold the level of a crowd rather than of one talker?"""
        lv = np.asarray(self._lv[self._lv_heard :], dtype=np.float64)
        if len(lv) < 2:
            return False
        dips = int(np.count_nonzero(lv < np.median(lv) - CROWD_DIP_DB))
        steps = float(np.sqrt(np.mean(np.square(np.diff(lv)))))
        return dips < CROWD_DIPS and steps < CROWD_STEP_DB

    def _background_near(self) -> bool:
        """Is the background within TALK_MARGIN_DB under the word's peak? (A hiss 40 dB under a
        cough in a quiet room is neither talk around it nor noise masking it.)"""
        return self._bg > -120.0 and self._peak - self._bg < TALK_MARGIN_DB

    def _talk_around(self) -> bool:
        """Is the background talk loud enough to fill the word's pre-roll and hangover?"""
        return not self._steady and self._background_near()

    def _noise_around(self) -> bool:
        """Is steady noise close enough under the word to mask its quiet parts and its pitch?"""
        return self._steady and self._background_near()

    def _prominent(self, a: int, b: int) -> bool:
        """Does the word in samples [a, b) of the utterance stand `word_over_bg_db` out of the
        background's loud end? Talk in the background is as loud as the background it makes;
        the talker at the microphone rises above it."""
        if not self.cfg.background_gate or self._bg <= -120.0:
            return True
        lv = self._lv[a // self.frame_len : -(-b // self.frame_len)]
        top = float(np.mean(sorted(lv)[-TOP_FRAMES:])) if lv else -120.0
        over = self.cfg.steady_word_over_bg_db if self._steady else self.cfg.word_over_bg_db
        return top >= self._bg + over

    def _finish(self, forced: bool) -> list[Utterance]:
        self._last_end = self._nframes
        span = (self._start, self._start + self.frame_len * len(self._frames))
        if self._active < self.min_active:
            self.dropped_short += 1
            self.drops.append((*span, "short"))
            return []
        if self._peak + self._gain < self.cfg.min_level_dbfs:
            self.dropped_quiet += 1
            self.drops.append((*span, "quiet"))
            return []
        x = np.concatenate(self._frames)
        # Digital silence (exact zeros, e.g. a muted or virtual source) has no counterpart in
        # training clips and wrecks MFCC minima: add a faint fixed-seed hiss DITHER_DB under peak.
        x = x + self._rng.standard_normal(len(x)).astype(np.float32) * np.float32(10 ** ((self._peak - DITHER_DB) / 20))
        cuts = valley_splits(x, self.cfg.valley_db) if self.cfg.split_dips and self.cfg.valley_db > 0 else []
        background = np.concatenate(self._bg_audio) if self._bg_audio else None
        bounds = [0, *cuts, len(x)]
        out = []
        for a, b in zip(bounds, bounds[1:]):
            s, e = trim_bounds(x[a:b])
            # The trim keeps what stands 6 dB out of the piece's own quiet end; under steady noise a
            # few dB under the word that is its loudest tens of ms. There the active frames, already
            # counted against min_speech_ms, say how long the word is (the classifier hears its context).
            if e - s < self.rate * self.cfg.min_speech_ms // 1000 and not (len(bounds) == 2 and self._noise_around()):
                self.dropped_short += 1
                self.drops.append((self._start + a + s, self._start + a + e, "short"))
                continue
            faint = not self._prominent(a + s, a + e)
            if faint and self.cfg.faint_words == "drop":
                self.dropped_background += 1
                self.drops.append((self._start + a + s, self._start + a + e, "background"))
                continue
            out.append(Utterance(x[a + s : a + e].astype(np.float32), self._start + a + s, self._start + a + e,
                                 self.pos, forced, x[a:b].astype(np.float32),
                                 self._talk_around(), self._noise_around(), background, s, faint))
        return out
