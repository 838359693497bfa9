"""Every bad or odd input, through every command that takes WAVs: one line naming the file and
the reason, a non-zero exit, no traceback; good files next to bad ones are not lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.wavkinds import GOOD_KINDS, make_bad_inputs, write_kind

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "digitd", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def _one_line_error(r: subprocess.CompletedProcess, path: Path, phrase: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("digitd: error:") and str(path) in lines[0] and phrase in lines[0], lines[0]


def test_run_input_rejects_each_bad_file_in_one_line(bad, model_path):
    assert len(bad) >= 14
    for name, (path, phrase) in bad.items():
        r = run("run", "--input", str(path), "--speed", "max", "--jsonl", "--model", str(model_path))
        _one_line_error(r, path, phrase)
        assert r.stdout == "", name  # nothing half-done on stdout


def test_bench_input_rejects_a_bad_file(bad, model_path, tmp_path):
    path, phrase = bad["truncated.wav"]
    truth = tmp_path / "t.json"
    truth.write_text("[]")
    r = run("bench", "--input", str(path), "--truth", str(truth), "--model", str(model_path))
    _one_line_error(r, path, phrase)


def test_predict_reports_every_bad_file_and_keeps_the_good_ones(bad, model_path, tmp_path):
    good = [write_kind(tmp_path / f"{n}.wav", rate, dt, ch) for n, rate, dt, ch in GOOD_KINDS]
    paths = [str(p) for p, _ in bad.values()] + [str(p) for p in good]
    r = run("predict", *paths, "--model", str(model_path))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert sorted(o["file"] for o in out) == sorted(str(p) for p in good)  # every good file classified
    errs = r.stderr.strip().splitlines()
    for path, phrase in bad.values():
        if path.is_dir():
            continue  # predict takes folders: an empty one holds no WAV to fail on
        mine = [e for e in errs if str(path) in e]
        assert mine and phrase in mine[0], (path, errs)


def test_predict_on_a_folder_skips_bad_files(bad, model_path):
    folder = next(iter(bad.values()))[0].parent
    r = run("predict", str(folder), "--model", str(model_path))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert any(json.loads(x)["file"].endswith("good.wav") for x in r.stdout.splitlines())


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "vad.aggressiveness=5"], "vad.aggressiveness"),
        (["--set", "audio.frame_ms=25"], "audio.frame_ms"),
        (["--set", "endpoint.hangover_ms=-1"], "endpoint.hangover_ms"),
        (["--set", "nosuch.key=1"], "nosuch"),
        (["--model", "/nonexistent/model.npz"], "model file not found"),
        (["--reject-threshold", "nan"], "classify.reject_threshold: expected a finite number"),
        (["--set", "audio.ring_seconds=nan"], "audio.ring_seconds: expected a finite number"),
        (["--exec", "echo 'open"], "exec.command: cannot split"),
        (["--users-dir", __file__, "--user", "ann"], "not a folder"),
    ],
)
def test_bad_config_and_model_are_one_line(args, needle, short_stream):
    path = short_stream[0]
    r = run("run", "--input", str(path), "--speed", "max", "--jsonl", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr


def test_one_source_at_a_time(short_stream):
    """--demo and --input both name the recording to stream: refused, not one of them ignored."""
    r = run("run", "--input", str(short_stream[0]), "--demo", "--speed", "max", "--jsonl")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    assert "--demo: not allowed with argument --input" in r.stderr, r.stderr


def test_convert_model_names_a_missing_file(tmp_path):
    r = run("convert-model", str(tmp_path / "old.joblib"))
    assert r.returncode == 2 and r.stderr.strip() == f"digitd: error: {tmp_path / 'old.joblib'}: model file not found", r.stderr


def test_a_sweep_of_a_stream_knob_is_one_line(model_path):
    r = run("bench", "--scenario", "room", "--sweep", "bench.room_level_step_db=0,5", "--model", str(model_path), "--json")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "--set" in r.stderr, r.stderr
    r = run("bench", "--sweep", "bench.seed=0,1", "--model", "/nonexistent/model.npz")  # refused before any model is loaded
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--sweep bench.seed" in r.stderr, r.stderr


def test_corrupt_model_file_is_one_line(tmp_path, short_stream, model_path):
    import shutil

    from digitd.model import card_path, sha256_file

    bad_model = tmp_path / "m.npz"
    data = Path(model_path).read_bytes()
    bad_model.write_bytes(data[: len(data) // 3])  # truncated
    card = json.loads(card_path(model_path).read_text())
    card["sha256"] = sha256_file(bad_model)  # re-signed, so the reader itself must cope
    card_path(bad_model).write_text(json.dumps(card))
    r = run("run", "--input", str(short_stream[0]), "--speed", "max", "--jsonl", "--model", str(bad_model))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "corrupt" in r.stderr, r.stderr
    shutil.copy(model_path, bad_model)  # unsigned copy: the card no longer matches
    r = run("run", "--input", str(short_stream[0]), "--speed", "max", "--jsonl", "--model", str(bad_model))
    assert r.returncode == 2 and "SHA-256" in r.stderr


def test_predict_names_a_folder_without_wavs(tmp_path, model_path):
    empty = tmp_path / "no_wavs_here"
    empty.mkdir()
    (empty / "notes.txt").write_text("not audio")
    r = run("predict", str(empty), "--model", str(model_path))
    _one_line_error(r, empty, "no WAV files")


def test_benches_without_their_data_are_one_line(tmp_path, model_path):
    """A fresh clone without ../shared: the FSDD stream and the room scenario say what is missing
    and how to get it."""
    empty = tmp_path / "no_fsdd"
    empty.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), DIGITD_FSDD_DIR=str(empty), DIGITD_SHARED_DIR=str(empty))
    for args, phrase in ((["bench"], "get-data.sh"), (["bench", "--scenario", "room"], "DIGITD_SHARED_DIR")):
        r = subprocess.run([sys.executable, "-m", "digitd", *args, "--model", str(model_path)], capture_output=True,
                           text=True, timeout=120, env=env, cwd=ROOT)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("digitd: error:") and phrase in lines[0], r.stderr


@pytest.mark.parametrize("script, args", [
    ("room_losses.py", ["--model", "{missing}"]), ("room_clips.py", ["--model", "{missing}"]),
    ("babble_kinds.py", ["--model", "{missing}"]),
    ("measure_live.py", ["--model", "{missing}"]), ("tune_endpoint.py", ["--model", "{missing}"]),
    ("compare_models.py", ["{missing}"]), ("half_model.py", ["{missing}", "{out}", "--clips", "{out}"]),
])
def test_measurement_scripts_name_a_missing_model_in_one_line(script, args, tmp_path):
    """The scripts the docs' numbers come from fail as the commands do: one line, exit != 0."""
    missing, out = tmp_path / "no-such-model.npz", tmp_path / "out.npz"
    argv = [a.format(missing=missing, out=out) for a in args]
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *argv], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script[:-3]}: error:") and str(missing) in lines[0], r.stderr
    assert not out.exists()
