"""Number grouping: a stage after the classifier that turns digit events into number events.

Rule (stream time, so it is the same live, paced or at `--speed max`): an utterance whose
start is less than `group.pause_ms` after the end of the previous one joins its number;
otherwise the open number is closed first. `group.length` > 0 closes a number as soon as it
holds that many digits. A rejected utterance (or lost audio) inside a number does not join
silently: the number is emitted with `complete = false`. A group without any digit (a lone
rejected utterance) emits nothing. Rejections for reason `unvoiced` (coughs, clicks, breath:
no sustained pitch, which every FSDD test-split digit has) are not words and are ignored;
`split_word` rejections (the second half of the digit before them) extend that word.

The grouper sees events in stream order, one at a time (`push`), and the pipeline's clock
(`tick`): a pause is only over once no word that could still start inside it is in flight,
which the pipeline tells it as `horizon` (see `Pipeline._tick`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from digitd.config import GroupConfig
from digitd.events import DigitEvent, Event, NumberEvent, OverflowEvent, RejectedEvent, SummaryEvent


@dataclass
class _Open:
    start: float
    end: float  # end of the last member (digit or rejected)
    digits: list[DigitEvent] = field(default_factory=list)
    rejected: int = 0
    lost: bool = False  # audio was dropped while this number was open


class NumberGrouper:
    """`push(event) -> events to deliver` (the event itself, with any number it closes, in
    order); `tick(now, horizon)` closes a number whose pause is over; a `SummaryEvent`
    (end of stream) closes the open number before it. Reads `cfg` live (SIGHUP reload)."""

    def __init__(self, cfg: GroupConfig) -> None:
        self.cfg = cfg
        self._open: _Open | None = None

    @property
    def deadline(self) -> float | None:
        """Stream time at which the open number closes unless a word starts before it."""
        o = self._open
        return None if o is None else o.end + self.cfg.pause_ms / 1000.0

    def push(self, event: Event) -> list[Event]:
        out: list[Event] = []
        if isinstance(event, DigitEvent) or (isinstance(event, RejectedEvent) and event.reason != "unvoiced"):
            o = self._open
            if o is not None and event.start >= o.end + self.cfg.pause_ms / 1000.0:
                out += self._close(event.emitted)  # a late pause: the word arrived before the tick
                o = None
            if o is None:
                o = self._open = _Open(event.start, event.end)
            o.end = max(o.end, event.end)
            out.append(event)
            if isinstance(event, DigitEvent):
                o.digits.append(event)
                if self.cfg.length and len(o.digits) >= self.cfg.length:
                    out += self._close(event.emitted)
            elif event.reason != "split_word":  # the second half of the digit before it: that word's end, not a new word
                o.rejected += 1
            return out
        if isinstance(event, OverflowEvent) and self._open is not None:
            self._open.lost = True
        elif isinstance(event, SummaryEvent):
            out += self.flush(event.audio_s)
        out.append(event)
        return out

    def tick(self, now: float, horizon: float) -> list[Event]:
        """Close the open number if its pause is over: nothing that could still arrive
        starts before `horizon` (stream seconds). `now` becomes its `emitted`."""
        d = self.deadline
        if d is None or horizon < d:
            return []
        return self._close(now)

    def flush(self, now: float) -> list[Event]:
        """End of stream: close the open number, if any."""
        return self._close(now)

    def _close(self, emitted: float) -> list[Event]:
        o, self._open = self._open, None
        if o is None or not o.digits:
            return []
        return [NumberEvent(
            digits="".join(d.digit for d in o.digits), start=o.start, end=o.end, emitted=max(emitted, o.end),
            confidence=min(d.confidence for d in o.digits), complete=not (o.rejected or o.lost), rejected=o.rejected,
        )]


def group_events(events: Iterable[Event], cfg: GroupConfig) -> list[NumberEvent]:
    """The numbers a stream of events makes, pushed in order then closed at the end: used
    for truth numbers in the benchmark, so truth and daemon share the one rule."""
    g = NumberGrouper(cfg)
    out: list[Event] = []
    last = 0.0
    for e in events:
        out += g.push(e)
        last = max(last, getattr(e, "emitted", last))
    out += g.flush(last)
    return [e for e in out if isinstance(e, NumberEvent)]
