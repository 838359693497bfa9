"""`digitd run --serve` and `digitd listen`: real processes, real unix and TCP sockets, real audio.

Clients connect before the stream starts thanks to `--serve-wait N` (the run binds its
sockets before loading the model, then waits for N clients).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")


def digitd(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "digitd", *args], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(addr: str | tuple, timeout: float = 60.0) -> socket.socket:
    """Connect as soon as the server listens (it binds before loading the model)."""
    fam = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    t_end = time.monotonic() + timeout
    while True:
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.connect(addr)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > t_end:
                raise
            time.sleep(0.05)


class Reader(threading.Thread):
    """Reads a socket to its end in the background."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock, self.data, self.error = sock, bytearray(), None
        self.first_line = threading.Event()
        self.start()

    def run(self) -> None:
        while True:
            try:
                b = self.sock.recv(65536)
            except OSError as e:
                self.error = e
                break
            if not b:
                break
            self.data += b
            if b"\n" in self.data:
                self.first_line.set()
        self.sock.close()
        self.first_line.set()

    def events(self) -> list[dict]:
        return [json.loads(x) for x in bytes(self.data).splitlines()]


def run_args(wav: Path, model_path: Path, *extra: str) -> list[str]:
    return ["run", "--input", str(wav), "--jsonl", "--model", str(model_path), *extra]


def test_three_unix_and_one_tcp_client_get_identical_streams(model_path, number_stream, tmp_path):
    wav, _, _, want_numbers = number_stream
    sock_path = str(tmp_path / "d.sock")
    port = free_port()
    p = digitd(*run_args(wav, model_path, "--speed", "max", "--serve", f"unix:{sock_path}",
                         "--serve", f"tcp:127.0.0.1:{port}", "--serve-wait", "4"))
    try:
        raw = [Reader(connect(sock_path)) for _ in range(2)]
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
        # the third unix client is the shipped one, printing exactly what it receives
        listen = digitd("listen", f"unix:{sock_path}")
        tcp = Reader(connect(("127.0.0.1", port)))
        out, err = p.communicate(timeout=120)
        l_out, l_err = listen.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    for r in raw + [tcp]:
        r.join(10)
        assert r.error is None
    streams = [bytes(raw[0].data), bytes(raw[1].data), l_out, bytes(tcp.data)]
    assert len(out) > 2000 and all(s == out for s in streams)  # byte for byte what stdout got
    assert listen.returncode == 0 and l_err == b""
    events = [json.loads(x) for x in out.splitlines()]
    assert [e["digits"] for e in events if e["event"] == "number"] == want_numbers
    assert all(e["complete"] for e in events if e["event"] == "number")
    assert events[-1]["event"] == "summary" and events[-1]["dropped_ms"] == 0
    assert not os.path.exists(sock_path)  # removed on exit
    assert err.decode().splitlines() == [f"digitd: serve: serving events on unix:{sock_path}",
                                         f"digitd: serve: serving events on tcp:127.0.0.1:{port}"]


def test_a_client_that_stops_reading_is_dropped_and_nobody_else_notices(model_path, number_stream, tmp_path):
    """One client never reads: once its 1 KB buffer is full (after what the kernel's send
    buffer, sized to match, holds) it is disconnected; the pipeline loses no audio and the
    reading client gets every event, byte for byte what stdout got."""
    wav = number_stream[0]
    sock_path = str(tmp_path / "d.sock")
    p = digitd(*run_args(wav, model_path, "--speed", "max", "--serve", f"unix:{sock_path}", "--serve-wait", "2",
                         "--set", "serve.client_buffer_kb=1"))
    try:
        stuck = connect(sock_path)
        good = Reader(connect(sock_path))
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0, err
    good.join(10)
    assert bytes(good.data) == out
    summary = json.loads(out.splitlines()[-1])
    assert summary["event"] == "summary" and summary["dropped_ms"] == 0 and summary["overflows"] == 0
    assert "dropped unix client" in err.decode() and "stopped reading" in err.decode()
    late = Reader(stuck)  # what the stuck client got before it was cut off: a clean prefix, then the end
    late.join(10)
    assert late.error is None or isinstance(late.error, ConnectionResetError)
    assert 0 < len(late.data) < len(out) // 2 and out.startswith(bytes(late.data))


def test_sigterm_is_fast_and_removes_the_socket(model_path, number_stream, tmp_path):
    wav = number_stream[0]
    sock_path = str(tmp_path / "d.sock")
    p = digitd(*run_args(wav, model_path, "--speed", "1", "--serve", f"unix:{sock_path}", "--serve-wait", "1"))
    try:
        c = Reader(connect(sock_path))
        assert c.first_line.wait(30)  # streaming: the first word came through the socket
        time.sleep(0.2)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert took < 0.5, f"SIGTERM -> exit took {took:.3f} s"
    assert not os.path.exists(sock_path)
    c.join(5)
    assert bytes(c.data) == out and c.events()[-1]["event"] == "summary"  # flushed, then closed
    print(f"SIGTERM -> exit {1000 * took:.0f} ms")


def test_listen_numbers_prints_one_line_per_number(model_path, number_stream):
    wav, _, _, want_numbers = number_stream
    port = free_port()
    p = digitd(*run_args(wav, model_path, "--speed", "max", "--serve", f"tcp:127.0.0.1:{port}", "--serve-wait", "2"))
    try:
        for _ in range(100):  # the server binds before loading the model
            try:
                socket.create_connection(("127.0.0.1", port)).close()  # a client that hangs up: forgotten
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        lines = digitd("listen", f"tcp:127.0.0.1:{port}", "--numbers")
        plain = digitd("listen", f"tcp:127.0.0.1:{port}", "--plain")
        out, err = p.communicate(timeout=120)
        n_out, n_err = lines.communicate(timeout=30)
        p_out, _ = plain.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0 and lines.returncode == 0, (err, n_err)
    assert n_out.decode().splitlines() == want_numbers and n_err == b""
    assert [x.split()[1] for x in p_out.decode().splitlines() if x.startswith("N ")] == want_numbers


@pytest.mark.parametrize("address, needle", [
    ("unix:/nonexistent-dir/d.sock", "nothing is listening at unix:/nonexistent-dir/d.sock"),
    ("tcp:127.0.0.1:1", "nothing is listening at tcp:127.0.0.1:1"),
    ("udp:x", "is not an address"),
])
def test_listen_to_nothing_is_one_line(address, needle):
    r = subprocess.run([sys.executable, "-m", "digitd", "listen", address], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr


def test_bad_serve_addresses_fail_in_one_line_before_the_model_loads(short_stream, tmp_path):
    wav = short_stream[0]
    not_a_socket = tmp_path / "file.sock"
    not_a_socket.write_text("keep me")
    cases = [
        ("tcp:0.0.0.0:7700", "not a loopback address"),
        ("tcp:127.0.0.1:99999", "is not an address"),
        ("nonsense", "is not an address"),
        (f"unix:{not_a_socket}", "exists and is not a socket"),
        (f"unix:{tmp_path}/no/such/dir/d.sock", "cannot listen there"),
    ]
    for address, needle in cases:
        t = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "digitd", "run", "--input", str(wav), "--speed", "max", "--jsonl",
                            "--serve", address, "--model", "/nonexistent/model.npz"],
                           cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, (address, r.stderr)
        assert time.monotonic() - t < 10
    assert not_a_socket.read_text() == "keep me"


def test_remote_tcp_only_when_the_config_says_so(model_path, short_stream):
    r = subprocess.run([sys.executable, "-m", "digitd", *run_args(short_stream[0], model_path, "--speed", "max"),
                        "--serve", "tcp:0.0.0.0:0", "--set", "serve.allow_remote=true"],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("digitd: serve: serving events on tcp:0.0.0.0:")


def test_stale_socket_is_replaced_and_a_live_one_is_not(model_path, short_stream, tmp_path):
    sock_path = str(tmp_path / "d.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock_path)  # a socket file nobody listens on: a killed daemon's leftover
    stale.close()
    live = socket.socket(socket.AF_UNIX)
    other = str(tmp_path / "live.sock")
    live.bind(other)
    live.listen(1)
    try:
        r = subprocess.run([sys.executable, "-m", "digitd", *run_args(short_stream[0], model_path, "--speed", "max"),
                            "--serve", f"unix:{sock_path}"], cwd=ROOT, env=env(), capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(sock_path)
        r = subprocess.run([sys.executable, "-m", "digitd", *run_args(short_stream[0], model_path, "--speed", "max"),
                            "--serve", f"unix:{other}"], cwd=ROOT, env=env(), capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and "another process is already serving there" in r.stderr
        assert os.path.exists(other)  # not ours: left alone
    finally:
        live.close()


def test_sighup_reloads_live_knobs_without_dropping_the_stream(model_path, number_stream, tmp_path):
    """group.length changes mid-stream; a knob that needs a restart is named; a broken
    config is reported and changes nothing; the stream never stops."""
    wav, _, truth, _ = number_stream
    cfg = tmp_path / "config.toml"
    cfg.write_text("[group]\npause_ms = 700\n")
    sock_path = str(tmp_path / "d.sock")
    p = digitd("run", "--config", str(cfg), "--input", str(wav), "--speed", "4", "--jsonl", "--model", str(model_path),
               "--serve", f"unix:{sock_path}", "--serve-wait", "1")
    try:
        c = Reader(connect(sock_path))
        assert c.first_line.wait(30)
        cfg.write_text("[group\n")  # broken
        p.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        cfg.write_text("[group]\npause_ms = 700\nlength = 2\n[audio]\nblock_ms = 20\n")
        p.send_signal(signal.SIGHUP)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    c.join(5)
    events = c.events()
    reloads = [e for e in events if e["event"] == "reload"]
    assert len(reloads) == 2 and "invalid TOML" in reloads[0]["error"]
    assert reloads[1]["applied"] == ["group.length=2"] and reloads[1]["restart_needed"] == ["audio.block_ms"]
    nums = [e for e in events if e["event"] == "number"]
    begun_after = [n for n in nums if n["start"] > reloads[1]["at"]]  # a number already open keeps going
    assert len(begun_after) >= 3 and all(len(n["digits"]) <= 2 for n in begun_after)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["dropped_ms"] == 0
    assert summary["digits"] >= len(truth) - 1  # the whole file was heard
