"""Rich live terminal UI: transcript grouped into numbers, VAD state + level meter, per-stage
latency, counters.

It only reads the pipeline's status/timings REFRESH_HZ times a second and receives events like any sink,
so it adds nothing to the audio path. Used only when stdout is a terminal. Only the header
(VAD state, level meter, stream time) is laid out on every refresh; the transcript and the
statistics only when an event arrives (`_Frozen`).
"""

from __future__ import annotations

import itertools
import threading
from typing import Sequence
from collections import deque

import numpy as np
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from digitd.config import Config
from digitd.events import DeviceEvent, DigitEvent, Event, ExecEvent, NumberEvent, RejectedEvent, ReloadEvent, SummaryEvent
from digitd.pipeline import Pipeline
from digitd.sinks import format_plain

# Each refresh wakes a thread and redraws the screen (~2.5 ms of CPU on a busy 2-core box, even
# with the slow parts cached): 10 Hz cost ~2.5 % of a core, 4 Hz (Rich's default) ~1 %; a level
# meter moving 4 times a second still reads as live.
REFRESH_HZ = 4

STATE_STYLE = {"silence": "dim", "speech": "bold green", "trailing": "yellow"}


def _pct(a: Sequence[float], scale: float = 1.0) -> tuple[str, str, str]:
    """last / p50 / p95 over the most recent 3000 values (the pipeline keeps a bounded deque)."""
    if not a:
        return "-", "-", "-"
    x = np.fromiter(itertools.islice(reversed(a), 3000), dtype=np.float64)[::-1] * scale
    p50, p95 = np.percentile(x, [50, 95])
    return f"{x[-1]:.2f}", f"{p50:.2f}", f"{p95:.2f}"


class _Frozen:
    """A renderable laid out once and replayed until its key (or the width) changes.

    Why: Rich lays out every panel and table again on each refresh, ~6 ms for this screen:
    6 % of a core at 10 Hz, four times what the whole pipeline costs while listening. The
    transcript and the statistics change only when an event arrives (stream time is in the header)."""

    def __init__(self) -> None:
        self._key: object = object()
        self._renderable: RenderableType = ""
        self._lines: list[list[Segment]] | None = None
        self._width = -1

    def update(self, key: object, build) -> "_Frozen":
        """Rebuild with `build()` when `key` differs from the last one; returns self."""
        if key != self._key:
            self._key, self._renderable, self._lines = key, build(), None
        return self

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self._lines is None or self._width != options.max_width:
            self._lines = console.render_lines(self._renderable, options, pad=False)
            self._width = options.max_width
        for line in self._lines:
            yield from line
            yield Segment.line()


class LiveUI:
    def __init__(self, pipeline: Pipeline, cfg: Config, console: Console | None = None) -> None:
        self.p = pipeline
        self.cfg = cfg
        self.console = console or Console()
        self.items: deque[Event] = deque(maxlen=cfg.output.transcript_len)
        self.numbers: deque[NumberEvent] = deque(maxlen=cfg.output.transcript_len)
        self.last_device = ""
        self.summary: SummaryEvent | None = None
        self._lock = threading.Lock()
        self._transcript_view = _Frozen()
        self._stats_view = _Frozen()
        self._live = Live(console=self.console, get_renderable=self.render, refresh_per_second=REFRESH_HZ, transient=False)

    def __enter__(self) -> "LiveUI":
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)

    def handle(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, (DigitEvent, RejectedEvent)):
                self.items.append(event)
            elif isinstance(event, NumberEvent):
                self.numbers.append(event)
            elif isinstance(event, DeviceEvent):
                self.last_device = f"{event.state} {event.message}".strip()
            elif isinstance(event, (ExecEvent, ReloadEvent)):
                self.last_device = format_plain(event).lstrip("!# ")
            elif isinstance(event, SummaryEvent):
                self.summary = event

    def close(self) -> None:
        pass

    # -- rendering ------------------------------------------------------------------------
    def render(self) -> Group:
        with self._lock:
            items, numbers = list(self.items), list(self.numbers)
        words = (len(items), id(items[-1]) if items else None, len(numbers), id(numbers[-1]) if numbers else None)
        p, ep = self.p, self.p.endpointer
        counters = (tuple(p.counts.values()), ep.dropped_short, ep.dropped_quiet, p.dropped_background,
                    p.dropped_samples, len(p.timings.total_ms))
        return Group(self._header(), self._transcript_view.update(words, lambda: self._transcript(items, numbers)),
                     self._stats_view.update(counters, self._stats))

    def _header(self) -> Panel:
        st = self.p.status
        level = max(-80.0, min(0.0, float(st["level_db"])))
        width = 30
        filled = int(round((level + 80.0) / 80.0 * width))
        meter = Text("█" * filled, style="green" if level < -12 else "red") + Text("░" * (width - filled), style="dim")
        t = Text.assemble(
            ("device ", "dim"), (f"{st['device'] or '-'}", "bold"), ("  ", ""), (f"{st['rate']} Hz", "cyan"),
            ("   VAD ", "dim"), (f"{st['state']:<8}", STATE_STYLE.get(st["state"], "")),
            ("  level ", "dim"), meter, (f" {level:6.1f} dBFS", ""), (f"  floor {st['floor_db']:.0f}", "dim"),
            # a quiet microphone: how much the VAD raises it (vad.max_gain_db)
            (f"  vad gain +{st['vad_gain_db']:.0f} dB" if st["vad_gain_db"] >= 1 else "", "dim"),
            # a coloured microphone: the equaliser's largest lift or cut on what the members hear (equalize.mic)
            (f"  mic eq {self.p.equalizer.strength_db:.0f} dB" if self.p.equalizer.strength_db >= 1 else "", "dim"),
            ("  stream ", "dim"), (f"{self.p.stream_time:.0f} s", ""),
        )
        if self.last_device:
            t.append(f"\ndevice {self.last_device}", style="yellow" if not self.last_device.startswith(("open", "reopened")) else "dim")
        if not st["running"]:
            t.append("\nstopped", style="bold red")
        return Panel(t, title="digitd", border_style="blue")

    def _transcript(self, items: list[Event], numbers: list[NumberEvent]) -> Panel:
        """Words in order; the words of each closed number inside [ ] followed by the number;
        words after the last number are the one still open (its pause is not over)."""
        t = Text()
        group = [None] * len(items)  # index of the closed number each word belongs to
        for k, e in enumerate(items):
            for j, n in enumerate(numbers):
                if n.start <= e.start and e.end <= n.end:  # type: ignore[attr-defined]
                    group[k] = j
        for k, e in enumerate(items):
            latest = k == len(items) - 1
            if group[k] is not None and (k == 0 or group[k - 1] != group[k]):
                t.append("[", style="cyan")
            if isinstance(e, DigitEvent):
                t.append(f" {e.digit} ", style="bold black on green" if latest else "bold")
                t.append(f"{e.confidence:.2f}", style="green" if latest else "dim")
            elif isinstance(e, RejectedEvent):
                t.append(f" ?{e.best}", style="grey50" if not latest else "grey70 on grey23")
                t.append(f" {e.confidence:.2f}", style="grey42")
            if group[k] is not None and (k == len(items) - 1 or group[k + 1] != group[k]):
                n = numbers[group[k]]  # type: ignore[index]
                t.append("] ", style="cyan")
                t.append(f"= {n.digits}", style="bold cyan" if n.complete else "yellow")
                if not n.complete:
                    t.append(" (incomplete)", style="yellow")
            t.append("  ")
        if not items:
            t.append("say some digits...", style="dim italic")
        return Panel(t, title=f"transcript (digit + confidence; rejected greyed; \\[a number] once its "
                              f"{self.cfg.group.pause_ms} ms pause is over)", border_style="green")

    def _stats(self) -> Table:
        tm = self.p.timings
        lat = Table(title="latency", expand=False, show_edge=False)
        lat.add_column("stage")
        for c in ("last", "p50", "p95"):
            lat.add_column(c, justify="right")
        lat.add_row("VAD / frame (µs)", *_pct(tm.vad_us))
        lat.add_row("endpoint / frame (µs)", *_pct(tm.endpoint_us))
        lat.add_row("features (ms)", *_pct(tm.features_ms))
        lat.add_row("classify (ms)", *_pct(tm.classify_ms))
        lat.add_row("end decided → result (ms)", *_pct(tm.total_ms))
        lat.add_row("end of speech → digit (ms)", *_pct(tm.eos_s, 1000.0))
        c = self.p.counts
        cnt = Table(title="counters", show_header=False, show_edge=False)
        cnt.add_column("k")
        cnt.add_column("v", justify="right")
        cnt.add_row("utterances", str(c["utterances"]))
        cnt.add_row("digits", str(c["digits"]))
        cnt.add_row("numbers", str(c.get("numbers", 0)))
        cnt.add_row("rejected", str(c["rejected"]))
        cnt.add_row("dropped (clicks)", str(self.p.endpointer.dropped_short + self.p.endpointer.dropped_quiet))
        cnt.add_row("dropped (background)", str(self.p.dropped_background))
        cnt.add_row("overflows", f"{c['overflows']} ({1000 * self.p.dropped_samples / 8000:.0f} ms)")
        cnt.add_row("queue drops", str(c["queue_dropped"]))
        grid = Table.grid(padding=(0, 4))
        grid.add_row(lat, cnt)
        return grid
