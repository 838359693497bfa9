"""The room scenario: its generator on the real unseen-speaker corpora, and one tiny run of it
through the real pipeline with the shipped model (numbers checked for range, never for value)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitd import SAMPLE_RATE
from digitd.audio import load_wav
from digitd.config import Config
from digitd.corpora import available, is_dev, is_unseen, split_clips
from digitd.espeak import VOICES
from digitd.features import trim_bounds
from digitd.model import load_model
from digitd.room import Condition, RoomError, conditions, make_room_stream, seeds, write_stream
from digitd.sounds import SOUND_KINDS

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("speech-commands-digits", "audiomnist-digits", "speech-commands-words", "speech-commands-noise")
pytestmark = pytest.mark.skipif(not set(NEEDED) <= set(available()),
                                reason=f"needs {', '.join(NEEDED)} in ../shared (or $DIGITD_SHARED_DIR)")


def bench(**room) -> "Config.bench":
    b = Config().bench
    return dataclasses.replace(b, **{f"room_{k}": v for k, v in room.items()})


SMALL = dict(words=40, background_s=6.0)


@pytest.fixture(scope="module")
def pink():
    return make_room_stream(Condition("pink_5db", "pink", 5.0), bench(**SMALL))


def _speech(items):
    return [t for t in items if t.kind in ("digit", "word")]


def test_conditions_are_clean_once_plus_background_by_snr():
    names = [c.name for c in conditions(Config().bench)]
    assert len(names) == 16 and names[0] == "clean" and len(set(names)) == 16
    assert {"noise_20db", "white_10db", "pink_10db", "brown_5db", "babble_5db"} <= set(names)


def test_seeds_are_ranges_and_lists_each_once_or_the_one_seed():
    b = Config().bench
    assert seeds(dataclasses.replace(b, seed=4)) == [4]
    assert seeds(dataclasses.replace(b, seeds="0-9")) == list(range(10))
    assert seeds(dataclasses.replace(b, seeds="3, 1,1,0-2")) == [3, 1, 0, 2]
    for bad in ("a", "5-2", "-1", "1-", "1.5", "0-5000"):
        with pytest.raises(RoomError, match="bench.seeds"):
            seeds(dataclasses.replace(b, seeds=bad))


def test_the_same_seed_gives_the_same_stream_and_another_seed_another(pink):
    again = make_room_stream(pink.condition, bench(**SMALL))
    assert np.array_equal(again.pcm, pink.pcm)
    assert [t.to_dict() for t in again.truth] == [t.to_dict() for t in pink.truth]
    other = make_room_stream(pink.condition, dataclasses.replace(bench(**SMALL), seed=1))
    assert [t.to_dict() for t in other.truth] != [t.to_dict() for t in pink.truth]


def test_only_unseen_speakers_and_evaluation_voices_are_placed():
    from train.synth import DETECTOR_VOICES, TRAIN_VARIANTS, variant_of

    b = bench(words=40, background_s=3.0, espeak_share=0.25)
    seen_roles, corpora = set(), set()
    for cond in (Condition("babble_10db", "babble", 10.0), Condition("noise_10db", "noise", 10.0)):
        st = make_room_stream(cond, b)
        assert st.placed
        for p in st.placed:
            seen_roles.add(p.role)
            corpora.add(p.corpus)
            if p.corpus == "espeak-ng":
                assert p.speaker in VOICES and p.speaker not in DETECTOR_VOICES
                assert variant_of(p.speaker) not in TRAIN_VARIANTS
            elif p.corpus == "synthesised":
                assert p.speaker in SOUND_KINDS
            else:
                assert is_unseen(p.speaker), p
    assert seen_roles == {"foreground", "babble", "noise"}
    assert {"speech-commands-digits", "speech-commands-words", "speech-commands-noise"} <= corpora
    if shutil.which("espeak-ng"):
        assert "espeak-ng" in corpora


def test_the_training_side_for_tuning_places_no_unseen_speaker():
    """bench.room_speakers = "train" / "dev": knobs are tuned on streams of training-side voices,
    words and noises only (the dev slice alone for "dev"), so the judged (unseen) numbers never
    chose them."""
    for side, ok in (("train", lambda s: not is_unseen(s)), ("dev", is_dev), ("fit", lambda s: not is_unseen(s) and not is_dev(s))):
        b = bench(words=40, background_s=3.0, speakers=side)
        corpora = set()
        for cond in (Condition("babble_10db", "babble", 10.0), Condition("noise_10db", "noise", 10.0)):
            st = make_room_stream(cond, b)
            for p in st.placed:
                if p.corpus not in ("espeak-ng", "synthesised"):
                    corpora.add(p.corpus)
                    assert ok(p.speaker), (side, p)
        assert {"speech-commands-digits", "speech-commands-words", "speech-commands-noise"} <= corpora


@pytest.mark.parametrize("background", ["noise", "white", "pink", "brown", "babble"])
def test_the_background_is_at_the_asked_snr_against_the_placed_speech(background):
    snr = 5.0 if background != "babble" else 10.0
    st = make_room_stream(Condition(f"{background}_{snr:g}db", background, snr), bench(words=16, background_s=3.0))
    words = _speech(st.truth)
    # speech power measured on the speech track inside each truth word, background on its own track
    p_speech = np.mean([np.mean(st.speech[round(t.start * SAMPLE_RATE): round(t.end * SAMPLE_RATE)].astype(np.float64) ** 2)
                        for t in words])
    p_bg = np.mean(st.background.astype(np.float64) ** 2)
    assert 10 * np.log10(p_speech / p_bg) == pytest.approx(snr, abs=0.3)


def test_the_mixed_stream_has_that_snr_in_its_background_only_stretch(pink):
    (stretch,) = [t for t in pink.truth if t.kind == "background"]
    x = pink.audio[round(stretch.start * SAMPLE_RATE): round(stretch.end * SAMPLE_RATE)].astype(np.float64)
    assert 10 * np.log10(pink.speech_power / np.mean(x**2)) == pytest.approx(5.0, abs=0.3)


def test_truth_boundaries_are_the_trimmed_clean_clips_where_they_were_placed(pink):
    paths = {c.path.name: c.path for c in split_clips(unseen=True)}
    checked = 0
    for t in _speech(pink.truth):
        if t.source not in paths:
            continue  # an espeak-ng digit
        x = load_wav(paths[t.source]).astype(np.float64)
        s, e = trim_bounds(x)
        a, z = round(t.start * SAMPLE_RATE), round(t.end * SAMPLE_RATE)
        assert z - a == e - s
        seg = pink.speech[a:z].astype(np.float64)
        assert np.corrcoef(seg, x[s:e])[0, 1] > 0.98, t  # the same audio, only scaled
        assert 10 * np.log10(np.mean(seg**2)) == pytest.approx(t.level_dbfs, abs=0.5)
        checked += 1
    assert checked >= 20


def test_about_one_word_in_six_is_not_a_digit_and_sounds_are_there(pink):
    kinds = [t.kind for t in pink.truth]
    spoken = kinds.count("digit") + kinds.count("word")
    assert spoken == 40
    assert kinds.count("word") / spoken == pytest.approx(1 / 6, abs=0.02)
    assert kinds.count("sound") == 4
    assert {t.label for t in pink.truth if t.kind == "sound"} <= set(SOUND_KINDS)
    assert sorted({t.label for t in pink.truth if t.kind == "digit"}) == [str(d) for d in range(10)]


def test_a_background_only_stretch_holds_no_foreground(pink):
    (stretch,) = [t for t in pink.truth if t.kind == "background"]
    assert stretch.end - stretch.start == pytest.approx(6.0)
    others = [t for t in pink.truth if t.kind != "background"]
    assert not any(t.start < stretch.end and t.end > stretch.start for t in others)
    a, z = round(stretch.start * SAMPLE_RATE), round(stretch.end * SAMPLE_RATE)
    assert not np.any(pink.speech[a:z])  # nothing spoken leaks in (the sounds are silent there too)
    assert np.sqrt(np.mean(pink.audio[a:z].astype(np.float64) ** 2)) > 1e-3  # but the background plays


def test_quick_strings_levels_and_synthetic_share(pink):
    b = bench(**SMALL)
    heard = sorted((t for t in pink.truth if t.kind != "background"), key=lambda t: t.start)
    gaps = [n.start - p.end for p, n in zip(heard, heard[1:])]
    assert min(gaps) >= b.room_gap_min_s - 1e-3 and sum(g < 0.3 for g in gaps) >= 2  # "4 1 7"
    levels = [t.level_dbfs for t in heard]
    assert max(abs(np.diff(levels))) <= b.room_level_step_db + 1e-6
    assert all(abs(v - b.room_level_dbfs) <= b.room_level_step_db + 1e-6 for v in levels)
    digits = [t for t in pink.truth if t.kind == "digit"]
    synthetic = [t for t in digits if t.source == "espeak-ng"]
    assert len(synthetic) <= len(digits) / 4
    heavy = make_room_stream(pink.condition, bench(words=40, background_s=1.0, espeak_share=0.25))
    d2 = [t for t in heavy.truth if t.kind == "digit"]
    if shutil.which("espeak-ng"):
        assert 0 < sum(t.source == "espeak-ng" for t in d2) <= len(d2) / 4


def test_saved_stream_is_what_the_pipeline_was_given(pink, tmp_path):
    wav, js = write_stream(pink, tmp_path)
    assert np.array_equal(load_wav(wav), pink.audio)
    data = json.loads(js.read_text())
    assert data["condition"] == "pink_5db" and len(data["truth"]) == len(pink.truth)


# -- end to end: a tiny room scenario through the real pipeline, with the shipped model --------------

TINY = ["--set", "bench.room_words=8", "--set", "bench.room_background_s=4", "--set", 'bench.room_backgrounds="none,babble"',
        "--set", 'bench.room_snrs_db="10"']


def _bench(*args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "digitd", "bench", "--json", *args], capture_output=True, text=True,
                       timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return json.loads(r.stdout)


def _in_range(m: dict) -> None:
    assert m["n_truth"] > 0 and m["der"] >= 0
    assert m["der"] == pytest.approx((m["substitutions"] + m["deletions"] + m["insertions"]) / m["n_truth"])
    assert 0.0 <= m["fa_rate"] <= 1.0
    assert m["background_insertions_per_min"] >= 0
    assert 0 <= m["background_insertions"] <= m["insertions"]
    eos = m["eos_latency_ms"]
    if eos["n"]:
        # stream time: hangover + end decision, never seconds; under babble a long word's quiet tail
        # can be cut off past endpoint.late_ms, and its digit comes out before the word's truth end
        assert -500 < eos["p50"] <= eos["p95"] < 3000
    assert m["rtf"] > 0
    assert 0 < m["cpu_percent"] <= 250 and 20 < m["peak_rss_mb"] < 4000  # the paced check reads these


def test_room_bench_runs_the_real_pipeline_and_reports_every_key(model_path, tmp_path, capsys):
    out = _bench("--scenario", "room", "--model", str(model_path), "--save-stream", str(tmp_path), *TINY)
    for key in ("der", "fa_rate", "background_insertions_per_min", "rtf", "by_condition"):
        assert key in out, key
    assert set(out["eos_latency_ms"]) >= {"p50", "p95"}
    assert set(out["by_condition"]) == {"clean", "babble_10db"}
    assert out["speakers"] == "unseen" and out["microphone"] == "flat"
    _in_range(out)
    for name, m in out["by_condition"].items():
        _in_range(m)
    assert out["n_truth"] == sum(m["n_truth"] for m in out["by_condition"].values())
    assert out["background_s"] == pytest.approx(8.0)
    # a saved condition replays to the same accuracy numbers through `--input/--truth`
    again = _bench("--input", str(tmp_path / "babble_10db.wav"), "--truth", str(tmp_path / "babble_10db.json"),
                   "--model", str(model_path))
    m = out["by_condition"]["babble_10db"]
    for key in ("der", "substitutions", "deletions", "insertions", "fa_rate", "sound_fa_rate",
                "background_insertions_per_min"):
        assert again[key] == m[key], key
    assert again["eos_latency_ms"]["p50"] == pytest.approx(m["eos_latency_ms"]["p50"])
    # the table names the voices' side and a microphone that is not flat (every side has a title)
    from digitd.bench import print_room_table

    capsys.readouterr()
    for side in ("unseen", "train", "dev", "fit"):
        print_room_table(dict(out, speakers=side, microphone="laptop"))
        assert "through a laptop microphone" in " ".join(capsys.readouterr().out.split())


def test_several_seeds_pool_to_the_sum_of_their_single_runs(model_path, tmp_path):
    """`--seeds 0,1`: the overall and per-condition counts are those of the two one-seed runs
    added, each seed's DER is its own run's, and each seed's streams are saved apart."""
    both = _bench("--scenario", "room", "--model", str(model_path), "--seeds", "0,1", "--save-stream", str(tmp_path), *TINY)
    one = [_bench("--scenario", "room", "--model", str(model_path), "--set", f"bench.seed={n}", *TINY) for n in (0, 1)]
    assert both["seeds"] == [0, 1] and both["seed"] is None
    assert both["der_per_seed"] == {"0": one[0]["der"], "1": one[1]["der"]}
    assert both["der_mean"] == pytest.approx((one[0]["der"] + one[1]["der"]) / 2)
    counts = ("n_truth", "correct", "substitutions", "deletions", "insertions", "n_words", "word_false_alarms",
              "n_sounds", "sound_false_alarms", "background_insertions", "rejected")
    for key in counts:
        assert both[key] == one[0][key] + one[1][key], key
        for name, m in both["by_condition"].items():
            assert m[key] == one[0]["by_condition"][name][key] + one[1]["by_condition"][name][key], (name, key)
    assert both["background_s"] == pytest.approx(one[0]["background_s"] + one[1]["background_s"])
    assert both["eos_latency_ms"]["n"] == one[0]["eos_latency_ms"]["n"] + one[1]["eos_latency_ms"]["n"]
    _in_range(both)
    saved = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.wav"))
    assert saved == ["seed0/babble_10db.wav", "seed0/clean.wav", "seed1/babble_10db.wav", "seed1/clean.wav"]
    assert json.loads((tmp_path / "seed1" / "clean.json").read_text())["seed"] == 1


def test_a_sweep_reuses_classifications_and_reads_as_its_settings_run_alone(model_path):
    """`--sweep`: each later setting re-runs the pipeline but does not classify again a word cut
    exactly as before (`bench.Remembered`); every count and latency equals that setting's own
    run, over two seeds (the memory is per seed), for a classifier knob and for an endpointer
    knob that changes the cuts."""
    sweep = ["--sweep", "classify.reject_threshold=0.38,0.6", "--sweep", "endpoint.word_over_bg_db=6"]
    both = _bench("--scenario", "room", "--model", str(model_path), "--seeds", "0,1", *sweep, *TINY)["sweep"]
    alone = [_bench("--scenario", "room", "--model", str(model_path), "--seeds", "0,1", "--set", f"{key}={v}", *TINY)
             for key, v in (("classify.reject_threshold", "0.38"), ("classify.reject_threshold", "0.6"),
                            ("endpoint.word_over_bg_db", "6"))]
    keys = ("der", "substitutions", "deletions", "insertions", "word_false_alarms", "sound_false_alarms",
            "background_insertions", "digits", "rejected", "utterances", "der_per_seed")
    for r, a in zip(both, alone):
        assert {k: r[k] for k in keys} == {k: a[k] for k in keys}, r["label"]
        assert r["eos_latency_ms"] == pytest.approx(a["eos_latency_ms"])
        for name, m in r["by_condition"].items():
            assert m["der"] == a["by_condition"][name]["der"], (r["label"], name)
        assert a["reused_classifications"] == 0
    assert both[0]["reused_classifications"] == 0
    assert both[1]["reused_classifications"] > 0.8 * both[1]["utterances"]  # only the rules after the classifier moved
    assert 0 < both[2]["reused_classifications"]
    assert both[1]["der"] != both[0]["der"] or both[1]["rejected"] != both[0]["rejected"]  # the knob did something


def test_bad_room_knob_is_one_line(model_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "digitd", "bench", "--scenario", "room", "--model", str(model_path),
                        "--set", 'bench.room_backgrounds="none,traffic"'], capture_output=True, text=True,
                       timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "traffic" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "digitd", "bench", "--scenario", "room", "--model", str(model_path),
                        "--seeds", "9-3"], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "bench.seeds" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "digitd", "bench", "--model", str(model_path), "--seeds", "0-2"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "only the room scenario" in r.stderr, r.stderr


def test_a_reverberant_room_rings_on_after_each_word_and_keeps_the_dry_truth(pink):
    """bench.room_rt60_s: the same draws and truth as the dry stream, but each word carries its
    room's reverberation past its end (where the dry stream has only background)."""
    wet = make_room_stream(Condition("pink_5db", "pink", 5.0), bench(**SMALL, rt60_s=0.6, drr_db=0.0))
    assert [t.to_dict() for t in wet.truth] == [t.to_dict() for t in pink.truth]
    after_dry, after_wet = [], []
    for t in _speech(pink.truth):
        a, z = round(t.end * SAMPLE_RATE) + 800, round(t.end * SAMPLE_RATE) + 1600  # 100-200 ms after the word
        after_dry.append(np.mean(pink.speech[a:z].astype(np.float64) ** 2))
        after_wet.append(np.mean(wet.speech[a:z].astype(np.float64) ** 2))
    assert np.median(after_wet) > 10 * np.median(after_dry) and np.median(after_wet) > 0


def test_a_quicker_higher_voice_is_each_word_played_faster_and_sounds_stay(pink):
    """bench.room_voice_speed: the same draws, every spoken word 1/speed as long (tempo and pitch
    together), the synthesised sounds as they were."""
    fast = make_room_stream(Condition("pink_5db", "pink", 5.0), bench(**SMALL, voice_speed=1.25))
    assert [(t.kind, t.label, t.speaker) for t in fast.truth] == [(t.kind, t.label, t.speaker) for t in pink.truth]
    spoken = [(a.end - a.start, b.end - b.start) for a, b in zip(pink.truth, fast.truth) if a.kind in ("digit", "word")]
    ratios = np.array([b / a for a, b in spoken])
    assert np.median(ratios) == pytest.approx(1 / 1.25, abs=0.03)  # the trim moves each word's ends by a 10 ms frame or so
    assert sum(b for _, b in spoken) == pytest.approx(sum(a for a, _ in spoken) / 1.25, rel=0.05)
    for a, b in zip(pink.truth, fast.truth):
        if a.kind == "sound":
            assert (b.end - b.start) == pytest.approx(a.end - a.start, abs=1e-3)


def test_a_stream_that_starts_on_a_word_is_the_same_stream_without_its_lead(pink):
    """bench.room_lead_s: the same draws; every item and the spoken track move by the lead's
    difference, and the first word starts 0.1 s in (its clip's own edge before it)."""
    short = make_room_stream(Condition("pink_5db", "pink", 5.0), bench(**SMALL, lead_s=0.1))
    shift = 1.0 - 0.1
    assert [(t.kind, t.label, t.speaker, t.level_dbfs) for t in short.truth] == \
           [(t.kind, t.label, t.speaker, t.level_dbfs) for t in pink.truth]
    for a, b in zip(pink.truth, short.truth):
        assert (b.start, b.end) == pytest.approx((a.start - shift, a.end - shift), abs=1e-9)
    k = round(shift * SAMPLE_RATE)
    assert len(short.speech) == len(pink.speech) - k
    assert np.array_equal(short.speech, pink.speech[k:])
    assert short.truth[0].start == pytest.approx(0.1)
    assert make_room_stream(Condition("pink_5db", "pink", 5.0), bench(**SMALL)).truth[0].start == pytest.approx(1.0)


def test_room_clips_script_measures_unseen_clips_in_each_room():
    """scripts/room_clips.py (the docs' isolated-clip room rows) on a few clips: every room gets a
    row, and dry unseen digits are mostly right (the shipped model, no stand-in)."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "room_clips.py"), "--digits", "20", "--words", "10"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ, COLUMNS="120"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.startswith("│")}
    assert {"dry", "0.3 s, DRR +6 dB", "0.5 s, DRR 0 dB", "0.8 s, DRR -3 dB"} <= set(rows)
    dry_right = float(rows["dry"].split("│")[2].strip().rstrip("%"))
    assert dry_right >= 80.0


def test_babble_kinds_script_reads_the_same_digits_under_each_kind_of_talk():
    """scripts/babble_kinds.py on a few clips: a row per kind of talk and SNR, a digit counted right
    and accepted is also a right best guess, and at 20 dB most digits are read under any talk."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "babble_kinds.py"), "--digits", "20", "--snr", "20,0"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ, COLUMNS="140"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in r.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 6 and {(row[0].split(",")[0].split(" ")[0], row[1]) for row in rows} == {
        (k, s) for k in ("heads'", "bench's") for s in ("20", "0")} and len({row[0] for row in rows}) == 3
    for _, snr, ok, best in rows:
        ok_p, best_p = float(ok.rstrip("%")), float(best.rstrip("%"))
        assert ok_p <= best_p
        if snr == "20":
            assert ok_p >= 70.0


def test_room_losses_script_accounts_for_every_digit_as_the_bench_scores_it(model_path):
    """scripts/room_losses.py on the tiny room: each true digit gets exactly one outcome, `ok` and
    `substituted` are the bench's correct and S on the same streams, the other outcomes its
    deletions, and the digit's own span is read on at most every digit."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "room_losses.py"), "--model", str(model_path), "--json", "--by-snr",
                        *TINY], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    losses = json.loads(r.stdout)
    model = load_model(model_path)
    strong = model.cnn is not None and model.embed is not None  # the shipped model; the fallback LR has neither
    # --by-snr: the same digits split by their own SNR; a clean stream's all sit in the top row
    for name, row in losses["by_condition"].items():
        cells = {k.split(" ", 1)[1]: v for k, v in losses["by_snr"].items() if k.split(" ", 1)[0] == name}
        for key in ("n", "ok", "own_span_ok"):
            assert sum(v.get(key, 0) for v in cells.values()) == row.get(key, 0), (name, key)
        assert all(v.get("own_span_ok", 0) <= v.get("own_span_best", 0) <= v["n"] for v in cells.values())
        # each strong member's own best guess, counted once per digit like the joined one
        assert all(0 <= v[f"own_span_{m}"] <= v["n"] for v in cells.values() for m in ("cnn", "embed"))
        if name == "clean":
            assert set(cells) == {">= 15"}
            if strong:  # clean digits of unseen voices: each member names most of them
                assert all(cells[">= 15"][f"own_span_{m}"] >= cells[">= 15"]["n"] // 2 for m in ("cnn", "embed"))
    out = _bench("--scenario", "room", "--model", str(model_path), *TINY)
    assert set(losses["by_condition"]) == set(out["by_condition"]) == {"clean", "babble_10db"}
    lost = ("rejected_read_right", "rejected_read_wrong", "unvoiced", "merged", "not_found")
    for name, row in losses["by_condition"].items():
        m = out["by_condition"][name]
        assert row["n"] == m["n_truth"] > 0
        assert row.get("ok", 0) == m["correct"] and row.get("substituted", 0) == m["substitutions"]
        assert sum(row.get(k, 0) for k in lost) == m["deletions"]
        assert 0 <= row["own_span_ok"] <= row["n"] and 0 <= row["not_found_own_span_ok"] <= row.get("not_found", 0)
        assert sum(row.get(f"why_{w}", 0) for w in ("background", "short", "quiet", "unopened")) == row.get("not_found", 0)
        rejected = row.get("rejected_read_right", 0) + row.get("rejected_read_wrong", 0)
        assert sum(v for k, v in row.items() if k.startswith("rejected_as_")) == rejected


def test_a_microphone_colours_words_and_background_alike_and_keeps_the_truth(pink):
    """bench.room_mic: the same draws and truth; every track goes through the microphone after the
    SNR was set, so the words' spectrum changes (phone: the lows gone) and the background with them."""
    from scipy.signal import welch

    phone = make_room_stream(Condition("pink_5db", "pink", 5.0), bench(**SMALL, mic="phone"))
    assert [t.to_dict() for t in phone.truth] == [t.to_dict() for t in pink.truth]
    assert phone.speech_power == pink.speech_power

    def low_share(x):
        f, p = welch(x.astype(np.float64), SAMPLE_RATE, nperseg=512)
        return p[f < 200].sum() / p.sum()

    for flat, coloured in ((pink.speech, phone.speech), (pink.background, phone.background)):
        assert low_share(coloured) < 0.1 * low_share(flat)
    assert np.corrcoef(pink.speech, phone.speech)[0, 1] > 0.7


def test_a_converters_dc_offset_rides_on_the_stream_as_a_live_microphone_gives_it(pink, tmp_path):
    """bench.room_dc_offset: the same draws and truth, the offset on every sample the pipeline is
    handed; the saved WAV holds it too, and loads without it (a file loses its mean at load)."""
    dc = make_room_stream(Condition("pink_5db", "pink", 5.0), bench(**SMALL, dc_offset=0.02))
    assert [t.to_dict() for t in dc.truth] == [t.to_dict() for t in pink.truth]
    lsb = 2.0 / 32768  # the int16 stream is rounded with and without the offset
    assert np.max(np.abs(dc.audio - np.float32(0.02) - pink.audio)) <= lsb
    wav, _ = write_stream(dc, tmp_path)
    assert np.max(np.abs(load_wav(wav) - pink.audio)) <= lsb
