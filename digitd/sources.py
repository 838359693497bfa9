"""Audio sources with one interface, and the bounded ring buffer between capture and processing.

A source delivers `Chunk`s of float32 mono 8 kHz audio. `Chunk.dropped` says how many
samples were lost just before this chunk (ring overflow), `Chunk.gap` how many samples of
wall-clock time passed with no audio at all (device outage). Both advance stream time so
event times stay aligned with the real world; neither is ever silent (the pipeline reports
them as events).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from digitd import SAMPLE_RATE
from digitd.audio import iter_wav_blocks
from digitd.events import Event


@dataclass
class Chunk:
    audio: np.ndarray  # float32 mono at 8 kHz
    dropped: int = 0  # samples (8 kHz) lost right before `audio` (consumer too slow)
    gap: int = 0  # samples (8 kHz) of time with no audio (device outage)


class Source(Protocol):
    name: str
    rate: int  # rate the audio arrives at before resampling
    live: bool  # True when audio arrives in real time (mic, paced file)

    def start(self) -> None: ...
    def read(self, timeout: float) -> Chunk | None:
        """Next chunk, or None if nothing arrived within `timeout` (check `finished`)."""
    @property
    def finished(self) -> bool: ...
    def stop(self) -> None: ...
    def drain_events(self) -> list[Event]: ...


class RingBuffer:
    """Bounded FIFO of sample blocks. `push` never blocks on a full buffer: the OLDEST
    samples are discarded and counted, so a slow consumer loses old audio, never new."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self._q: deque[np.ndarray] = deque()
        self._size = 0
        self._dropped_pending = 0
        self.dropped_total = 0
        self.overflows = 0  # pushes that had to drop something
        self._cond = threading.Condition()

    def push(self, block: np.ndarray) -> None:
        with self._cond:
            self._q.append(block)
            self._size += len(block)
            if self._size > self.capacity:
                self.overflows += 1
                while self._size > self.capacity:
                    excess = self._size - self.capacity
                    old = self._q[0]
                    if len(old) <= excess:
                        self._q.popleft()
                        n = len(old)
                    else:
                        self._q[0] = old[excess:]
                        n = excess
                    self._size -= n
                    self._dropped_pending += n
                    self.dropped_total += n
            self._cond.notify()

    def pop(self, timeout: float) -> tuple[np.ndarray | None, int]:
        """(oldest block or None on timeout, samples dropped since the last pop)."""
        with self._cond:
            if not self._q:
                self._cond.wait(timeout)
            dropped, self._dropped_pending = self._dropped_pending, 0
            if not self._q:
                return None, dropped
            b = self._q.popleft()
            self._size -= len(b)
            return b, dropped

    def __len__(self) -> int:
        return self._size


class FileSource:
    """A WAV file (or an in-memory array) streamed through the same path as the microphone.

    `speed="max"`: blocks are handed over as fast as the consumer takes them (no drops).
    `speed=<factor>`: a feeder thread pushes blocks into a ring buffer at `factor` x real
    time, exactly like a capture callback, so a slow consumer loses (and reports) audio.
    """

    def __init__(self, path_or_audio: str | Path | np.ndarray, speed: str | float = "1",
                 block_ms: int = 30, ring_seconds: float = 5.0, name: str | None = None) -> None:
        self.speed = "max" if str(speed) == "max" else float(speed)
        self.live = self.speed != "max"
        self.block = max(1, SAMPLE_RATE * block_ms // 1000)
        if isinstance(path_or_audio, np.ndarray):
            self._audio = np.asarray(path_or_audio, dtype=np.float32)
            self.name = name or "array"
        else:
            self._audio = None
            self._path = Path(path_or_audio)
            self.name = name or str(self._path)
        self.rate = SAMPLE_RATE
        self.ring = RingBuffer(int(ring_seconds * SAMPLE_RATE))
        self._iter: Iterator[np.ndarray] | None = None
        self._done = False
        self._stop = threading.Event()
        self.t0: float | None = None  # monotonic time of the first paced block (bench: wall latency)
        self._thread: threading.Thread | None = None
        self._events: list[Event] = []

    def _blocks(self) -> Iterator[np.ndarray]:
        if self._audio is not None:
            for i in range(0, len(self._audio), self.block):
                yield self._audio[i : i + self.block]
        else:
            yield from iter_wav_blocks(self._path, self.block / SAMPLE_RATE)

    def start(self) -> None:
        it = self._blocks()
        if self._audio is None:  # open the file now so a bad path fails before streaming
            first = next(it, None)
            it = _chain(first, it)
        self._iter = it
        if self.live:
            self._thread = threading.Thread(target=self._feed, name="file-feeder", daemon=True)
            self._thread.start()

    def _feed(self) -> None:
        t0 = self.t0 = time.monotonic()
        sent = 0
        stop = self._stop
        try:
            for b in self._iter:  # type: ignore[union-attr]
                # like a capture callback: a block arrives once its last sample has been "recorded".
                # Plain sleeps (<= 50 ms, then the stop flag is checked): Event.wait costs more CPU
                # per block, which a paced bench counts as the daemon's (~0.1% of a core).
                due = t0 + (sent + len(b)) / SAMPLE_RATE / self.speed
                d = due - time.monotonic()
                while d > 0 and not stop.is_set():
                    time.sleep(min(d, 0.05))
                    d = due - time.monotonic()
                if stop.is_set():
                    return
                self.ring.push(np.array(b, dtype=np.float32))
                sent += len(b)
        finally:
            self._done = True

    def read(self, timeout: float) -> Chunk | None:
        if not self.live:
            b = next(self._iter, None) if self._iter is not None else None  # type: ignore[arg-type]
            if b is None:
                self._done = True
                return None
            return Chunk(np.asarray(b, dtype=np.float32))
        b, dropped = self.ring.pop(timeout)
        if b is None:
            return Chunk(np.zeros(0, np.float32), dropped) if dropped else None
        return Chunk(b, dropped)

    @property
    def finished(self) -> bool:
        return self._done and len(self.ring) == 0

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def drain_events(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev


def _chain(first, rest):
    if first is not None:
        yield first
        yield from rest
