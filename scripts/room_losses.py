"""Where the room bench's digits are lost: not found, found and rejected, or named wrong, and what
the classifier reads on the digit's own span.

  python scripts/room_losses.py [--model M.npz] [--seeds 0,1,2] [--speakers dev] [--conditions babble_10db,babble_5db] [--by-snr] [--set KEY=VALUE] [--json]

Why: `digitd bench --scenario room` says how many digits went wrong (S / D / I), not where a
deletion happened, and the lever differs: a word the front end never cut needs another gate, a
word it cut and the classifier could not read needs another model. Each true digit of each stream
ends as exactly one of
- ok / substituted: the bench's own match (digitd/scoring.py), so these equal its correct and S;
- rejected, read right / read wrong: no digit event, and a `rejected` event on it whose best guess
  was / was not the digit (low confidence, or a second half: `split_word`);
- unvoiced: a `rejected` event for want of pitch (classify.min_voiced_ms);
- merged: a digit event overlaps it but was matched to another word;
- not found: no event at all, and why: the endpointer dropped it as background (the word gate),
  as too short (under min_speech_ms over the level tests) or too quiet (min_level_dbfs), or never
  opened an utterance there (the VAD or the level tests);
and, for every digit, `own span`: the digit's truth span (the clean clip's trim) cut from the mixed
stream and judged by the same rule (classify.reject_threshold, pitch test, agreement): what the
classifier reads when the cut is perfect, and how many of the digits never found it reads (what a
better gate could win at most). Far above `ok`: the front end loses them; close: the classifier
does. `--by-snr` splits the digits by their own SNR (the word over the background across its span):
a condition's SNR is the words' average, and each word sits +-10 dB from it. Streams and the pass over them are the bench's (`digitd.bench.run_once`; same seeds and
knobs; `--speakers dev` or `train` to look at the training side, as tuning must).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections import Counter
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from digitd import SAMPLE_RATE  # noqa: E402
from digitd.bench import run_once  # noqa: E402
from digitd.config import Config, ConfigError, load as load_config  # noqa: E402
from digitd.errors import DigitdError  # noqa: E402
from digitd.espeak import EspeakError  # noqa: E402
from digitd.model import DigitModel, ModelError, load_model, reject_reason  # noqa: E402
from digitd.room import RoomError, RoomStream, conditions, make_room_stream  # noqa: E402
from digitd.scoring import Score  # noqa: E402

OUTCOMES = ("ok", "substituted", "rejected_read_right", "rejected_read_wrong", "unvoiced", "merged", "not_found")
HEADS = ("ok", "sub", "rej right", "rej wrong", "unvoiced", "merged", "not found")  # the table's column names
WHY = ("background", "short", "quiet", "unopened")  # why a digit was not found: the endpointer's drop on it, or none
REJ_WHY = ("low_confidence", "background_talk", "split_word")  # the rule that rejected a found digit


def _overlaps(e: Any, t: dict[str, Any]) -> bool:
    return min(e.end, t["end"]) - max(e.start, t["start"]) > 0


def _rejection_on(rejected: list[Any], t: dict[str, Any]) -> Any | None:
    """The `rejected` event that stands for true word `t`: the surest of those overlapping it."""
    on = [e for e in rejected if _overlaps(e, t)]
    return max(on, key=lambda e: e.confidence) if on else None


def outcomes(events: list[Any], truth: list[dict[str, Any]], sc: Score) -> list[str]:
    """One outcome per true digit (in truth order), from the pipeline's digit and rejected events
    and the bench's score of them (`sc`)."""
    digits = [e for e in events if getattr(e, "kind", "") == "digit"]
    rejected = [e for e in events if getattr(e, "kind", "") == "rejected"]
    named = {i: digits[j].digit for i, j in sc.pairs}
    out = []
    for i, t in enumerate(truth):
        if t.get("kind", "digit") != "digit":
            continue
        if i in named:
            out.append("ok" if named[i] == str(t["digit"]) else "substituted")
            continue
        e = _rejection_on(rejected, t)
        if any(_overlaps(d, t) for d in digits):
            out.append("merged")
        elif e is not None:
            out.append("unvoiced" if e.reason == "unvoiced" else
                       "rejected_read_right" if e.best == str(t["digit"]) else "rejected_read_wrong")
        else:
            out.append("not_found")
    return out


def rejected_why(events: list[Any], truth: list[dict[str, Any]], got: list[str]) -> list[str]:
    """For each digit `outcomes` calls rejected (read right or wrong), the rule that rejected it:
    the reason of the same `rejected` event (low_confidence, background_talk, split_word)."""
    rejected = [e for e in events if getattr(e, "kind", "") == "rejected"]
    digits = [t for t in truth if t.get("kind", "digit") == "digit"]
    return [_rejection_on(rejected, t).reason for t, g in zip(digits, got) if g in ("rejected_read_right", "rejected_read_wrong")]


def not_found_why(got: list[str], truth: list[dict[str, Any]], drops: list[tuple[int, int, str]]) -> list[str]:
    """For each digit `outcomes` calls not found, why (WHY): the endpointer's drop that overlaps
    it most (the background gate, too short, too quiet), or "unopened" when none does (the VAD or
    the level tests never opened an utterance there)."""
    digits = [t for t in truth if t.get("kind", "digit") == "digit"]
    out = []
    for t, g in zip(digits, got):
        if g != "not_found":
            continue
        a, b = t["start"] * SAMPLE_RATE, t["end"] * SAMPLE_RATE
        over = [(min(e, b) - max(s, a), why) for s, e, why in drops if min(e, b) > max(s, a)]
        out.append(max(over)[1] if over else "unopened")
    return out


def _span(t: dict[str, Any]) -> tuple[int, int]:
    """A truth entry's span in samples of the stream."""
    return int(round(t["start"] * SAMPLE_RATE)), int(round(t["end"] * SAMPLE_RATE))


MEMBERS = ("cnn", "embed")  # the members whose own best guess `--by-snr` reports beside the joined one


def own_span_ok(stream: RoomStream, truth: list[dict[str, Any]], model: DigitModel, cfg: Config) -> list[tuple[bool, bool, dict[str, bool]]]:
    """Per true digit: is its own truth span, cut from the mixed stream, read right and accepted,
    is the classifier's best guess right at all (accepted or not), and is each strong member's own
    best guess right (MEMBERS; a model without one: False)? Whether a word is lost to the rules
    or to the reading, and to which member's."""
    ok = []
    for t in truth:
        if t.get("kind", "digit") != "digit":
            continue
        a, b = _span(t)
        x = stream.audio[a:b]
        pred = model.classify(model.features(x, trimmed=True))
        right = pred.label == str(t["digit"])
        members = {m: pred.votes.get(m, ("", 0.0))[0] == str(t["digit"]) for m in MEMBERS}
        ok.append((reject_reason(x, pred, cfg.classify) is None and right, right, members))
    return ok


SNR_BINS = (-5.0, 0.0, 5.0, 10.0, 15.0)  # edges of the --by-snr table's rows (dB)


def local_snr_db(stream: RoomStream, truth: list[dict[str, Any]]) -> list[float]:
    """Per true digit: the spoken word's power over the background's across its own span (dB). A
    condition's SNR is the stream's words on average against the whole background; each word is
    placed +-10 dB from that and talk in the background comes and goes, so a word's own SNR spreads."""
    out = []
    for t in truth:
        if t.get("kind", "digit") != "digit":
            continue
        a, b = _span(t)
        speech = float(np.mean(np.square(stream.speech[a:b], dtype=np.float64)))
        noise = float(np.mean(np.square(stream.background[a:b], dtype=np.float64)))
        out.append(10.0 * np.log10(max(speech, 1e-20) / max(noise, 1e-20)))
    return out


def snr_bin(db: float) -> str:
    """The --by-snr row a word's own SNR falls in: "< -5", "-5..0", ..., ">= 15"."""
    if db < SNR_BINS[0]:
        return f"< {SNR_BINS[0]:g}"
    for lo, hi in zip(SNR_BINS, SNR_BINS[1:]):
        if db < hi:
            return f"{lo:g}..{hi:g}"
    return f">= {SNR_BINS[-1]:g}"


def losses(cfg: Config, model: DigitModel, seeds: list[int], names: list[str] | None, progress: Progress | None = None,
           by_snr: dict[tuple[str, str], Counter] | None = None) -> dict[str, Counter]:
    """Outcome counts (and `n`, `own_span_ok`, `not_found_own_span_ok`) per condition name, summed over `seeds`.
    `by_snr`, when given, gets per (condition, snr_bin) counts of `n`, `ok`, `own_span_ok`, `own_span_best`
    and `own_span_{member}` (MEMBERS: that member's own best guess right)."""
    table: dict[str, Counter] = {}
    conds = [c for c in conditions(cfg.bench) if names is None or c.name in names]
    task = progress.add_task("streams", total=len(seeds) * len(conds)) if progress else None
    for seed in seeds:
        b = dataclasses.replace(cfg.bench, seed=seed)
        for c in conds:
            stream = make_room_stream(c, b)
            truth = [t.to_dict() for t in stream.truth]
            run = run_once(cfg, model, stream.audio, truth, "max")  # the bench's own pass
            row = table.setdefault(c.name, Counter())
            got, own = outcomes(run.events, truth, run.score), own_span_ok(stream, truth, model, cfg)
            row.update(got)
            row.update(f"why_{w}" for w in not_found_why(got, truth, run.drops))
            row.update(f"rejected_as_{r}" for r in rejected_why(run.events, truth, got))
            row["n"] += len(got)
            row["own_span_ok"] += sum(o for o, _, _ in own)
            row["not_found_own_span_ok"] += sum(g == "not_found" and o for g, (o, _, _) in zip(got, own))
            if by_snr is not None:
                for g, (o, best, members), db in zip(got, own, local_snr_db(stream, truth)):
                    cell = by_snr.setdefault((c.name, snr_bin(db)), Counter())
                    cell.update(n=1, ok=g == "ok", own_span_ok=o, own_span_best=best,
                                **{f"own_span_{m}": r for m, r in members.items()})
            if progress:
                progress.advance(task)
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file (default: classify.model, the shipped model)")
    ap.add_argument("--seeds", default="0", help="comma list of stream seeds (bench.seed)")
    ap.add_argument("--speakers", default=None, help="bench.room_speakers: unseen (default), dev, train, fit")
    ap.add_argument("--conditions", default=None, help="comma list of condition names (default: every bench.room_* condition)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override, as digitd's")
    ap.add_argument("--by-snr", action="store_true", help="also a table by each digit's own SNR (its word over the background across its span)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()
    err = Console(stderr=True, soft_wrap=True)
    overrides = list(args.overrides) + ([f'bench.room_speakers="{args.speakers}"'] if args.speakers else [])
    try:
        cfg = load_config(None, overrides)
        model = load_model(args.model or cfg.classify.model or None)
        seeds = [int(s) for s in args.seeds.split(",")]
        names = args.conditions.split(",") if args.conditions else None
        with Progress(console=err, transient=True, disable=not err.is_terminal) as prog:
            by_snr: dict[tuple[str, str], Counter] | None = {} if args.by_snr else None
            table = losses(cfg, model, seeds, names, prog, by_snr)
    except (DigitdError, ConfigError, ModelError, RoomError, EspeakError, ValueError) as e:
        err.print(f"room_losses: error: {e}", markup=False)
        return 2
    if not table:
        err.print(f"room_losses: error: no condition named {args.conditions}", markup=False)
        return 2
    total = sum(table.values(), Counter())
    if args.json:
        out = {"seeds": seeds, "speakers": cfg.bench.room_speakers, "by_condition": {k: dict(v) for k, v in table.items()},
               "total": dict(total)}
        if by_snr is not None:
            out["by_snr"] = {f"{c} {b}": dict(v) for (c, b), v in by_snr.items()}
        print(json.dumps(out))
        return 0
    t = Table(title=f"true digits by outcome ({cfg.bench.room_speakers} speakers, seeds {args.seeds})")
    for col in ("condition", "n", *HEADS, "rejected: confidence/talk/split", "not found: gate/short/quiet/unopened", "own span ok",
                "of them not found"):
        t.add_column(col, justify="left" if col == "condition" else "right")
    for name, row in [*table.items(), ("total", total)]:
        n = max(1, row["n"])
        t.add_row(name, str(row["n"]), *(str(row[o]) for o in OUTCOMES), "/".join(str(row[f"rejected_as_{r}"]) for r in REJ_WHY),
                  "/".join(str(row[f"why_{w}"]) for w in WHY),
                  f"{row['own_span_ok']} ({100 * row['own_span_ok'] / n:.0f}% vs {100 * row['ok'] / n:.0f}%)", str(row["not_found_own_span_ok"]))
    Console().print(t)
    if by_snr is not None:
        Console().print(snr_table(by_snr, cfg, args.seeds))
    return 0


def snr_table(by_snr: dict[tuple[str, str], Counter], cfg: Config, seeds: str) -> Table:
    """Per condition and own-SNR row: how many digits, and what share the pipeline got right, their
    own spans read right and accepted, and the classifier's best guess on them was right, joined
    and each strong member's own."""
    order = [snr_bin(SNR_BINS[0] - 1), *(snr_bin(lo) for lo in SNR_BINS)]
    t = Table(title=f"true digits by their own SNR ({cfg.bench.room_speakers} speakers, seeds {seeds})")
    for col in ("condition", "own SNR dB", "n", "pipeline ok", "own span ok", "own span best guess right", "CNN's", "embedding's"):
        t.add_column(col, justify="left" if col in ("condition", "own SNR dB") else "right")
    for name in dict.fromkeys(c for c, _ in by_snr):
        for b in order:
            row = by_snr.get((name, b))
            if row:
                n = row["n"]
                t.add_row(name, b, str(n), *(f"{100 * row[k] / n:.0f}%" for k in ("ok", "own_span_ok", "own_span_best",
                                                                                  *(f"own_span_{m}" for m in MEMBERS))))
    return t


if __name__ == "__main__":
    sys.exit(main())
