"""Microphone capture (the only module that imports sounddevice, and only when used).

The PortAudio callback copies the block into a bounded ring buffer and counts overflow
flags: it never blocks and never computes. Downmixing and resampling to 8 kHz happen in
the reading thread. A device that stops delivering audio (unplugged, sound server
restarted) is reopened with exponential backoff up to `audio.reconnect_max_s` between
attempts; the outage is reported as `device` events and advances stream time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from digitd import SAMPLE_RATE
from digitd.audio import AudioError, StreamResampler
from digitd.config import AudioConfig, Config
from digitd.events import DeviceEvent, Event, OverflowEvent
from digitd.sources import Chunk, RingBuffer

STALL_S = 1.0  # no callback for this long while running = the device is gone
FIRST_BACKOFF_S = 0.25


def import_sounddevice():
    """sounddevice, or a one-line hint when the PortAudio library is missing."""
    try:
        import sounddevice as sd
    except OSError:
        raise AudioError("PortAudio library not found; install it: apt-get install libportaudio2") from None
    return sd


def input_devices(sd) -> list[tuple[int, dict[str, Any]]]:
    try:
        devs = sd.query_devices()
    except Exception as e:  # PortAudio errors are plain Exceptions subclasses
        raise AudioError(f"cannot list audio devices ({e})") from None
    return [(i, d) for i, d in enumerate(devs) if d["max_input_channels"] > 0]


def default_input(sd) -> int:
    """PortAudio's default input device index (-1 if none); sd.default.device is a pair."""
    try:
        dev = sd.default.device[0]
        return int(dev) if dev is not None else -1
    except (TypeError, ValueError, IndexError):
        try:
            return int(sd.query_devices(kind="input")["index"])
        except Exception:
            return -1


def resolve_device(sd, spec: str) -> tuple[int, dict[str, Any]]:
    """Device index/name substring ('' = system default) -> (index, info); AudioError if absent."""
    inputs = input_devices(sd)
    if not inputs:
        raise AudioError("no audio input device found (is a microphone or sound server available? see `digitd devices`)")
    names = ", ".join(f"{i} {d['name']}" for i, d in inputs)
    spec = str(spec).strip()
    if spec == "":
        default = default_input(sd)
        for i, d in inputs:
            if i == default:
                return i, d
        return inputs[0]
    if spec.lstrip("-").isdigit():
        idx = int(spec)
        for i, d in inputs:
            if i == idx:
                return i, d
        raise AudioError(f"input device {idx} not found (inputs: {names})")
    matches = [(i, d) for i, d in inputs if spec.lower() in d["name"].lower()]
    if not matches:
        raise AudioError(f"no input device matches {spec!r} (inputs: {names})")
    exact = [(i, d) for i, d in matches if d["name"].lower() == spec.lower()]
    return (exact or matches)[0]


def pick_rate(sd, index: int, info: dict[str, Any], wanted: int) -> int:
    """`wanted` if set, else 8 kHz when the device takes it, else its default rate."""
    if wanted:
        return int(wanted)
    try:
        sd.check_input_settings(device=index, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
        return SAMPLE_RATE
    except Exception:
        return int(info["default_samplerate"])


class MicSource:
    live = True

    def __init__(self, cfg: AudioConfig) -> None:
        self.cfg = cfg
        self.sd = import_sounddevice()
        self.name = ""
        self.rate = 0
        self._stream = None
        self._ring: RingBuffer | None = None
        self._rs: StreamResampler | None = None
        self._events: list[Event] = []
        self._ev_lock = threading.Lock()
        self.device_overflows = 0  # PortAudio input-overflow flags seen in the callback
        self._flags_reported = 0
        self._last_cb = 0.0
        self._lost_at: float | None = None
        self._next_try = 0.0
        self._backoff = FIRST_BACKOFF_S

    # -- opening ------------------------------------------------------------------------
    def _open(self) -> None:
        sd = self.sd
        index, info = resolve_device(sd, self.cfg.device)
        rate = pick_rate(sd, index, info, self.cfg.capture_rate)
        channels = 1
        self._ring = RingBuffer(int(self.cfg.ring_seconds * rate))
        self._rs = StreamResampler(rate, SAMPLE_RATE)
        try:
            stream = sd.InputStream(device=index, samplerate=rate, channels=channels, dtype="float32",
                                    blocksize=max(1, rate * self.cfg.block_ms // 1000), callback=self._callback)
            stream.start()
        except Exception as e:
            raise AudioError(f"cannot open input device {index} {info['name']!r} at {rate} Hz ({_one_line(e)})") from None
        self._stream = stream
        self.name, self.rate = f"{index} {info['name']}", rate
        self._last_cb = time.monotonic()

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio thread: copy only
        if status.input_overflow:
            self.device_overflows += 1
        self._ring.push(indata.copy())  # type: ignore[union-attr]
        self._last_cb = time.monotonic()

    def start(self) -> None:
        self._open()
        self._event(DeviceEvent("open", self.name, self.rate))

    # -- reading ------------------------------------------------------------------------
    def read(self, timeout: float) -> Chunk | None:
        if self._lost_at is not None:
            return self._try_reopen(timeout)
        block, dropped = self._ring.pop(timeout)  # type: ignore[union-attr]
        if self.device_overflows != self._flags_reported:
            self._flags_reported = self.device_overflows
            self._event(OverflowEvent(0.0, "device"))
        drop8k = int(round(dropped * SAMPLE_RATE / self.rate))
        if block is None:
            now = time.monotonic()
            active = self._stream is not None and self._stream.active
            if not active or now - self._last_cb > STALL_S:
                self._lose(f"no audio for {now - self._last_cb:.1f} s" if active else "stream stopped")
            return Chunk(np.zeros(0, np.float32), drop8k) if drop8k else None
        x = block.mean(axis=1) if block.ndim == 2 and block.shape[1] > 1 else block.reshape(-1)
        return Chunk(self._rs.process(x), drop8k)  # type: ignore[union-attr]

    def _lose(self, why: str) -> None:
        self._event(DeviceEvent("lost", self.name, self.rate, why))
        self._close()
        self._lost_at = self._last_cb
        self._next_try = time.monotonic() + FIRST_BACKOFF_S
        self._backoff = FIRST_BACKOFF_S

    def _try_reopen(self, timeout: float) -> Chunk | None:
        now = time.monotonic()
        if now < self._next_try:
            time.sleep(min(timeout, self._next_try - now))
            return None
        try:
            self.sd._terminate()  # re-scan: PortAudio only enumerates devices at initialisation
            self.sd._initialize()
            self._open()
        except AudioError as e:
            self._backoff = min(self._backoff * 2, self.cfg.reconnect_max_s)
            self._next_try = time.monotonic() + self._backoff
            self._event(DeviceEvent("retrying", self.name, self.rate, f"{e}; next try in {self._backoff:.2f} s"))
            return None
        gap = int((time.monotonic() - (self._lost_at or now)) * SAMPLE_RATE)
        self._lost_at = None
        self._event(DeviceEvent("reopened", self.name, self.rate, f"after {gap / SAMPLE_RATE:.1f} s"))
        return Chunk(np.zeros(0, np.float32), gap=gap)

    @property
    def finished(self) -> bool:
        return False

    def _close(self) -> None:
        s, self._stream = self._stream, None
        if s is not None:
            try:
                s.abort()
                s.close()
            except Exception:
                pass

    def stop(self) -> None:
        self._close()

    def _event(self, ev: Event) -> None:
        with self._ev_lock:
            self._events.append(ev)

    def drain_events(self) -> list[Event]:
        with self._ev_lock:
            ev, self._events = self._events, []
        return ev


def _one_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


def devices_command(args, cfg: Config) -> int:
    """`digitd devices`: input devices, the default marked, and whether 8 kHz opens directly."""
    if getattr(args, "check", False):  # `make run`: microphone or demo?
        try:
            return 0 if input_devices(import_sounddevice()) else 1
        except AudioError:
            return 1
    sd = import_sounddevice()
    inputs = input_devices(sd)
    if not inputs:
        raise AudioError("no audio input device found (is a microphone or sound server available?)")
    default = default_input(sd)
    for i, d in inputs:
        rate = pick_rate(sd, i, d, 0)
        mark = "*" if i == default else " "
        note = "8000 Hz native" if rate == SAMPLE_RATE else f"opens at {rate} Hz, resampled"
        print(f"{mark} {i:3d}  {d['name']}  ({d['max_input_channels']} ch, default {int(d['default_samplerate'])} Hz; {note})")
    return 0
