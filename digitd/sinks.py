"""Event sinks: JSON Lines (machines), plain lines (logs), bare numbers (shell pipelines).
The Rich live UI is in `ui.py`, the socket server in `serve.py`, `--exec` in `hook.py`.
`digitd listen` formats what it receives with these same sinks."""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, TextIO

from digitd.events import (DeviceEvent, DigitEvent, Event, ExecEvent, NumberEvent, OverflowEvent, RejectedEvent,
                           ReloadEvent, SummaryEvent)


class _StreamSink:
    def __init__(self, stream: TextIO | None = None, on_closed: Callable[[], None] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.on_closed = on_closed
        self.closed = False

    def _write(self, line: str) -> None:
        if self.closed:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # the reader went away (`| head -1`): stop quietly, and keep Python's exit-time
            # flush of stdout from printing "Exception ignored ... BrokenPipeError"
            self.closed = True
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
            except (OSError, ValueError):
                pass
            if self.on_closed:
                self.on_closed()

    def close(self) -> None:
        pass


class JsonlSink(_StreamSink):
    """One JSON object per event, flushed at once (stable field names: see events.py)."""

    def handle(self, event: Event) -> None:
        self._write(event.to_json())


class PlainSink(_StreamSink):
    """Human-readable lines for logs and pipes."""

    def handle(self, event: Event) -> None:
        self._write(format_plain(event))


class NumbersSink(_StreamSink):
    """One line per complete number, just its digits (`... | while read n; do ...; done`).
    Incomplete numbers (a rejected word or lost audio inside), lost audio and `--exec`
    failures are one-line notes on stderr, never in the pipe."""

    def __init__(self, stream: TextIO | None = None, on_closed: Callable[[], None] | None = None,
                 err: TextIO | None = None) -> None:
        super().__init__(stream, on_closed)
        self.err = err or sys.stderr

    def handle(self, event: Event) -> None:
        if isinstance(event, NumberEvent) and event.complete:
            self._write(event.digits)
        elif isinstance(event, NumberEvent):
            self._note(f"incomplete number {event.digits or '-'} ({_why_incomplete(event)}), not printed")
        elif isinstance(event, (ExecEvent, ReloadEvent, OverflowEvent)):
            self._note(format_plain(event).lstrip("!# ").strip())

    def _note(self, text: str) -> None:
        try:
            print(f"digitd: {text}", file=self.err, flush=True)
        except (OSError, ValueError):
            pass


def _why_incomplete(e: NumberEvent) -> str:
    return f"{e.rejected} rejected word{'s' if e.rejected != 1 else ''} inside" if e.rejected else "audio lost inside"


def format_plain(e: Event) -> str:
    if isinstance(e, DigitEvent):
        return f"{e.digit}  conf {e.confidence:.2f}  {e.start:8.2f}-{e.end:.2f} s  latency {1000 * (e.emitted - e.end):.0f} ms"
    if isinstance(e, RejectedEvent):
        return f"?  rejected (best {e.best}, conf {e.confidence:.2f})  {e.start:8.2f}-{e.end:.2f} s"
    if isinstance(e, NumberEvent):
        tail = "" if e.complete else f"  INCOMPLETE ({_why_incomplete(e)})"
        return f"N  {e.digits}  conf {e.confidence:.2f}  {e.start:8.2f}-{e.end:.2f} s{tail}"
    if isinstance(e, ExecEvent):
        rc = f" (exit {e.returncode})" if e.returncode is not None else ""
        return f"!  exec {e.status} for {e.number or '-'}{rc}: {e.message}".rstrip(": ")
    if isinstance(e, ReloadEvent):
        if e.error:
            return f"#  reload failed, config unchanged: {e.error}"
        return (f"#  reloaded: applied {', '.join(e.applied) or 'nothing'}"
                + (f"; needs a restart: {', '.join(e.restart_needed)}" if e.restart_needed else ""))
    if isinstance(e, OverflowEvent):
        return f"!  overflow ({e.where}): {e.dropped_ms:.0f} ms of audio lost at {e.at:.2f} s"
    if isinstance(e, DeviceEvent):
        return f"#  device {e.state}: {e.name} {e.rate or ''} {e.message}".rstrip()
    if isinstance(e, SummaryEvent):
        return (f"=  {e.digits} digits, {e.rejected} rejected, {e.utterances} utterances, "
                f"{e.overflows} overflows ({e.dropped_ms:.0f} ms lost), {e.audio_s:.1f} s audio: {e.transcript}")
    return json.dumps(e.to_dict())
