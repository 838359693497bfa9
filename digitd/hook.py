"""`--exec CMD`: run a command once per number, in a worker thread, never blocking the pipeline.

The command line is split like a shell would (`shlex.split`) but never run by one, and the
number is never interpolated into it: the command reads it from its environment:
DIGITD_NUMBER (the digits), DIGITD_COMPLETE (1, or 0 when a rejected word or lost audio fell
inside), DIGITD_CONFIDENCE, DIGITD_START, DIGITD_END (stream seconds). One command runs at a
time; numbers wait in a bounded queue (`exec.queue_size`, more are dropped). A command
still running after `exec.timeout_s` is killed with its process group. Its output is
captured (bounded, in a temporary file), so it cannot garble JSON Lines or the UI; a
failure is reported as an `exec` event carrying its last line. Nothing here is fatal.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import tempfile
import threading
from typing import Callable

from digitd.config import ExecConfig
from digitd.events import Event, ExecEvent, NumberEvent

_STOP = object()
TAIL_BYTES = 4096  # how much of a failed command's output is read back for its message


def _last_line(f) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - TAIL_BYTES))
    lines = [x.strip() for x in f.read().decode("utf-8", "replace").splitlines() if x.strip()]
    return lines[-1][:300] if lines else ""


class ExecSink:
    """A sink: `handle()` queues numbers; the worker runs `cfg.command` (read per number, so
    a SIGHUP reload applies) and reports failures through `report` (the pipeline's emit)."""

    def __init__(self, cfg: ExecConfig, report: Callable[[Event], None], clock: Callable[[], float] = lambda: 0.0) -> None:
        self.cfg = cfg
        self.report = report
        self.clock = clock
        self.ran = 0
        self._q: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        self._dropped: list[str] = []  # numbers refused by a full queue, reported by the worker
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def handle(self, event: Event) -> None:
        # called under the pipeline's lock: only enqueue (reporting from here would re-enter it)
        if not isinstance(event, NumberEvent) or not self.cfg.command.strip() or self._stop.is_set():
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="exec", daemon=True)
            self._thread.start()
        try:
            self._q.put_nowait(event)
        except queue.Full:
            self._dropped.append(event.digits)

    def close(self, wait: bool = True) -> None:
        """`wait`: run what is queued first (end of a file); else kill the running command
        and skip the rest (SIGTERM: exit fast)."""
        if self._thread is None:
            return
        if wait:
            self._q.put(_STOP)  # after what is queued
            self._thread.join()
            return
        self._stop.set()
        self._kill()
        try:
            self._q.put_nowait(_STOP)  # a full queue: the worker stops at its next item anyway
        except queue.Full:
            pass
        self._thread.join(0.5)

    def _work(self) -> None:
        while True:
            item = self._q.get()
            self._report_drops()
            if item is _STOP or self._stop.is_set():
                return
            self._run(item)
            self._report_drops()

    def _report_drops(self) -> None:
        while self._dropped:
            n = self._dropped.pop(0)
            self.report(ExecEvent("dropped", n, None, f"{self.cfg.queue_size} numbers already waiting", self.clock()))

    def _run(self, n: NumberEvent) -> None:
        try:
            argv = shlex.split(self.cfg.command)
        except ValueError as e:
            self.report(ExecEvent("error", n.digits, None, f"cannot split exec.command: {e}", self.clock()))
            return
        if not argv:
            return
        env = dict(os.environ, DIGITD_NUMBER=n.digits, DIGITD_COMPLETE="1" if n.complete else "0",
                   DIGITD_CONFIDENCE=f"{n.confidence:.3f}", DIGITD_START=f"{n.start:.3f}", DIGITD_END=f"{n.end:.3f}")
        timeout = self.cfg.timeout_s
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as e:
                self.report(ExecEvent("error", n.digits, None, f"cannot run {argv[0]}: {e.strerror or e}", self.clock()))
                return
            self._proc = proc
            self.ran += 1
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                proc.wait()
                self.report(ExecEvent("timeout", n.digits, None, f"killed after {timeout:g} s", self.clock()))
                return
            finally:
                self._proc = None
            if rc != 0 and not self._stop.is_set():
                self.report(ExecEvent("failed", n.digits, rc, _last_line(out), self.clock()))

    def _kill(self) -> None:
        p = self._proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # its own session: children die too
            except OSError:
                pass
