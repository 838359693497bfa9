"""Scoring a stream: digit error rate by time alignment, and end-of-speech latency.

Each event digit is matched to at most one truth word (the one it overlaps most; a
match needs overlap, or centres within `tol` seconds). Matched with the wrong label =
substitution, unmatched truth = deletion, unmatched event = insertion;
DER = (S + D + I) / N. Latency = emitted - truth end for every matched digit.

Numbers: the truth digits grouped by the daemon's own rule (numbers.py) on truth times; a
truth number is right when a `complete` number event with exactly its digits overlaps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from digitd.config import GroupConfig
from digitd.events import DigitEvent
from digitd.numbers import group_events


@dataclass
class Score:
    n: int
    correct: int
    substitutions: int
    deletions: int
    insertions: int
    latencies_s: list[float] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (truth index, event index)

    @property
    def der(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / max(1, self.n)

    def latency(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "correct": self.correct, "S": self.substitutions, "D": self.deletions,
                "I": self.insertions, "der": round(self.der, 4),
                "latency_p50_ms": round(1000 * self.latency(50), 1), "latency_p95_ms": round(1000 * self.latency(95), 1)}


def _get(x: Any, k: str) -> Any:
    return x[k] if isinstance(x, Mapping) else getattr(x, k)


def score(events: Iterable[Any], truth: Iterable[Any], tol: float = 0.3) -> Score:
    """`events`: dicts or DigitEvents (non-digit events are ignored); `truth`: {digit,start,end}."""
    ev = [e for e in events if (_get(e, "event") if isinstance(e, Mapping) else getattr(e, "kind", "")) == "digit"]
    tr = list(truth)
    cand = []
    for i, t in enumerate(tr):
        ts, te = _get(t, "start"), _get(t, "end")
        for j, e in enumerate(ev):
            es, ee = _get(e, "start"), _get(e, "end")
            ov = min(te, ee) - max(ts, es)
            if ov > 0 or abs((ts + te) / 2 - (es + ee) / 2) <= tol:
                cand.append((ov, i, j))
    cand.sort(reverse=True)
    used_t, used_e, pairs = set(), set(), []
    for ov, i, j in cand:
        if i not in used_t and j not in used_e:
            used_t.add(i)
            used_e.add(j)
            pairs.append((i, j))
    pairs.sort()
    correct = sum(1 for i, j in pairs if str(_get(tr[i], "digit")) == str(_get(ev[j], "digit")))
    lat = [float(_get(ev[j], "emitted")) - float(_get(tr[i], "end")) for i, j in pairs]
    return Score(len(tr), correct, len(pairs) - correct, len(tr) - len(pairs), len(ev) - len(pairs), lat, pairs)


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
    words = [DigitEvent(str(_get(t, "digit")), 1.0, float(_get(t, "start")), float(_get(t, "end")),
                        float(_get(t, "end"))) for t in truth]
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
