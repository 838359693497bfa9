"""Number grouping (digitd/numbers.py) on hand-made event lists, then on real FSDD streams
through the real pipeline: pause, length, rejected inside, lost audio, end of stream, clock."""

from __future__ import annotations

import json

import pytest

from digitd.config import Config, GroupConfig
from digitd.events import DigitEvent, NumberEvent, OverflowEvent, RejectedEvent, SummaryEvent, from_dict
from digitd.numbers import NumberGrouper, group_events
from digitd.scoring import score_numbers


def D(digit: str, start: float, end: float, conf: float = 0.9, emitted: float | None = None) -> DigitEvent:
    return DigitEvent(digit, conf, start, end, end + 0.08 if emitted is None else emitted)


def R(start: float, end: float, reason: str = "low_confidence") -> RejectedEvent:
    return RejectedEvent(start, end, end + 0.08, "3", 0.2, {}, reason)


def run(events, pause_ms: int = 700, length: int = 0) -> list:
    """Push every event, then end the stream; everything the grouper delivers, in order."""
    g = NumberGrouper(GroupConfig(pause_ms=pause_ms, length=length))
    out = []
    for e in events:
        out += g.push(e)
    end = max(getattr(e, "emitted", 0.0) for e in events) + 5.0
    out += g.push(SummaryEvent(audio_s=end))
    return out


def numbers(out) -> list[tuple[str, bool]]:
    return [(e.digits, e.complete) for e in out if isinstance(e, NumberEvent)]


def test_gaps_shorter_than_the_pause_make_one_number():
    ev = [D("4", 1.0, 1.4), D("1", 1.6, 2.0), D("7", 2.3, 2.7), D("5", 3.3, 3.7),  # gaps .2 .3 .6
          D("9", 4.5, 4.9), D("0", 5.0, 5.3)]  # gap .8 (> .7): a new number
    out = run(ev)
    assert numbers(out) == [("4175", True), ("90", True)]
    first = next(e for e in out if isinstance(e, NumberEvent))
    assert (first.start, first.end) == (1.0, 3.7)
    # digit events pass unchanged and in order; each number follows its last digit
    kinds = [e.digit if isinstance(e, DigitEvent) else e.kind for e in out]
    assert kinds == ["4", "1", "7", "5", "number", "9", "0", "number", "summary"]


def test_the_pause_is_a_strict_bound_and_follows_the_config():
    ev = [D("1", 1.0, 1.5), D("2", 2.2, 2.6)]  # gap exactly 0.7 s
    assert numbers(run(ev, pause_ms=700)) == [("1", True), ("2", True)]
    assert numbers(run(ev, pause_ms=701)) == [("12", True)]
    assert numbers(run(ev, pause_ms=300)) == [("1", True), ("2", True)]


def test_confidence_is_the_weakest_digit():
    out = run([D("3", 1.0, 1.3, 0.97), D("8", 1.5, 1.8, 0.41), D("8", 2.0, 2.3, 0.88)])
    n = [e for e in out if isinstance(e, NumberEvent)]
    assert len(n) == 1 and n[0].confidence == pytest.approx(0.41)


def test_length_closes_a_number_at_once():
    ev = [D(str(d), 1.0 + 0.5 * d, 1.3 + 0.5 * d) for d in range(6)]  # gaps 0.2 s, six digits
    out = run(ev, length=4)
    assert numbers(out) == [("0123", True), ("45", True)]
    kinds = [e.digit if isinstance(e, DigitEvent) else e.kind for e in out]
    assert kinds[:5] == ["0", "1", "2", "3", "number"]  # right after the 4th digit, no pause waited
    first = next(e for e in out if isinstance(e, NumberEvent))
    assert first.emitted == ev[3].emitted  # emitted with its last digit


def test_a_rejected_word_inside_marks_the_number_incomplete():
    ev = [D("4", 1.0, 1.4), D("1", 1.6, 2.0), R(2.2, 2.5), D("5", 2.8, 3.1)]
    out = run(ev)
    assert numbers(out) == [("415", False)]
    n = next(e for e in out if isinstance(e, NumberEvent))
    assert n.rejected == 1 and (n.start, n.end) == (1.0, 3.1)
    # far from any digit, a rejected word touches nothing; alone it makes no number
    assert numbers(run([D("4", 1.0, 1.4), R(5.0, 5.3), D("2", 9.0, 9.4)])) == [("4", True), ("2", True)]
    # a rejected word also bridges: it is a word of the number, probably a digit we could not read
    assert numbers(run([D("4", 1.0, 1.4), R(1.9, 2.2), D("2", 2.7, 3.0)])) == [("42", False)]
    # leading and trailing rejected words count too (a first or last digit may be missing)
    assert numbers(run([R(0.5, 0.8), D("7", 1.0, 1.4)])) == [("7", False)]
    assert numbers(run([D("7", 1.0, 1.4), R(1.6, 1.9)])) == [("7", False)]


def test_unvoiced_rejections_are_not_words():
    """Coughs and clicks (reason unvoiced) neither mark a number nor bridge two."""
    ev = [D("4", 1.0, 1.4), R(1.5, 1.6, "unvoiced"), D("1", 1.8, 2.1), R(2.4, 2.6, "unvoiced"), D("2", 3.0, 3.3)]
    assert numbers(run(ev)) == [("41", True), ("2", True)]


def test_lost_audio_inside_marks_the_number_incomplete():
    ev = [D("4", 1.0, 1.4), OverflowEvent(120.0, "capture", 1.5), D("1", 1.6, 2.0)]
    assert numbers(run(ev)) == [("41", False)]
    ev = [OverflowEvent(120.0, "queue", 0.5), D("4", 1.0, 1.4), D("1", 1.6, 2.0)]  # before: not inside
    assert numbers(run(ev)) == [("41", True)]


def test_end_of_stream_closes_the_open_number_before_the_summary():
    g = NumberGrouper(GroupConfig())
    for e in (D("6", 1.0, 1.3), D("9", 1.5, 1.8)):
        g.push(e)
    out = g.push(SummaryEvent(audio_s=2.0))
    assert [e.kind for e in out] == ["number", "summary"]
    assert out[0].digits == "69" and out[0].emitted == 2.0
    assert g.deadline is None and g.push(SummaryEvent(audio_s=3.0))[0].kind == "summary"


def test_the_clock_closes_a_number_only_when_nothing_can_still_join():
    g = NumberGrouper(GroupConfig(pause_ms=700))
    g.push(D("5", 1.0, 1.4))
    assert g.deadline == pytest.approx(2.1)
    assert g.tick(now=2.0, horizon=2.0) == []  # the pause is not over
    assert g.tick(now=2.4, horizon=1.9) == []  # over, but a word starting at 1.9 may still arrive
    out = g.tick(now=2.4, horizon=2.15)
    assert numbers(out) == [("5", True)] and out[0].emitted == 2.4
    assert g.deadline is None and g.tick(now=9.0, horizon=9.0) == []


def test_a_late_word_after_the_pause_closes_the_number_before_itself():
    g = NumberGrouper(GroupConfig(pause_ms=700))
    g.push(D("5", 1.0, 1.4))
    out = g.push(D("6", 2.5, 2.9))  # no tick came in between
    assert [e.kind for e in out] == ["number", "digit"] and out[0].digits == "5"


def test_live_reconfiguration_is_read_at_once():
    cfg = GroupConfig(pause_ms=700)
    g = NumberGrouper(cfg)
    g.push(D("1", 1.0, 1.4))
    cfg.length = 2  # what a SIGHUP reload does
    assert numbers(g.push(D("2", 1.6, 2.0))) == [("12", True)]


def test_number_event_contract_round_trips():
    n = NumberEvent("4175", 1.0, 3.7, 4.58, 0.91, False, 1)
    d = json.loads(n.to_json())
    assert list(d) == ["event", "digits", "start", "end", "emitted", "confidence", "complete", "rejected"]
    assert d["event"] == "number" and d["digits"] == "4175" and d["complete"] is False
    assert from_dict(d) == n
    assert from_dict({"event": "nonsense"}) is None and from_dict({"event": "number"}) is None


def test_truth_grouping_and_number_score():
    truth = [{"digit": "4", "start": 1.0, "end": 1.4}, {"digit": "1", "start": 1.6, "end": 2.0},
             {"digit": "9", "start": 4.0, "end": 4.4}, {"digit": "3", "start": 7.0, "end": 7.4},
             {"digit": "3", "start": 7.6, "end": 7.9}]
    want = group_events([D(t["digit"], t["start"], t["end"]) for t in truth], GroupConfig())
    assert [n.digits for n in want] == ["41", "9", "33"]
    got = [NumberEvent("41", 1.0, 2.0, 2.9, 0.9), NumberEvent("9", 4.0, 4.4, 5.3, 0.9, complete=False),
           NumberEvent("38", 7.0, 7.9, 8.8, 0.9), NumberEvent("41", 20.0, 21.0, 21.9, 0.9)]
    sc = score_numbers(got, truth, GroupConfig())
    # "41" right; "9" incomplete does not count; "38" wrong; the 2nd "41" overlaps no truth number
    assert (sc.n, sc.correct, sc.emitted) == (3, 1, 4) and sc.accuracy == pytest.approx(1 / 3)
    assert score_numbers([n.to_dict() for n in got], truth, GroupConfig()).correct == 1  # JSON dicts too
    assert score_numbers(got, truth, GroupConfig(length=1)).n == 5


# -- through the real pipeline on real audio ---------------------------------------------

from digitd.bench import Recorder as Collect  # noqa: E402  (a sink that keeps every event)


@pytest.mark.parametrize("speed", ["max", "4"])
def test_pipeline_groups_real_speech_by_the_pause(model, number_stream, speed):
    """Quick strings and long pauses of FSDD test-split digits: one number per string. Paced
    (worker thread) and at max speed, each number comes from the clock tick, once its pause
    is over (not at the end of the stream), and after its last digit."""
    from digitd.pipeline import Pipeline
    from digitd.sources import FileSource

    _, audio, truth, want = number_stream
    sink = Collect()
    summary = Pipeline(Config(), model, [sink]).run(FileSource(audio, speed))
    nums = [e for e in sink.events if isinstance(e, NumberEvent)]
    assert [n.digits for n in nums] == want
    assert score_numbers(sink.events, truth, GroupConfig()).accuracy == 1.0
    pause = Config().group.pause_ms / 1000
    for n in nums:
        assert n.complete
        # closed by the clock: the pause, plus the ~180 ms pre-roll a word could still claim
        assert pause <= n.emitted - n.end < pause + 0.3, n
        assert n.emitted < summary.audio_s  # not the end-of-stream flush
        last = [e for e in sink.events if isinstance(e, DigitEvent) and e.end == n.end][0]
        assert sink.events.index(last) < sink.events.index(n)
    assert sink.events[-1] is summary


def test_pipeline_closes_the_last_number_when_the_stream_ends(model, fsdd):
    from digitd.pipeline import Pipeline
    from digitd.sources import FileSource
    from digitd.synth import make_number_stream

    audio, truth = make_number_stream([2, 3], seed=8, level_min_db=-8, level_max_db=-3, tail_s=0.3)
    sink = Collect()
    summary = Pipeline(Config(), model, [sink]).run(FileSource(audio, "max"))
    nums = [e for e in sink.events if isinstance(e, NumberEvent)]
    assert [n.digits for n in nums] == ["".join(t.digit for t in truth[:2]), "".join(t.digit for t in truth[2:])]
    assert nums[-1].emitted == pytest.approx(summary.audio_s, abs=1e-3)  # flushed by the end, not the clock
    assert sink.events[-2] is nums[-1] and sink.events[-1] is summary


def test_live_ui_brackets_each_number(number_stream, live_ui_run):
    _, audio, _, want = number_stream
    _, text = live_ui_run(audio, width=400)
    assert all(f"] = {n}" in text for n in want), text
    assert text.count("[") - text.count("[a number]") == len(want)


def test_cli_plain_and_numbers_output(model_path, number_stream):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    wav, _, _, want = number_stream
    env = dict(os.environ, PYTHONPATH=str(root))
    base = [sys.executable, "-m", "digitd", "run", "--input", str(wav), "--speed", "max", "--model", str(model_path)]
    r = subprocess.run(base + ["--numbers"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "" and r.stdout.splitlines() == want
    r = subprocess.run(base + ["--plain"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    lines = r.stdout.splitlines()
    assert [x.split()[1] for x in lines if x.startswith("N ")] == want  # one line per number
    assert sum(1 for x in lines if x[:1].isdigit()) == sum(map(len, want))  # and the digit lines as before
    r = subprocess.run(base + ["--numbers", "--set", "classify.reject_threshold=1.0", "--set", "classify.agree_min=0"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "" and "incomplete" not in r.stderr  # nothing recognised: no number


def test_bench_reports_number_accuracy(model_path, number_stream, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    wav, _, truth, want = number_stream
    tj = tmp_path / "truth.json"
    tj.write_text(json.dumps([t.to_dict() for t in truth]))
    r = subprocess.run([sys.executable, "-m", "digitd", "bench", "--input", str(wav), "--truth", str(tj), "--json",
                        "--model", str(model_path)], cwd=root, env=dict(os.environ, PYTHONPATH=str(root)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert (res["n_numbers"], res["numbers_correct"], res["number_accuracy"]) == (len(want), len(want), 1.0)
    # a pause rule that glues everything into one number: the truth side follows it too
    r = subprocess.run([sys.executable, "-m", "digitd", "bench", "--input", str(wav), "--truth", str(tj), "--json",
                        "--model", str(model_path), "--set", "group.pause_ms=5000"], cwd=root,
                       env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True, timeout=300)
    res = json.loads(r.stdout)
    assert res["n_numbers"] == 1 and res["number_accuracy"] == 1.0


def test_a_split_word_extends_the_digit_before_it():
    """The second half of a word (reason split_word) is that word: the number stays complete and
    its pause counts from the word's real end (from the first half's end, 0.9 s would close it)."""
    ev = [D("6", 1.0, 1.3), R(1.3, 1.6, "split_word"), D("1", 2.2, 2.5)]
    assert numbers(run(ev)) == [("61", True)]
    assert numbers(run([D("6", 1.0, 1.3), D("1", 2.2, 2.5)])) == [("6", True), ("1", True)]
