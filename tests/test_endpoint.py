"""Endpointer and VAD on real FSDD audio: quick digits split, clicks dropped, max cut, level gate."""

from __future__ import annotations

import numpy as np

from digitd import SAMPLE_RATE
from digitd.audio import float_to_int16, load_wav
from digitd.config import Config, EndpointConfig
from digitd.endpoint import Endpointer
from digitd.synth import make_stream, fsdd_test_clips
from digitd.vad import Vad

FRAME = 240


def segment(audio: np.ndarray, ep_cfg: EndpointConfig | None = None, aggressiveness: int = 3):
    cfg = Config()
    vad = Vad(aggressiveness, 30)
    ep = Endpointer(ep_cfg or cfg.endpoint, 30)
    out, states = [], []
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        f = audio[i : i + FRAME]
        out += ep.push(f, vad(float_to_int16(f)))
        states.append(ep.state)
    out += ep.flush()
    return out, ep, states


def test_vad_wrapper_on_real_speech_and_silence(fsdd):
    vad = Vad(3, 30)
    x = load_wav(fsdd_test_clips()[0][1])
    voiced = [vad(float_to_int16(x[i : i + FRAME])).voiced for i in range(0, len(x) - FRAME + 1, FRAME)]
    assert any(voiced)
    vad = Vad(3, 30)
    silence = [vad(np.zeros(FRAME, np.int16)) for _ in range(40)]
    assert not any(s.voiced for s in silence[-20:])  # after webrtcvad's own hangover
    assert all(s.level_db < -100 for s in silence)
    try:
        vad(np.zeros(100, np.int16))
    except ValueError as e:
        assert "240" in str(e)
    else:
        raise AssertionError("wrong frame size accepted")


def test_quick_run_together_digits_give_one_utterance_each(fsdd):
    # "four one seven" spoken quickly: 150-300 ms between words
    audio, truth = make_stream(12, seed=3, gap_min_s=0.15, gap_max_s=0.3, level_min_db=-8, level_max_db=-3)
    utts, _, _ = segment(audio)
    assert len(utts) == len(truth)
    for u, t in zip(utts, truth):  # each utterance holds its word (edges: trimmed in the neighbours' room noise)
        assert u.start_sample / SAMPLE_RATE <= (t.start + t.end) / 2 <= u.end_sample / SAMPLE_RATE
        assert abs(u.start_sample / SAMPLE_RATE - t.start) < 0.15
        assert abs(u.end_sample / SAMPLE_RATE - t.end) < 0.15


def test_start_end_alternate_and_separate_digits(fsdd):
    audio, truth = make_stream(6, seed=5, gap_min_s=0.5, gap_max_s=2.0)
    utts, _, states = segment(audio)
    assert len(utts) == 6
    starts = [u.start_sample for u in utts]
    ends = [u.end_sample for u in utts]
    assert all(s < e for s, e in zip(starts, ends))
    assert all(e <= s2 for e, s2 in zip(ends, starts[1:]))  # no overlap, in order
    assert all(u.detected_sample >= u.end_sample for u in utts)
    assert states[0] == "silence" and "speech" in states


def test_clicks_are_dropped(fsdd):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SAMPLE_RATE * 6) * 1e-3).astype(np.float32)  # quiet room
    for k in range(10):  # 10 sharp clicks (3 ms), 0.5 s apart, near full scale
        i = SAMPLE_RATE // 2 * (k + 1)
        x[i : i + 24] += np.float32(0.9) * np.hanning(24).astype(np.float32) * np.sign(rng.standard_normal(24)).astype(np.float32)
    utts, ep, _ = segment(x)
    assert utts == []


def test_long_sound_is_force_cut_at_max_length(fsdd):
    # 2.5 s of a voiced vowel-like sound (harmonics of 140 Hz with vibrato); longer steady
    # sounds become the noise floor (3 s window) and end by themselves
    t = np.arange(int(SAMPLE_RATE * 2.5)) / SAMPLE_RATE
    f0 = 140 + 10 * np.sin(2 * np.pi * 3 * t)
    ph = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(np.sin(k * ph) / k for k in range(1, 15)) * 0.2
    x = np.concatenate([np.zeros(4000), x, np.zeros(8000)]).astype(np.float32)
    cfg = EndpointConfig(max_utterance_ms=1000)
    utts, ep, _ = segment(x, cfg)
    assert ep.forced_cuts >= 2
    assert all(u.duration_s <= 1.0 + 1e-6 for u in utts)
    assert any(u.forced for u in utts)


def test_level_gate_ignores_very_quiet_speech(fsdd):
    audio, truth = make_stream(3, seed=1, level_min_db=-62, level_max_db=-60, room_snr_db=None)
    utts, ep, _ = segment(audio)
    assert utts == []
    loud, _ = make_stream(3, seed=1, level_min_db=-12, level_max_db=-10, room_snr_db=None)
    assert len(segment(loud)[0]) == 3
