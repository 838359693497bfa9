"""`--exec CMD` (digitd/hook.py): real commands, run once per number, off the pipeline's thread;
timeouts, failures and a full queue are reported, never fatal."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from digitd.config import ExecConfig
from digitd.events import ExecEvent, NumberEvent
from digitd.hook import ExecSink

ROOT = Path(__file__).resolve().parents[1]
PY = shlex.quote(sys.executable)


def record_cmd(out: Path) -> str:
    """A command (no shell) that appends its DIGITD_* environment to `out` as one JSON line."""
    code = ("import json, os, sys; open(sys.argv[1], 'a').write(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith('DIGITD_')}) + chr(10))")
    return f"{PY} -c {shlex.quote(code)} {shlex.quote(str(out))}"


def N(digits: str, complete: bool = True) -> NumberEvent:
    return NumberEvent(digits, 1.0, 2.0, 2.9, 0.87, complete, 0 if complete else 1)


def test_runs_once_per_number_with_the_number_in_its_environment(tmp_path):
    out = tmp_path / "calls.jsonl"
    reports: list = []
    sink = ExecSink(ExecConfig(command=record_cmd(out)), reports.append)
    for n in (N("4175"), N("90", complete=False), N("0042")):
        sink.handle(n)
    sink.handle(ExecEvent("failed", "1"))  # other events: ignored
    sink.close(wait=True)
    calls = [json.loads(x) for x in out.read_text().splitlines()]
    assert [c["DIGITD_NUMBER"] for c in calls] == ["4175", "90", "0042"]  # leading zeros kept: a string
    assert [c["DIGITD_COMPLETE"] for c in calls] == ["1", "0", "1"]
    assert calls[0]["DIGITD_CONFIDENCE"] == "0.870" and calls[0]["DIGITD_END"] == "2.000"
    assert reports == [] and sink.ran == 3


def test_the_number_never_reaches_a_shell(tmp_path):
    """A command line that a shell would expand stays literal: argv comes from shlex.split."""
    out = tmp_path / "argv.txt"
    code = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
    sink = ExecSink(ExecConfig(command=f"{PY} -c {shlex.quote(code)} {out} '$DIGITD_NUMBER;touch {tmp_path}/pwned'"),
                    lambda e: None)
    sink.handle(N("12"))
    sink.close(wait=True)
    assert out.read_text() == f"$DIGITD_NUMBER;touch {tmp_path}/pwned"
    assert not (tmp_path / "pwned").exists()


def test_timeout_failure_and_missing_command_are_reported_not_fatal(tmp_path):
    reports: list[ExecEvent] = []
    cfg = ExecConfig(command="sleep 29.7", timeout_s=0.3)
    sink = ExecSink(cfg, reports.append, clock=lambda: 12.5)
    t = time.perf_counter()
    sink.handle(N("1"))
    assert time.perf_counter() - t < 0.05  # handle() only queues
    time.sleep(1.0)
    cfg.command = f"{PY} -c \"import sys; print('card declined', file=sys.stderr); sys.exit(3)\""  # live reload
    sink.handle(N("2"))
    time.sleep(1.0)
    cfg.command = "/nonexistent/hook --flag"
    sink.handle(N("3"))
    cfg_quote = "echo 'unbalanced"
    sink.close(wait=True)
    sink2 = ExecSink(ExecConfig(command=cfg_quote), reports.append)
    sink2.handle(N("4"))
    sink2.close(wait=True)
    assert [(r.status, r.number) for r in reports] == [("timeout", "1"), ("failed", "2"), ("error", "3"), ("error", "4")]
    assert reports[0].message == "killed after 0.3 s" and reports[0].at == 12.5
    assert reports[1].returncode == 3 and reports[1].message == "card declined"
    assert "cannot run /nonexistent/hook" in reports[2].message
    assert "cannot split" in reports[3].message
    assert "sleep 29.7" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_a_full_queue_drops_and_reports_numbers(tmp_path):
    reports: list[ExecEvent] = []
    sink = ExecSink(ExecConfig(command="sleep 0.5", queue_size=2), reports.append)
    sink.handle(N("0"))
    while not sink.ran:  # the first one is running
        time.sleep(0.01)
    t = time.perf_counter()
    for k in range(1, 6):  # two wait, three have no room
        sink.handle(N(str(k)))
    assert time.perf_counter() - t < 0.05
    sink.close(wait=True)
    assert [r.number for r in reports if r.status == "dropped"] == ["3", "4", "5"] and sink.ran == 3


def test_close_without_wait_kills_the_running_command_fast():
    """SIGTERM path: the running command is killed, the queued ones (a full queue) skipped."""
    sink = ExecSink(ExecConfig(command="sleep 30", queue_size=1), lambda e: None)
    for k in range(3):
        sink.handle(N(str(k)))
    time.sleep(0.3)
    t = time.perf_counter()
    sink.close(wait=False)
    assert time.perf_counter() - t < 0.5 and sink.ran == 1


def test_run_exec_end_to_end(model_path, number_stream, tmp_path):
    """`digitd run --exec`: the command ran once per number, in order; a failing command is an
    `exec` event on stdout and the run still ends well."""
    wav, _, _, want = number_stream
    out = tmp_path / "calls.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "digitd", "run", "--input", str(wav), "--speed", "max", "--jsonl", "--model", str(model_path)]
    r = subprocess.run(base + ["--exec", record_cmd(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [json.loads(x)["DIGITD_NUMBER"] for x in out.read_text().splitlines()] == want
    r = subprocess.run(base + ["--exec", "false"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    failed = [json.loads(x) for x in r.stdout.splitlines() if '"event": "exec"' in x]
    assert [e["number"] for e in failed] == want and all(e["status"] == "failed" and e["returncode"] == 1 for e in failed)
