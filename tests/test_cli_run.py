"""`digitd run` as a process: signals, closed pipes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def digitd(*args: str) -> list[str]:
    return [sys.executable, "-m", "digitd", "run", *args]


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_within_half_a_second_and_flushes(model_path, short_stream, sig):
    path, _, truth = short_stream
    p = subprocess.Popen(digitd("--input", str(path), "--speed", "1", "--jsonl", "--model", str(model_path)),
                         cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())  # running: the first word was recognised
        assert first["event"] in ("digit", "rejected")
        time.sleep(0.2)
        t0 = time.monotonic()
        p.send_signal(sig)
        out, err = p.communicate(timeout=5)
        took = time.monotonic() - t0
    finally:
        p.kill()
    assert took < 0.5, f"shutdown took {took:.3f} s"
    assert p.returncode == 0, err
    assert err == ""
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[-1]["event"] == "summary"
    assert lines[-1]["audio_s"] < truth[-1].end  # stopped early, and said so


def test_closed_stdout_exits_quietly(model_path):
    cmd = " ".join(digitd("--demo", "--speed", "max", "--jsonl", "--model", str(model_path)))
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1; echo \"status=${{PIPESTATUS[0]}}\" >&2"],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert len(r.stdout.splitlines()) == 1 and json.loads(r.stdout)["event"] == "digit"
    lines = [x for x in r.stderr.splitlines() if not x.startswith("status=")]
    assert lines == [], r.stderr  # no traceback, no "Broken pipe" noise
    status = int(r.stderr.split("status=")[-1])
    assert status in (0, 141)  # clean exit, or killed by SIGPIPE (default action) without output


@pytest.mark.parametrize("args, needle", [
    (["--input", "/nonexistent/x.wav"], "no such file"),
    (["--input", "config.toml"], "not a readable WAV"),
    (["--demo", "--model", "/nonexistent/m.npz"], "model file not found"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    r = subprocess.run(digitd(*args, "--jsonl"), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox to write FLAC / Ogg / AIFF / mu-law")
def test_other_audio_formats_stream_like_their_wav(tmp_path, fsdd):
    """A phone's or an editor's recording (FLAC, Ogg, AIFF, a mu-law telephone WAV) streams
    through `run --input` as its WAV does; a container libsndfile cannot read (M4A) is named in
    one line with the ffmpeg command that makes the WAV digitd reads."""
    src = sorted(fsdd.glob("7_*.wav"))[0]
    for name, args in (("take.flac", ["-r", "16000"]), ("take.ogg", ["-r", "16000"]), ("take.aiff", []),
                       ("take_mulaw.wav", ["-e", "u-law"])):
        other = tmp_path / name
        subprocess.run(["sox", str(src), *args, str(other)], check=True)
        r = subprocess.run(digitd("--input", str(other), "--speed", "max", "--jsonl"), cwd=ROOT, env=env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert [json.loads(x)["digit"] for x in r.stdout.splitlines() if '"digit"' in x] == ["7"], name
    m4a = tmp_path / "phone.m4a"
    m4a.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 4)
    r = subprocess.run(digitd("--input", str(m4a), "--jsonl"), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "it is MP4 / M4A" in line and "ffmpeg -i" in line and "out.wav" in line, line


def test_a_wav_piped_to_standard_input_streams_like_the_file(tmp_path):
    """`--input -` reads a WAV from a pipe as it arrives (ffmpeg / arecord / sox ... | digitd),
    also with the unknown-length header a streaming writer puts first: the same digits and
    stream length as the file. What is not a recording gets one line naming standard input."""
    import struct

    demo = ROOT / "digitd" / "data" / "demo.wav"
    raw = bytearray(demo.read_bytes())
    i = raw.index(b"data")
    raw[4:8] = raw[i + 4 : i + 8] = struct.pack("<I", 0xFFFFFFFF)  # sizes a pipe writer cannot know
    runs = []
    for args, stdin in (([str(demo)], None), (["-"], bytes(raw))):
        r = subprocess.run(digitd("--input", *args, "--speed", "max", "--jsonl"), cwd=ROOT, env=env(), input=stdin,
                           capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        ev = [json.loads(x) for x in r.stdout.decode().splitlines()]
        runs.append(([e["digit"] for e in ev if e["event"] == "digit"], [e["audio_s"] for e in ev if e["event"] == "summary"]))
    assert runs[0] == runs[1] and len(runs[0][0]) >= 10
    for junk in (b"", b"not audio at all\n" * 20):
        r = subprocess.run(digitd("--input", "-", "--jsonl"), cwd=ROOT, env=env(), input=junk, capture_output=True, timeout=60)
        line = r.stderr.decode().strip()
        assert r.returncode == 2 and r.stdout == b"" and len(line.splitlines()) == 1 and "standard input" in line, line


def test_ui_without_a_terminal_degrades_to_plain_lines(model_path):
    r = subprocess.run(digitd("--demo", "--speed", "max", "--ui", "--model", str(model_path)), cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("=") and "digits" in lines[-1]
    assert any("conf" in x for x in lines) and not any(x.startswith("{") for x in lines)
    assert "\x1b[" not in r.stdout  # no terminal control codes


def test_live_ui_renders_in_a_terminal(model_path, short_stream):
    """The Rich live UI on a real pseudo-terminal: it renders, shows the digits, exits cleanly."""
    import pty
    import re

    path, _, truth = short_stream
    master, slave = pty.openpty()
    os.set_blocking(master, True)
    p = subprocess.Popen(digitd("--input", str(path), "--speed", "4", "--model", str(model_path)),
                         cwd=ROOT, env=dict(env(), COLUMNS="110", LINES="40", TERM="xterm-256color"),
                         stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=30)
    os.close(master)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert p.returncode == 0, screen[-1500:]
    assert "Traceback" not in screen
    for needle in ("transcript", "VAD", "latency", "utterances", "end of speech", "level"):
        assert needle in screen, needle
    last = screen[screen.rfind("transcript"):]
    shown = "".join(re.findall(r"\b(\d) 0\.\d\d\b", last))  # "7 0.97": digit and its confidence
    ref = subprocess.run(digitd("--input", str(path), "--speed", "max", "--jsonl", "--model", str(model_path)),
                         cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    digits = "".join(json.loads(x)["digit"] for x in ref.stdout.splitlines() if '"digit"' in x and '"event": "digit"' in x)
    assert len(digits) >= len(truth) - 1
    assert shown == digits  # the screen shows exactly what the JSON Lines sink reports
