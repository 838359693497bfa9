"""Scoring a stream: digit error rate by time alignment, false alarms, and end-of-speech latency.

Truth items have a `kind` (default "digit", so plain {digit, start, end} lists still work):
- "digit" ({digit}): a spoken digit;
- "word" ({word}) or "sound" ({sound}): something spoken or heard that is not a digit;
- "background": a stretch with background audio only.

Each digit event is matched to at most one digit/word/sound item (the one it overlaps most; a
match needs overlap, or centres within `tol` seconds). An event on a digit with the wrong label
is a substitution, a digit with no event a deletion. An event on a word or sound is a false alarm
of that item, not an insertion (more events on the same item too); non-digit items never count
as deletions. Any other event is an insertion, and also a background insertion when its middle
lies in a background-only stretch. DER = (S + D + I) / N over the N digits.
Latency = emitted - truth end for every digit that got an event.

Numbers: the truth digits grouped by the daemon's own rule (numbers.py) on truth times; a
truth number is right when a `complete` number event with exactly its digits overlaps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from digitd.config import GroupConfig
from digitd.events import DigitEvent
from digitd.numbers import group_events

KINDS = ("digit", "word", "sound", "background")


@dataclass
class Score:
    n: int  # digits in the truth
    correct: int
    substitutions: int
    deletions: int
    insertions: int
    latencies_s: list[float] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (truth index, digit-event index), digits only
    n_words: int = 0  # non-digit words in the truth
    word_false_alarms: int = 0  # of them, words that got at least one digit
    n_sounds: int = 0  # coughs, clicks, knocks
    sound_false_alarms: int = 0
    background_insertions: int = 0  # insertions inside background-only stretches (part of `insertions`)
    background_s: float = 0.0  # total length of those stretches

    @property
    def der(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / max(1, self.n)

    @property
    def fa_rate(self) -> float | None:
        """Non-digit words emitted as a digit / non-digit words (None without any)."""
        return self.word_false_alarms / self.n_words if self.n_words else None

    @property
    def sound_fa_rate(self) -> float | None:
        return self.sound_false_alarms / self.n_sounds if self.n_sounds else None

    @property
    def background_insertions_per_min(self) -> float | None:
        return self.background_insertions / (self.background_s / 60.0) if self.background_s > 0 else None

    def latency(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "correct": self.correct, "S": self.substitutions, "D": self.deletions,
                "I": self.insertions, "der": round(self.der, 4),
                "latency_p50_ms": round(1000 * self.latency(50), 1), "latency_p95_ms": round(1000 * self.latency(95), 1),
                "n_words": self.n_words, "word_false_alarms": self.word_false_alarms, "n_sounds": self.n_sounds,
                "sound_false_alarms": self.sound_false_alarms, "background_insertions": self.background_insertions,
                "background_s": round(self.background_s, 3)}


def _get(x: Any, k: str) -> Any:
    return x[k] if isinstance(x, Mapping) else getattr(x, k)


def kind_of(t: Any) -> str:
    """A truth item's kind; items without one are digits (the FSDD stream's truth)."""
    k = t.get("kind", "digit") if isinstance(t, Mapping) else getattr(t, "kind", "digit")
    return k or "digit"


def label_of(t: Any) -> str:
    """The digit, word or sound of a truth item ("" for background)."""
    kind = kind_of(t)
    if kind == "background":
        return ""
    if isinstance(t, Mapping):
        return str(t.get(kind, t.get("label", "")))
    return str(getattr(t, "label", None) or getattr(t, kind, ""))


def score(events: Iterable[Any], truth: Iterable[Any], tol: float = 0.3) -> Score:
    """`events`: dicts or events (only digit events count); `truth`: items as described above."""
    ev = [e for e in events if (_get(e, "event") if isinstance(e, Mapping) else getattr(e, "kind", "")) == "digit"]
    tr = list(truth)
    kinds = [kind_of(t) for t in tr]
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise ValueError(f"truth kind must be one of {', '.join(KINDS)}, got {bad}")
    heard = [i for i, k in enumerate(kinds) if k != "background"]
    cand, touched = [], {}  # touched: event index -> non-digit items it overlaps
    for i in heard:
        ts, te = _get(tr[i], "start"), _get(tr[i], "end")
        for j, e in enumerate(ev):
            es, ee = _get(e, "start"), _get(e, "end")
            ov = min(te, ee) - max(ts, es)
            if ov > 0 or abs((ts + te) / 2 - (es + ee) / 2) <= tol:
                cand.append((ov, i, j))
                if kinds[i] != "digit":
                    touched.setdefault(j, []).append(i)
    cand.sort(reverse=True)
    used_t, used_e, matched = set(), set(), []
    for ov, i, j in cand:
        if i not in used_t and j not in used_e:
            used_t.add(i)
            used_e.add(j)
            matched.append((i, j))
    pairs = sorted((i, j) for i, j in matched if kinds[i] == "digit")
    alarmed = {i for i, _ in matched if kinds[i] != "digit"}
    stretches = [(_get(tr[i], "start"), _get(tr[i], "end")) for i, k in enumerate(kinds) if k == "background"]
    insertions = background = 0
    for j, e in enumerate(ev):
        if j in used_e:
            continue
        if j in touched:  # one more digit on a word or sound already alarmed: still that false alarm
            alarmed.update(touched[j])
            continue
        insertions += 1
        mid = (_get(e, "start") + _get(e, "end")) / 2
        background += any(s <= mid < en for s, en in stretches)
    correct = sum(1 for i, j in pairs if label_of(tr[i]) == str(_get(ev[j], "digit")))
    lat = [float(_get(ev[j], "emitted")) - float(_get(tr[i], "end")) for i, j in pairs]
    n = kinds.count("digit")
    return Score(n, correct, len(pairs) - correct, n - len(pairs), insertions, lat, pairs,
                 n_words=kinds.count("word"), word_false_alarms=sum(kinds[i] == "word" for i in alarmed),
                 n_sounds=kinds.count("sound"), sound_false_alarms=sum(kinds[i] == "sound" for i in alarmed),
                 background_insertions=background, background_s=float(sum(en - s for s, en in stretches)))


def combine(scores: Sequence[Score]) -> Score:
    """Several streams' scores as one: counts and latencies pooled (pairs are per stream, dropped)."""
    s = Score(0, 0, 0, 0, 0)
    for x in scores:
        for f in fields(Score):
            if f.name != "pairs":
                setattr(s, f.name, getattr(s, f.name) + getattr(x, f.name))
    return s


@dataclass
class NumberScore:
    n: int  # truth numbers
    correct: int  # emitted exactly (same digits, complete, overlapping in time)
    emitted: int  # number events

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")


def _kind(e: Any) -> str:
    return str(e.get("event")) if isinstance(e, Mapping) else getattr(e, "kind", "")


def score_numbers(events: Iterable[Any], truth: Iterable[Any], group: GroupConfig) -> NumberScore:
    """Share of truth numbers (truth digits grouped by `group`'s rule on truth times) that a
    number event reproduced exactly. Each event counts for at most one truth number."""
    words = [DigitEvent(label_of(t), 1.0, float(_get(t, "start")), float(_get(t, "end")), float(_get(t, "end")))
             for t in truth if kind_of(t) == "digit"]
    want = group_events(words, group)
    got = [e for e in events if _kind(e) == "number"]
    used: set[int] = set()
    correct = 0
    for t in want:
        for j, e in enumerate(got):
            if (j not in used and _get(e, "complete") and str(_get(e, "digits")) == t.digits
                    and _get(e, "start") < t.end and t.start < _get(e, "end")):
                used.add(j)
                correct += 1
                break
    return NumberScore(len(want), correct, len(got))
