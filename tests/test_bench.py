"""The benchmark's own arithmetic, on synthetic streams with known boundaries and injected latency.

Nothing here times the machine: every expected number is computed from what the test injects.
"""

import numpy as np
import pytest

from digitd.bench import percentiles_ms, stage_report, wall_latencies_ms, with_override, parse_sweep
from digitd.config import Config, ConfigError
from digitd.events import DigitEvent, RejectedEvent
from digitd.scoring import score


def test_percentiles_match_numpy_definition():
    vals = list(np.arange(1, 101, dtype=float))  # 1..100 ms
    p = percentiles_ms(vals)
    assert p["n"] == 100
    assert p["p50_ms"] == pytest.approx(50.5)
    assert p["p95_ms"] == pytest.approx(95.05)
    assert p["p99_ms"] == pytest.approx(99.01)
    assert p["max_ms"] == 100 and p["mean_ms"] == pytest.approx(50.5)
    assert np.isnan(percentiles_ms([])["p50_ms"])


def test_stage_rtf_is_stage_time_over_audio_time():
    # 1000 frames of 30 ms audio (30 s), VAD 0.01 ms each, features 2 ms for 10 utterances
    samples = {"vad": [0.01] * 1000, "endpoint": [0.02] * 1000, "features": [2.0] * 10, "classify": [0.5] * 10,
               "total": [2.6] * 10}
    stages, rtf = stage_report(samples, audio_s=30.0)
    assert rtf["vad"] == pytest.approx(0.01e-3 * 1000 / 30)
    assert rtf["features"] == pytest.approx(20e-3 / 30)
    assert stages["classify"]["p95_ms"] == pytest.approx(0.5)


def _stream_truth(n=20, seed=3):
    rng = np.random.default_rng(seed)
    t, truth = 0.5, []
    for _ in range(n):
        dur = rng.uniform(0.3, 0.6)
        truth.append({"digit": str(rng.integers(0, 10)), "start": t, "end": t + dur})
        t += dur + rng.uniform(0.15, 2.0)
    return truth


def test_injected_end_of_speech_latency_is_recovered():
    truth = _stream_truth()
    delays = np.linspace(0.1, 0.3, len(truth))
    events = [DigitEvent(t["digit"], 0.9, t["start"], t["end"], t["end"] + d, {}) for t, d in zip(truth, delays)]
    sc = score(events, truth)
    assert sc.der == 0 and sc.correct == len(truth)
    assert np.allclose(sorted(sc.latencies_s), sorted(delays))
    assert percentiles_ms([1000 * x for x in sc.latencies_s])["p50_ms"] == pytest.approx(1000 * np.median(delays))


def test_errors_are_counted_as_substitutions_deletions_insertions():
    truth = _stream_truth(10)
    ev = []
    for i, t in enumerate(truth):
        if i == 2:
            continue  # deletion
        digit = t["digit"] if i != 5 else str((int(t["digit"]) + 1) % 10)  # substitution
        ev.append(DigitEvent(digit, 0.9, t["start"], t["end"], t["end"] + 0.2, {}))
    after = truth[-1]["end"] + 1.5  # a digit where nobody spoke: an insertion
    ev.append(DigitEvent("4", 0.9, after, after + 0.3, after + 0.5, {}))
    ev.append(RejectedEvent(truth[2]["start"], truth[2]["end"], truth[2]["end"] + 0.2, "1", 0.1))  # not a digit
    sc = score(ev, truth)
    assert (sc.substitutions, sc.deletions, sc.insertions) == (1, 1, 1)
    assert sc.der == pytest.approx(3 / 10)


def test_wall_latency_subtracts_the_paced_playback_time():
    ends = [1.0, 2.5, 4.0]
    t0 = 100.0
    injected_ms = [120.0, 80.0, 300.0]
    for speed in (1.0, 2.0):
        recv = [t0 + e / speed + ms / 1000 for e, ms in zip(ends, injected_ms)]
        assert wall_latencies_ms(recv, ends, t0, speed) == pytest.approx(injected_ms)


def test_sweep_parsing_and_override_do_not_touch_the_base_config():
    key, vals = parse_sweep("vad.aggressiveness=1,2, 3")
    assert key == "vad.aggressiveness" and vals == ["1", "2", "3"]
    base = Config()
    c = with_override(base, key, "1")
    assert c.vad.aggressiveness == 1 and base.vad.aggressiveness == Config().vad.aggressiveness
    with pytest.raises(ConfigError, match="vad.aggressiveness"):
        with_override(base, key, "7")
    with pytest.raises(ConfigError):
        parse_sweep("vad.aggressiveness")


@pytest.mark.parametrize("spec, needle", [("bench.room_level_step_db=0,5", "built once"), ("bench.seed=0,1", "built once"),
                                          ("classify.model=a.npz,b.npz", "--model"), ("user.name=ann,bob", "profile"),
                                          ("train.cnn_epochs=10,20", "never read"), ("output.mode=jsonl,plain", "never read")])
def test_a_sweep_of_what_is_built_before_the_runs_is_refused(spec, needle):
    """The streams, the model and the profile are made once and shared by every setting: sweeping
    one of their knobs would print identical rows labelled as different settings."""
    with pytest.raises(ConfigError, match=needle):
        parse_sweep(spec)
    assert parse_sweep("classify.reject_threshold=0.3,0.4")[0] == "classify.reject_threshold"  # a knob the runs read


# -- non-digit words, sounds and background-only stretches (the room scenario's truth) --------------

ROOM_TRUTH = [
    {"kind": "digit", "digit": "4", "start": 1.0, "end": 1.4},
    {"kind": "word", "word": "left", "start": 2.0, "end": 2.5},
    {"kind": "digit", "digit": "1", "start": 2.6, "end": 2.9},  # quick string: 0.1 s after "left"
    {"kind": "sound", "sound": "cough", "start": 4.0, "end": 4.3},
    {"kind": "background", "start": 5.0, "end": 35.0},
    {"kind": "digit", "digit": "7", "start": 36.0, "end": 36.5},
    {"kind": "word", "word": "stop", "start": 38.0, "end": 38.4},
]


def _digit(d, s, e, lag=0.15):
    return DigitEvent(d, 0.9, s, e, e + lag, {})


def test_a_digit_on_a_non_digit_word_is_a_false_alarm_not_an_insertion():
    events = [_digit("4", 1.0, 1.4), _digit("1", 2.05, 2.45), _digit("1", 2.6, 2.9), _digit("7", 36.0, 36.5)]
    sc = score(events, ROOM_TRUTH)
    assert (sc.n, sc.correct, sc.substitutions, sc.deletions, sc.insertions) == (3, 3, 0, 0, 0)
    assert (sc.n_words, sc.word_false_alarms, sc.fa_rate) == (2, 1, 0.5)
    assert sc.der == 0.0
    # a second digit on the same word is still that one false alarm
    sc2 = score(events + [_digit("9", 2.3, 2.5)], ROOM_TRUTH)
    assert (sc2.word_false_alarms, sc2.insertions) == (1, 0)


def test_non_digit_items_never_count_as_deletions():
    sc = score([], ROOM_TRUTH)
    assert (sc.n, sc.deletions, sc.der) == (3, 3, 1.0)
    assert (sc.word_false_alarms, sc.sound_false_alarms, sc.insertions) == (0, 0, 0)


def test_a_digit_on_a_cough_is_a_sound_false_alarm():
    sc = score([_digit("2", 4.0, 4.3)], ROOM_TRUTH)
    assert (sc.n_sounds, sc.sound_false_alarms, sc.sound_fa_rate, sc.insertions) == (1, 1, 1.0, 0)


def test_a_digit_in_background_only_time_is_a_background_insertion():
    events = [_digit("4", 1.0, 1.4), _digit("3", 10.0, 10.4), _digit("8", 20.0, 20.3), _digit("5", 3.3, 3.6)]
    sc = score(events, ROOM_TRUTH)
    assert sc.insertions == 3  # two in the stretch, one in an ordinary pause
    assert sc.background_insertions == 2 and sc.background_s == pytest.approx(30.0)
    assert sc.background_insertions_per_min == pytest.approx(4.0)
    assert sc.der == pytest.approx((2 + 3) / 3)  # 2 deletions + 3 insertions over 3 digits


def test_plain_digit_truth_has_no_false_alarm_measures():
    truth = _stream_truth(5)
    sc = score([], truth)
    assert sc.fa_rate is None and sc.background_insertions_per_min is None and sc.deletions == 5


def test_combined_scores_pool_counts_and_latencies():
    from digitd.scoring import combine

    a = score([_digit("4", 1.0, 1.4, lag=0.1), _digit("3", 10.0, 10.4)], ROOM_TRUTH)
    b = score([_digit("1", 2.6, 2.9, lag=0.3), _digit("9", 38.0, 38.4)], ROOM_TRUTH)
    c = combine([a, b])
    assert (c.n, c.correct, c.deletions, c.insertions) == (6, 2, 4, 1)
    assert (c.n_words, c.word_false_alarms, c.background_insertions, c.background_s) == (4, 1, 1, pytest.approx(60.0))
    assert sorted(c.latencies_s) == pytest.approx([0.1, 0.3])
