"""`digitd enroll`: record a person's takes of the ten digits and adapt the model to them.

Takes are cut by the same pipeline as `digitd run` (capture or file -> VAD -> endpointer), so a
take is the word exactly as it will be heard later. The prompts are the ten digits in a seeded
random order, `--takes` rounds of them; each utterance answers the current prompt. A take that
is clipped, too quiet, cut off (the endpointer's forced cut) or two words in one (the endpointer
split it) is not kept and the digit is asked again; at a terminal, `r` asks the last kept take
again and `q` ends the session. `--input FILE.wav` plays a recorded session (its utterances
answer the prompts in order), `--from` takes whole `{digit}_*.wav` clips without prompting.
"""

from __future__ import annotations

import argparse
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from digitd import SAMPLE_RATE
from digitd.config import Config
from digitd.errors import DigitdError
from digitd.model import DigitModel, load_model
from digitd import profile as prof

DIGITS = [str(d) for d in range(10)]
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NOISE = "not a voice (a noise?)"  # ignored: the prompt stays, nothing is counted against the person
GROUP_WAIT_S = 0.3  # live: how long to wait for a second piece of the same utterance (a split)


def prompt_order(seed: int, takes: int) -> list[str]:
    """`takes` rounds of the ten digits, each round in its own order (a session is reproducible
    from its seed: tests record a session in this order)."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(takes):
        r = DIGITS[:]
        rng.shuffle(r)
        out += r
    return out


@dataclass
class Heard:
    """One utterance the pipeline cut, or several cut from one stretch of speech: `audio` is what
    the classifier heard (the take that is kept), `word` the trimmed word (checked for clipping
    and level)."""

    audio: np.ndarray
    label: str
    confidence: float
    reason: str | None  # the daemon's reject reason
    pieces: int = 1
    forced: bool = False
    word: np.ndarray | None = None  # None: the same as audio


def problem(h: Heard, cfg: Config) -> str | None:
    """Why a take is not kept (the person is asked again), or None."""
    x = np.abs(h.audio if h.word is None else h.word)
    if h.pieces > 1:
        return "two words in one"
    if h.forced:
        return "cut off (too long)"
    if x.size and np.mean(x >= 0.99) > cfg.user.clipped_share:
        return "clipped (softer, or further from the microphone)"
    if 20 * np.log10(max(float(x.max(initial=0.0)), 1e-9)) < cfg.user.min_peak_dbfs:
        return "too quiet (closer to the microphone)"
    if h.reason == "unvoiced":
        return NOISE
    return None


# ---- where utterances come from ---------------------------------------------------------------


def _pipeline(cfg: Config, model: DigitModel, sink: "queue.Queue[Any]"):
    from digitd.pipeline import Pipeline

    p = Pipeline(cfg, model)
    p.on_utterance = lambda u, heard, pred, reason: sink.put((u, heard, pred, reason))
    return p


def _grouped(items: list[tuple[Any, Any, str | None]]) -> Heard:
    """Pieces the endpointer cut from one stretch of speech (same end decision) as one Heard."""
    u, heard, pred, reason = items[0]
    return Heard(heard if len(items) == 1 else np.concatenate([i[1] for i in items]), pred.label, pred.confidence, reason,
                 len(items), any(i[0].forced for i in items), np.concatenate([i[0].audio for i in items]))


def _same_take(first: tuple, it: tuple) -> bool:
    """Is `it` a piece of the take that began with `first`? Cut from the same stretch of speech
    (one end decision), or the second half of a word the endpointer broke (`split_word`)."""
    return it[0].detected_sample == first[0].detected_sample or it[3] == "split_word"


def file_heard(path: str, cfg: Config, model: DigitModel) -> list[Heard]:
    """Every utterance of a recorded session, as `digitd run --input` cuts it."""
    from digitd.audio import read_wav
    from digitd.sources import FileSource

    read_wav(path, mmap=True)  # a missing or broken file: one line, before anything else
    q: queue.Queue = queue.Queue()
    _pipeline(cfg, model, q).run(FileSource(path, "max", cfg.audio.block_ms, cfg.audio.ring_seconds))
    items = []
    while not q.empty():
        items.append(q.get())
    groups: list[list[Any]] = []
    for it in items:
        if groups and _same_take(groups[-1][0], it):
            groups[-1].append(it)
        else:
            groups.append([it])
    return [_grouped(g) for g in groups]


class LiveHeard:
    """The microphone through the pipeline in a thread; `next(timeout)` gives the next Heard."""

    def __init__(self, cfg: Config, model: DigitModel, source: Any, screen: "Screen") -> None:
        self.q: queue.Queue = queue.Queue()
        self._next: Any = None  # a word that arrived while waiting for pieces of the one before
        self.pipeline = _pipeline(cfg, model, self.q)
        self.pipeline.sinks.append(screen)  # device open / lost / reopened, overflows
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, args=(source,), name="enroll-pipeline", daemon=True)
        self._t.start()

    def _run(self, source: Any) -> None:
        try:
            self.pipeline.run(source)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e

    def next(self, timeout: float) -> Heard | None:
        if self.error is not None:
            raise self.error
        first, self._next = self._next, None
        while first is None or first[3] == "split_word":  # a broken word's late second half: its take is answered
            try:
                first = self.q.get(timeout=timeout)
            except queue.Empty:
                return None
        items = [first]
        end = time.monotonic() + GROUP_WAIT_S
        while time.monotonic() < end:
            try:
                it = self.q.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if not _same_take(first, it):
                self._next = it  # the next word: it answers the next prompt
                break
            items.append(it)
        return _grouped(items)

    def close(self) -> None:
        self.pipeline.stop()
        self._t.join(3)


class Keys:
    """Single key presses at a terminal (`r` redo, `q` quit), read in a thread; no-op elsewhere."""

    def __init__(self) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self._old = None
        if not sys.stdin.isatty():
            return
        import termios
        import tty

        self._old = termios.tcgetattr(sys.stdin)
        tty.setcbreak(sys.stdin.fileno())
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            c = sys.stdin.read(1)
            if not c:
                return
            self.q.put(c.lower())

    def get(self) -> str | None:
        try:
            return self.q.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        if self._old is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._old)


# ---- the session ------------------------------------------------------------------------------


@dataclass
class Attempt:
    prompt: str
    heard: Heard | None
    kept: bool
    note: str


class Screen:
    """The Rich screen: the digit to say, what the model heard, the takes so far. Without a
    terminal, one plain line per attempt on stderr."""

    def __init__(self, name: str, total: int) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.name, self.total = name, total
        self.attempts: list[Attempt] = []
        self.prompt: str | None = None
        self.kept = 0
        self.live = None
        self.hint = ""
        self.level = lambda: None
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, get_renderable=self.render, refresh_per_second=10, transient=False)
            self.live.__enter__()

    def render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        say = Text()
        if self.prompt is not None:
            say.append("say  ", style="dim")
            say.append(f"{WORDS[int(self.prompt)].upper()}  ({self.prompt})", style="bold cyan")
        else:
            say.append("done", style="bold green")
        lvl = self.level()
        head = f"enrolling [bold]{self.name}[/bold]: take {min(self.kept + 1, self.total)} of {self.total}"
        if lvl is not None:
            head += f"   level {lvl:5.1f} dBFS"
        t = Table(show_edge=False, pad_edge=False)
        for c in ("prompt", "heard", "confidence", ""):
            t.add_column(c)
        for a in self.attempts[-8:]:
            h = a.heard
            t.add_row(a.prompt, h.label if h else "-", f"{h.confidence:.2f}" if h else "-",
                      Text(a.note, style="green" if a.kept else "yellow"))
        keys = Text("r = say the last take again   q = stop here (keeps the takes so far)   Ctrl-C = stop, keep nothing", style="dim") if self.live else Text("")
        hint = Text(self.hint, style="yellow")
        return Panel(Group(Text.from_markup(head), say, hint, t, keys), title="digitd enroll", expand=False)

    def handle(self, event: Any) -> None:
        """Pipeline events worth a line: the device (open, lost, reopened) and lost audio."""
        from digitd.events import DeviceEvent, OverflowEvent

        if isinstance(event, DeviceEvent):
            self.console.print(f"enroll: device {event.state}: {event.name} {event.message}".rstrip(), highlight=False)
        elif isinstance(event, OverflowEvent):
            self.console.print(f"enroll: {event.to_dict()}", highlight=False)

    def show(self, prompt: str | None) -> None:
        self.prompt = prompt

    def add(self, a: Attempt) -> None:
        self.attempts.append(a)
        if self.live is None:
            h = a.heard
            heard = f"heard {h.label} ({h.confidence:.2f})" if h else "heard nothing"
            self.console.print(f"say {a.prompt}: {heard}: {a.note}", highlight=False)

    def close(self) -> None:
        if self.live is not None:
            self.prompt = None
            self.live.__exit__(None, None, None)


def run_session(prompts: list[str], heard: Iterator[Heard | None], cfg: Config, screen: Screen,
                keys: Keys | None = None) -> list[tuple[str, np.ndarray]]:
    """Answer each prompt with the next good take; a bad one (or `r`) asks again. `heard` yields
    None when nothing was said for a while (live) and ends when the source does."""
    todo = list(prompts)
    kept: list[tuple[str, np.ndarray]] = []
    mismatch: str | None = None  # what the last take of this prompt was heard as, when another digit
    while todo:
        screen.show(todo[0])
        key = keys.get() if keys else None
        if key == "q":
            break
        if key == "r" and kept:
            d, _ = kept.pop()
            screen.kept = len(kept)
            todo.insert(0, d)
            mismatch = None
            screen.add(Attempt(d, None, False, "again (r)"))
            continue
        try:
            h = next(heard)
        except StopIteration:
            break
        if h is None:
            continue
        why = problem(h, cfg)
        if why:
            screen.add(Attempt(todo[0], h, False, f"ignored: {why}" if why == NOISE else f"again: {why}"))
            continue
        if h.label != todo[0] and h.reason is None and h.confidence >= cfg.user.mismatch_confidence and h.label != mismatch:
            # the wrong word, or a word answering the wrong prompt: ask again; the same answer
            # twice is the person's own way of saying the digit, and is kept
            mismatch = h.label
            screen.add(Attempt(todo[0], h, False, f"again: that sounded like {h.label}"))
            continue
        mismatch = None
        note = "kept" if h.label == todo[0] and h.reason is None else (
            f"kept (the model heard {h.label}; learning your {todo[0]})" if h.label != todo[0] else "kept (rejected before)")
        kept.append((todo.pop(0), h.audio))
        screen.kept = len(kept)
        screen.add(Attempt(kept[-1][0], h, True, note))
    return kept


def from_files(paths: Iterable[str], cfg: Config, model: DigitModel, screen: Screen) -> list[tuple[str, np.ndarray]]:
    """Whole `{digit}_*.wav` clips as takes (no prompting); any unusable file stops everything."""
    import re

    from digitd.audio import AudioError, load_wav
    from digitd.model import reject_reason
    from digitd.predict import iter_inputs

    for p in paths:
        if not Path(p).exists():
            raise DigitdError(f"{p}: no such file or folder")
    files = list(iter_inputs(list(paths)))
    if not files:
        raise DigitdError(f"{', '.join(paths)}: no WAV files")
    loaded = []
    for p in files:
        m = re.match(r"^(\d)_.*\.wav$", p.name, re.IGNORECASE)
        if not m:
            raise DigitdError(f"{p}: an enrollment clip is named {{digit}}_*.wav")
        try:
            loaded.append((m[1], load_wav(p), p))
        except AudioError as e:
            raise DigitdError(str(e)) from None
    kept = []
    for digit, x, p in loaded:
        if len(x) < SAMPLE_RATE // 10:
            raise DigitdError(f"{p}: too short for a take ({len(x)} samples)")
        pred = model.predict_wave(x)
        reason = reject_reason(x, pred, cfg.classify)
        h = Heard(x, pred.label, pred.confidence, reason)
        why = problem(h, cfg)
        screen.add(Attempt(digit, h, not why, f"skipped {p.name}: {why}" if why else f"kept {p.name}"))
        if not why:
            kept.append((digit, x))
    return kept


def summary_table(card: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    acc = card["accuracy"]
    t = Table(title=f"profile {card['user']}: {card['n_takes']} takes, adapted in {card['adapt_s']:.2f} s")
    t.add_column("accuracy on the takes")
    t.add_column("", justify="right")
    t.add_row("before (the model as shipped)", f"{100 * acc['before']:.1f}%")
    t.add_row("after (adapted to these takes)", f"{100 * acc['after']:.1f}%")
    if acc.get("after_held_out") is not None:
        t.add_row("after, each take held out (fitted on the other half)", f"{100 * acc['after_held_out']:.1f}%")
    console.print(t)
    console.print(f"takes per digit: {' '.join(f'{d}:{n}' for d, n in card['takes'].items())}", highlight=False)


def list_table(cfg: Config, model_sha: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    cards = prof.list_profiles(cfg)
    con = Console()
    if not cards:
        con.print(f"no profiles in {prof.users_dir(cfg)}", highlight=False)
        return
    t = Table(title=f"profiles in {prof.users_dir(cfg)}")
    for c in ("user", "takes", "before -> after", "updated", "base model"):
        t.add_column(c)
    for c in cards:
        if "error" in c:
            t.add_row(c["user"], "-", "-", "-", f"[red]{c['error']}[/red]")
            continue
        acc = c.get("accuracy", {})
        sha = c.get("model", {}).get("sha256", "")
        same = "this model" if model_sha and sha == model_sha else f"other ({sha[:12]}): rebuilt on use"
        t.add_row(c["user"], str(c.get("n_takes", 0)), f"{100 * acc.get('before', 0):.0f}% -> {100 * acc.get('after', 0):.0f}%",
                  str(c.get("updated", "")), same)
    con.print(t)


def enroll_command(args: argparse.Namespace, cfg: Config) -> int:
    if args.list:
        try:
            sha = prof.model_id(load_model(cfg.classify.model or None))
        except Exception:  # noqa: BLE001 - the list does not need a loadable model
            sha = None
        list_table(cfg, sha)
        return 0
    if args.remove:
        print(f"removed {prof.remove(cfg, args.remove)}")
        return 0
    name = cfg.user.name
    if not name:
        raise DigitdError("enroll needs --user NAME (or --list, --remove NAME)")
    pdir = prof.profile_dir(cfg, name)
    if args.input and args.from_paths:
        raise DigitdError("--input and --from cannot be used together")
    source = None
    if not args.input and not args.from_paths:
        from digitd.daemon import make_source

        source = make_source(argparse.Namespace(input=None, demo=False), cfg)  # no device: fail before the model load
    model = load_model(cfg.classify.model or None)
    if model.embed is None:
        raise DigitdError("this model has no speech-embedding member, which a user profile adapts")
    base = model
    if (pdir / prof.CARD).is_file():  # re-running: the current model is the one with the profile
        model = prof.with_user(model, cfg)
    seed = cfg.user.seed if cfg.user.seed >= 0 else random.SystemRandom().randrange(2**31)
    prompts = prompt_order(seed, cfg.user.takes)
    screen = Screen(name, len(prompts))
    keys = None
    live = None
    try:
        if args.from_paths:
            takes = from_files(args.from_paths, cfg, model, screen)
        elif args.input:
            takes = run_session(prompts, iter(file_heard(args.input, cfg, model)), cfg, screen)
        else:
            model.warm_up()
            live = LiveHeard(cfg, model, source, screen)
            screen.level = lambda: live.pipeline.status.get("level_db")
            keys = Keys()

            def heard() -> Iterator[Heard | None]:
                """Every 0.2 s at most (so `r` and `q` act at once); a hint after wait_s of nothing."""
                idle = time.monotonic()
                while True:
                    h = live.next(0.2)
                    if h is not None:
                        idle, screen.hint = time.monotonic(), ""
                    elif time.monotonic() - idle > cfg.user.wait_s and not screen.hint:
                        screen.hint = f"nothing heard for {cfg.user.wait_s:g} s: is the microphone on? (watch the level)"
                        if screen.live is None:
                            screen.console.print(screen.hint, highlight=False)
                    yield h

            takes = run_session(prompts, heard(), cfg, screen, keys)
    finally:
        if keys is not None:
            keys.close()
        if live is not None:
            live.close()
        screen.close()
    if not takes:
        raise DigitdError(f"no usable take heard; nothing saved for {name!r}")
    if not args.from_paths and len(takes) < len(prompts):
        screen.console.print(f"digitd: {len(takes)} of {len(prompts)} prompts got a take; saving those", highlight=False)
    prof.add_takes(pdir, takes)
    card = prof.build(cfg, name, base)
    summary_table(card, screen.console)
    print(f"saved {pdir}" + ("" if args.from_paths else f" (prompt seed {seed})"))
    return 0
