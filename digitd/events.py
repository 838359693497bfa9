"""Events: what the pipeline reports. Plain dataclasses; `to_dict` is the JSON Lines contract.

Times (`start`, `end`, `emitted`) are seconds of stream time counted from the stream's
first sample (dropped audio still advances the clock, so times stay aligned with the
real world). `latency_ms` holds wall-clock compute times per stage.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


@dataclass
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"event": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float):
                v = _r(v)
            elif isinstance(v, dict):
                v = {k: (_r(x, 3) if isinstance(x, float) else x) for k, x in v.items()}
            d[f.name] = v
        return d

    def to_json(self) -> str:
        """The JSON Lines form: one line, the same bytes for stdout and every socket client."""
        return json.dumps(self.to_dict(), separators=(", ", ": "))


@dataclass
class DigitEvent(Event):
    """A recognised digit."""

    kind: ClassVar[str] = "digit"
    digit: str
    confidence: float
    start: float
    end: float
    emitted: float
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class RejectedEvent(Event):
    """An utterance whose best guess was below `classify.reject_threshold`."""

    kind: ClassVar[str] = "rejected"
    start: float
    end: float
    emitted: float
    best: str
    confidence: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    reason: str = "low_confidence"  # low_confidence | unvoiced (no sustained pitch: cough, clap, noise) | split_word (the second half of the digit before it) | background_talk (heard in background talk, far under the talker, not confident enough)


@dataclass
class NumberEvent(Event):
    """Digits spoken with pauses shorter than `group.pause_ms` (see numbers.py).

    `confidence` is the weakest digit's. `complete` is false when a rejected utterance or
    lost audio fell inside the number: a digit may be missing, so do not trust it as a PIN.
    """

    kind: ClassVar[str] = "number"
    digits: str
    start: float
    end: float
    emitted: float
    confidence: float
    complete: bool = True
    rejected: int = 0  # rejected utterances inside the number


@dataclass
class OverflowEvent(Event):
    """Audio was lost (capture ring full, or the utterance queue full)."""

    kind: ClassVar[str] = "overflow"
    dropped_ms: float
    where: str = "capture"  # capture | queue
    at: float = 0.0  # stream time when the loss was noticed


@dataclass
class DeviceEvent(Event):
    """The input device changed state: open, lost, retrying, reopened."""

    kind: ClassVar[str] = "device"
    state: str
    name: str = ""
    rate: int = 0
    message: str = ""
    at: float = 0.0


@dataclass
class ExecEvent(Event):
    """An `--exec` command that did not succeed for a number (never fatal: see hook.py)."""

    kind: ClassVar[str] = "exec"
    status: str  # failed (non-zero exit) | timeout (killed) | error (could not start) | dropped (queue full)
    number: str = ""
    returncode: int | None = None
    message: str = ""  # the last line of its stderr/stdout, or why it did not run
    at: float = 0.0


@dataclass
class ReloadEvent(Event):
    """SIGHUP re-read the config: which knobs took effect now and which need a restart."""

    kind: ClassVar[str] = "reload"
    applied: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    error: str = ""  # the config could not be read: nothing changed
    at: float = 0.0


@dataclass
class SummaryEvent(Event):
    """Counts at the end of a stream."""

    kind: ClassVar[str] = "summary"
    utterances: int = 0
    digits: int = 0
    rejected: int = 0
    dropped_short: int = 0  # utterances dropped as clicks (too short) or too quiet
    dropped_background: int = 0  # words dropped for not rising over the background (endpoint.background_gate)
    forced_cuts: int = 0
    overflows: int = 0
    dropped_ms: float = 0.0
    queue_dropped: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    transcript: str = ""
    first_frame_unix: float = 0.0  # wall clock (Unix time) when the first frame was processed
    peak_rss_mb: float = 0.0  # peak resident memory of the process so far


KINDS: dict[str, type[Event]] = {c.kind: c for c in (DigitEvent, RejectedEvent, NumberEvent, OverflowEvent,
                                                     DeviceEvent, ExecEvent, ReloadEvent, SummaryEvent)}


def from_dict(d: dict[str, Any]) -> Event | None:
    """An event back from its JSON Lines form (what `digitd listen` receives); None for an
    unknown kind. Unknown fields are ignored, so newer servers can add fields."""
    cls = KINDS.get(str(d.get("event")))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in d.items() if k in names})
    except TypeError:  # a required field is missing
        return None
