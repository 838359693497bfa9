"""The streaming core: source -> frames -> VAD -> endpointer -> classifier -> events -> numbers -> sinks.

`Pipeline(cfg, model, sinks).run(source) -> SummaryEvent` is shared by the daemon and the
benchmark. Live sources (microphone, paced file) classify in a worker thread, so the
stream keeps being read while a word is classified; `emitted` is then the stream position
when the result was ready (compute-aware). Unpaced sources (`--speed max`) classify inline:
`emitted` is the stream position of the end decision (compute-unaware lower bound), and the
wall-clock compute times are in `latency_ms` / `Timings`.

Every event passes the number grouper (numbers.py) on its way to the sinks; the frame loop
gives it a clock tick once stream time passes the open number's pause.
"""

from __future__ import annotations

import queue
from collections import deque
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from digitd import SAMPLE_RATE
from digitd.audio import float_to_int16
from digitd.config import Config
from digitd.endpoint import Utterance
from digitd.equalize import SETTLE_S, Equalizer
from digitd.errors import DigitdError
from digitd.events import DigitEvent, Event, NumberEvent, OverflowEvent, RejectedEvent, SummaryEvent
from digitd.features import frame_db
from digitd.hear import denoised, front_end, heard as hear
from digitd.model import OTHER, DigitModel, agreed, reject_reason
from digitd.numbers import NumberGrouper
from digitd.segment import Piece, split_words
from digitd.sources import Source
from digitd.sysinfo import peak_rss_mb
from digitd.talker import TalkerLevel, near_talker, under_talker


AWAIT_WORKER_S = 1.0  # stream correction: the longest the pipeline thread waits for a late classification (_await_decisions)
TAIL_FRAME = 80  # the tail rule compares words by their loudest 10 ms (features.frame_db frames at 8 kHz)


def peak_db(x: np.ndarray) -> float:
    """The loudest 10 ms of `x`, dB: what `classify.tail_under_db` compares."""
    return float(np.max(frame_db(x, TAIL_FRAME)))


class Sink(Protocol):
    def handle(self, event: Event) -> None: ...
    def close(self) -> None: ...


class Timings:
    """Wall-clock stage timings, newest last (np.percentile-ready).

    Bounded to the last `maxlen` values so a daemon running for days keeps flat memory;
    the benchmark passes maxlen=None to keep every value.
    """

    NAMES = ("vad_us", "endpoint_us", "features_ms", "classify_ms", "queue_ms", "total_ms", "eos_s")

    def __init__(self, maxlen: int | None = 20000) -> None:
        self.vad_us: deque[float] = deque(maxlen=maxlen)  # per frame
        self.endpoint_us: deque[float] = deque(maxlen=maxlen)  # per frame
        self.features_ms: deque[float] = deque(maxlen=maxlen)  # per utterance
        self.classify_ms: deque[float] = deque(maxlen=maxlen)
        self.queue_ms: deque[float] = deque(maxlen=maxlen)  # waiting for the worker
        self.total_ms: deque[float] = deque(maxlen=maxlen)  # end decided -> event out (wall)
        self.eos_s: deque[float] = deque(maxlen=maxlen)  # emitted - end, stream time, per digit

    def stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for name in self.NAMES:
            a = np.asarray(getattr(self, name), dtype=np.float64)
            out[name] = ({"n": int(a.size), "last": float(a[-1]), "p50": float(np.percentile(a, 50)),
                          "p95": float(np.percentile(a, 95)), "max": float(a.max())} if a.size else {"n": 0})
        return out


@dataclass
class _Job:
    utt: Utterance
    t_decided: float  # perf_counter when the closing frame entered the pipeline
    vad_ms: float
    endpoint_ms: float


_STOP = object()


class Pipeline:
    def __init__(self, cfg: Config, model: DigitModel, sinks: Sequence[Sink] = (), *,
                 threaded: bool | None = None, history: int | None = 20000) -> None:
        """`history`: how many recent stage timings to keep (None = all, for benchmarks)."""
        self.cfg = cfg
        self.model = model
        self.sinks = list(sinks)
        self.threaded = threaded
        self.timings = Timings(history)
        self.stop_event = threading.Event()
        self._classify_error: Exception | None = None  # what stopped classification, raised by `run`
        self.counts = {"utterances": 0, "digits": 0, "rejected": 0, "overflows": 0, "queue_dropped": 0, "numbers": 0}
        self.dropped_samples = 0
        self.faint_dropped = 0  # faint words (endpoint.faint_words) the members did not agree on; worker thread only
        self.transcript: list[str] = []
        # live status for UIs (read without locks; plain values)
        self.status: dict[str, Any] = {"state": "silence", "level_db": -120.0, "floor_db": -120.0,
                                       "vad_gain_db": 0.0, "device": "", "rate": 0, "running": False}
        self.first_frame_unix: float | None = None
        self._pos = 0  # stream samples consumed (incl. dropped); read by the worker for `emitted`
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=cfg.classify.queue_size)
        # (start sample, decided sample) of utterances handed to the classifier and not yet emitted,
        # oldest first (appended by the pipeline thread, popped by whoever classifies: deque ops are atomic)
        self._inflight: deque[tuple[int, int]] = deque()
        self._finished = threading.Condition()  # notified each time the classifier is done with one
        self._gave_up_on = -1  # the decided sample the pipeline thread stopped waiting for (stream correction)
        # (end_sample, label, loudest 10 ms in dB) of the last word the classifier emitted as a digit; worker thread only
        self._last_digit: tuple[int, str, float] | None = None
        # the levels of the talker's recent digits; worker thread only
        self._talker = TalkerLevel(cfg.classify.talker_words, cfg.classify.talker_memory_s)
        self.numbers = NumberGrouper(cfg.group)
        self.dc, self.vad, self.endpointer = front_end(cfg)
        self.equalizer = Equalizer(cfg.equalize)  # the microphone's colouring, learned from the voiced words decided (worker thread)
        self.frame_len = self.vad.frame_len
        # called with (utterance, the audio the classifier heard, prediction, reject reason or None)
        # before its event goes out, on the classifying thread: `digitd enroll` takes its takes
        # here, cut and heard exactly as `run` cuts and hears them
        self.on_utterance: Callable[[Utterance, np.ndarray, Any, str | None], None] | None = None

    # -- events -------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Deliver `event` (and any number it closes) to every sink; any thread."""
        with self._lock:
            self._deliver(self.numbers.push(event))

    def _deliver(self, events: list[Event]) -> None:  # holding self._lock
        for e in events:
            if isinstance(e, NumberEvent):
                self.counts["numbers"] += 1
            for s in self.sinks:
                s.handle(e)

    def _maybe_tick(self) -> None:
        """Close the open number once its pause is over in stream time. Per frame this is one
        comparison; it never waits for the lock (a busy sink delays the tick by a frame, never
        the audio)."""
        d = self.numbers.deadline
        if d is None or self._pos < d * SAMPLE_RATE:
            return
        inflight = self._inflight
        horizon = min(self.endpointer.horizon, inflight[0][0] if inflight else self._pos)
        if horizon < d * SAMPLE_RATE or not self._lock.acquire(blocking=False):
            return
        try:
            self._deliver(self.numbers.tick(self.stream_time, horizon / SAMPLE_RATE))
        finally:
            self._lock.release()

    def stop(self) -> None:
        """Ask `run` to finish (thread- and signal-safe)."""
        self.stop_event.set()

    @property
    def dropped_background(self) -> int:
        """Words dropped as the room's: by the endpointer, or faint and not agreed on."""
        return self.endpointer.dropped_background + self.faint_dropped

    @property
    def stream_time(self) -> float:
        return self._pos / SAMPLE_RATE

    # -- main loop ----------------------------------------------------------------------
    def run(self, source: Source) -> SummaryEvent:
        threaded = source.live if self.threaded is None else self.threaded
        wall0 = time.monotonic()
        worker = None
        if threaded:
            worker = threading.Thread(target=self._worker, name="classifier", daemon=True)
            worker.start()
        buf = np.zeros(0, np.float32)
        source.start()
        self.status.update(device=source.name, rate=source.rate, running=True)
        try:
            while not self.stop_event.is_set():
                self._drain(source)
                chunk = source.read(0.05)
                if chunk is None:
                    if source.finished:
                        break
                    continue
                lost = chunk.dropped + chunk.gap
                if lost:
                    buf = np.zeros(0, np.float32)  # discontinuity: realign frames
                    self.endpointer.skip(lost)
                    self.equalizer.gap()
                    self._pos = self.endpointer.pos
                    if chunk.dropped:
                        self.dropped_samples += chunk.dropped
                        self.counts["overflows"] += 1
                        self.emit(OverflowEvent(1000.0 * chunk.dropped / SAMPLE_RATE, "capture", self.stream_time))
                    self._maybe_tick()
                if not len(chunk.audio):
                    continue
                buf = np.concatenate([buf, chunk.audio]) if len(buf) else chunk.audio
                n = len(buf) // self.frame_len
                for i in range(n):
                    self._frame(buf[i * self.frame_len : (i + 1) * self.frame_len], threaded)
                buf = buf[n * self.frame_len :]
        finally:
            source.stop()
            self._drain(source)
            t = time.perf_counter()
            for utt in self.endpointer.flush():
                self._submit(_Job(utt, t, 0.0, 0.0), threaded)
            if worker is not None:
                self._queue.put(_STOP)
                worker.join()
            self.status.update(running=False, state="silence")
        if self._classify_error is not None:
            e = self._classify_error
            raise DigitdError(f"the classifier failed: {type(e).__name__}: {e}") from e
        ep = self.endpointer
        summary = SummaryEvent(
            utterances=self.counts["utterances"], digits=self.counts["digits"], rejected=self.counts["rejected"],
            dropped_short=ep.dropped_short + ep.dropped_quiet, dropped_background=self.dropped_background,
            forced_cuts=ep.forced_cuts,
            overflows=self.counts["overflows"], dropped_ms=1000.0 * self.dropped_samples / SAMPLE_RATE,
            queue_dropped=self.counts["queue_dropped"], audio_s=self.stream_time,
            wall_s=time.monotonic() - wall0, transcript="".join(self.transcript),
            first_frame_unix=self.first_frame_unix or 0.0, peak_rss_mb=peak_rss_mb(),
        )
        self.emit(summary)
        return summary

    def _drain(self, source: Source) -> None:
        for ev in source.drain_events():
            if hasattr(ev, "at") and not ev.at:
                ev.at = self.stream_time
            if getattr(ev, "kind", "") == "device" and ev.state in ("open", "reopened"):
                self.status.update(device=source.name, rate=source.rate)
            self.emit(ev)

    def _frame(self, frame: np.ndarray, threaded: bool) -> None:
        if self.first_frame_unix is None:
            self.first_frame_unix = time.time()  # cold start ends here (bench)
        quiet = self.endpointer.state == "silence"
        if threaded and quiet and self.equalizer.stream:
            self._await_decisions(self._pos - int(SETTLE_S * SAMPLE_RATE))
        t0 = time.perf_counter()
        frame = self.equalizer.frame(self.dc(frame), self._pos, quiet)
        info = self.vad(float_to_int16(frame))
        t1 = time.perf_counter()
        utts = self.endpointer.push(frame, info)
        t2 = time.perf_counter()
        self._pos = self.endpointer.pos
        self.timings.vad_us.append((t1 - t0) * 1e6)
        self.timings.endpoint_us.append((t2 - t1) * 1e6)
        st = self.status
        st["level_db"] = info.level_db
        st["state"] = self.endpointer.state
        st["floor_db"] = self.endpointer.noise_floor_db
        st["vad_gain_db"] = info.gain_db
        for utt in utts:
            self._submit(_Job(utt, t0, (t1 - t0) * 1e3, (t2 - t1) * 1e3), threaded)
        self._maybe_tick()

    def _submit(self, job: _Job, threaded: bool) -> None:
        self.counts["utterances"] += 1
        self._inflight.append((job.utt.start_sample, job.utt.detected_sample))
        if not threaded:
            self._classify_safely(job)
            return
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._inflight.pop()  # ours: the worker holds >= queue_size older entries
            self.counts["queue_dropped"] += 1
            self.emit(OverflowEvent(1000.0 * job.utt.duration_s, "queue", self.stream_time))

    def _done_with_one(self) -> None:
        self._inflight.popleft()
        if self.equalizer.stream:
            with self._finished:
                self._finished.notify_all()

    def _await_decisions(self, upto: int) -> None:
        """Stream correction, live: let the worker finish every utterance decided at or before
        stream sample `upto` (what it teaches the equaliser is taken up SETTLE_S after the
        decision), so a live stream switches filters at the same samples as a file. It takes ~20
        ms a word; a late one is waited for at most AWAIT_WORKER_S once (the capture ring holds
        seconds; the audio callback never waits)."""
        q = self._inflight
        if not q or q[0][1] > upto or q[0][1] == self._gave_up_on:
            return
        deadline = time.monotonic() + AWAIT_WORKER_S
        with self._finished:
            while q and q[0][1] <= upto and not self.stop_event.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    self._gave_up_on = q[0][1]
                    return
                self._finished.wait(left)

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            self._classify_safely(job)

    def _classify_safely(self, job: _Job) -> None:
        """Classify, or after a failure skip: a dead worker would leave `run` waiting on a full
        queue forever, so the first error stops the run and `run` raises it as one line."""
        if self._classify_error is not None:
            self._done_with_one()
            return
        try:
            self._classify(job)
        except Exception as e:
            self._classify_error = e
            self.stop_event.set()

    def _classify(self, job: _Job) -> None:
        try:
            self._classify_one(job)
        finally:
            self._done_with_one()  # after the event is out, so a tick never outruns it

    def _repeats_the_word_before(self, u: Utterance, label: str, level_db: float) -> bool:
        """Is `u` the rest of the digit just emitted? The same digit starting right where it ended
        (`repeat_gap_ms`): a dip inside "four" or "six" ended the utterance and the rest opened the
        next at once (on the dev slice 18 of 19 such pairs were one word; a repeated digit, "4 4",
        comes with a pause, and said in one breath is segment.py's case). Or, any digit, a piece
        far quieter than it right after it (`tail_under_db`, `tail_gap_ms`): the "ks" of "six"
        after its stop, the "n" of "one", the "v" of "five", named as whatever digit they sound like.
        `level_db`: `u`'s own `peak_db`."""
        c = self.cfg.classify
        last = self._last_digit
        if last is None:
            return False
        gap_ms = (u.start_sample - last[0]) * 1000.0 / SAMPLE_RATE
        if c.repeat_gap_ms > 0 and last[1] == label and gap_ms < c.repeat_gap_ms:
            return True
        return c.tail_under_db > 0 and gap_ms < c.tail_gap_ms and level_db <= last[2] - c.tail_under_db

    def _background_talk(self, u: Utterance, pred: Any, level_db: float) -> bool:
        """Is `u` a word of the room's talk rather than the talker's? Heard in background talk,
        `talk_under_db` under the talker's recent digits, under `talk_threshold` and without the
        two strong members agreeing. Dev slice (v13-recipe dev model, room streams seeds 0-5),
        replayed: DER 13.48 -> 13.32%, background-only insertions under babble 14 -> 7."""
        c = self.cfg.classify
        if c.talk_under_db <= 0 or not u.talk_around or pred.confidence >= c.talk_threshold:
            return False
        if not under_talker(level_db, self._talker.reference_db(u.start_sample), c.talk_under_db):
            return False
        return not agreed(pred, c.agree_min, c.agree_min_speech)

    def _near_talker(self, u: Utterance, level_db: float) -> bool:
        """Is `u` within `near_talker_db` of the talker's recent digits: his word, not the room's?
        Dev slice (v13-recipe dev model, seeds 0-5, replayed): faint words kept on agreement alone
        13.29 -> 13.03% but background-only insertions 11 -> 18; near him 13.03% with 11 -> 12.
        `level_db`: `u`'s own `peak_db`."""
        return near_talker(level_db, self._talker.reference_db(u.start_sample), self.cfg.classify.near_talker_db)

    def _faint_may_be_talker(self, u: Utterance, level_db: float) -> bool:
        """Could a faint word (endpoint.faint_words) be the talker's? It is at his level and comes
        within `faint_within_s` of his last digit: in a quiet spell the room's talk has the floor
        (dev slice, replayed: 10 s costs nothing, 2 s 0.24 points). Asked before classifying, so
        the room's faint words cost no classifier time; the members' agreement is asked after."""
        since = self._talker.since_last_s(u.start_sample)
        return since is not None and since < self.cfg.classify.faint_within_s and self._near_talker(u, level_db)

    def _cnn_may_agree(self, heard: np.ndarray, trimmed: bool) -> bool:
        """Could the members agree on a faint word? `agreed` needs the convolutional member to name
        a digit with `agree_min`; its vote alone costs a tenth of a full classification, and most of
        the room's faint words fail it (unseen room seed 0: 51 of the 63 faint words classified). The
        same decisions, less CPU. A model without that member never agrees."""
        c = self.cfg.classify
        if c.agree_min <= 0:
            return False
        vote = self.model.cnn_vote(heard, trimmed=trimmed)
        return vote is not None and vote[0] != OTHER and vote[1] >= c.agree_min

    def _drop_faint(self, u: Utterance) -> None:
        """The room's, as the endpointer would have dropped it: counted, no event."""
        self.faint_dropped += 1
        self.endpointer.drops.append((u.start_sample, u.end_sample, "background"))

    def _classify_one(self, job: _Job) -> None:
        t0 = time.perf_counter()
        utt = denoised(job.utt, self.cfg.denoise)
        whole_level = peak_db(utt.audio)  # the faint test, the steady bar and the talker's rules all read it
        if utt.faint and not self._faint_may_be_talker(utt, whole_level):
            self._drop_faint(utt)
            return
        heard, trimmed = hear(utt, self.cfg.classify.context)
        heard = self.equalizer.apply(heard)  # members mode: only the members hear the correction (in stream mode the stream was corrected)
        if utt.faint and not self._cnn_may_agree(heard, trimmed):
            self._drop_faint(utt)  # what the agreement test below would decide, for a tenth of the work
            return
        feats = self.model.features(heard, trimmed=trimmed)
        t1 = time.perf_counter()
        pred = self.model.classify(feats)
        c = self.cfg.classify
        whole_reason = reject_reason(utt.audio, pred, c, utt.noise_around, utt.noise_around and self._near_talker(utt, whole_level))
        # rejected for want of pitch (a cough, a click, a burst): not tried as two words
        if c.split_min_ms > 0 and whole_reason != "unvoiced" and not utt.faint:
            pieces = split_words(utt.audio, pred, lambda x: self.model.classify(self.model.features(self.equalizer.apply(x))),
                                 c.split_min_ms / 1000, c.split_sure, c.min_voiced_ms)
        else:
            pieces = [Piece(0, utt.audio, pred)]
        t2 = time.perf_counter()
        tm = self.timings
        tm.queue_ms.append((t0 - job.t_decided) * 1e3 - job.vad_ms - job.endpoint_ms)
        tm.features_ms.append((t1 - t0) * 1e3)
        tm.classify_ms.append((t2 - t1) * 1e3)
        tm.total_ms.append((t2 - job.t_decided) * 1e3)
        lat = {"vad": job.vad_ms, "endpoint": job.endpoint_ms, "features": (t1 - t0) * 1e3,
               "classify": (t2 - t1) * 1e3, "total": (t2 - job.t_decided) * 1e3}
        if utt.faint and not agreed(pred, c.agree_min, c.agree_min_speech):
            # as quiet as the background, and not a digit both strong members name: the room's
            self._drop_faint(utt)
            return
        # emitted: the stream position now (live), or where the end was decided (inline)
        emitted = max(self._pos, job.utt.detected_sample) / SAMPLE_RATE
        for piece in pieces:
            u = utt
            if len(pieces) > 1:  # each run-together word as an utterance of its own
                a = u.start_sample + piece.offset
                u = replace(u, audio=piece.audio, start_sample=a, end_sample=a + len(piece.audio), context=None)
                heard, pred = piece.audio, piece.prediction
            start, end = u.start_sample / SAMPLE_RATE, u.end_sample / SAMPLE_RATE
            level = whole_level if len(pieces) == 1 else peak_db(u.audio)
            reason = whole_reason if len(pieces) == 1 else reject_reason(u.audio, pred, c, u.noise_around,
                                                                         u.noise_around and self._near_talker(u, level))
            if reason is None and piece is pieces[0] and self._repeats_the_word_before(u, pred.label, level):
                reason = "split_word"
            if reason is None and self._background_talk(u, pred, level):
                reason = "background_talk"
            if reason is None:
                self._last_digit = (u.end_sample, pred.label, level)
                self._talker.add(u.end_sample, level)
            elif reason == "split_word" and self._last_digit is not None:  # the same word goes on: its loudest part stays the reference
                self._last_digit = (u.end_sample, pred.label, max(self._last_digit[2], level))
            else:
                self._last_digit = None
            if reason != "unvoiced":  # a voice, the talker's or the room's, through the same microphone; the next word hears what it taught
                self.equalizer.observe(u.audio, u.background, u.start_sample, job.utt.detected_sample)
            if self.on_utterance is not None:
                self.on_utterance(u, heard, pred, reason)
            if reason:
                self.counts["rejected"] += 1
                self.emit(RejectedEvent(start, end, emitted, pred.label, pred.confidence, lat, reason))
            else:
                self.counts["digits"] += 1
                tm.eos_s.append(emitted - end)
                self.transcript.append(pred.label)
                self.emit(DigitEvent(pred.label, pred.confidence, start, end, emitted, lat))
