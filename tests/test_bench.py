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
    gap_mid = (truth[7]["end"] + truth[8]["start"]) / 2
    if truth[8]["start"] - truth[7]["end"] > 0.8:
        ev.append(DigitEvent("4", 0.9, gap_mid - 0.05, gap_mid + 0.05, gap_mid + 0.2, {}))  # insertion
        ins = 1
    else:
        ins = 0
    ev.append(RejectedEvent(truth[2]["start"], truth[2]["end"], truth[2]["end"] + 0.2, "1", 0.1))  # not a digit
    sc = score(ev, truth)
    assert (sc.substitutions, sc.deletions, sc.insertions) == (1, 1, ins)
    assert sc.der == pytest.approx((2 + ins) / 10)


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
