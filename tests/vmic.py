"""Helpers for tests that capture real audio from the PulseAudio virtual microphone.

vmic.sh (../shared/scripts/vmic.sh, or $DIGITD_VMIC_SH) starts a PulseAudio null sink
whose monitor is the default source: what `paplay --device=vmic` plays is what the
daemon records through PortAudio. Each test session gets its own runtime dir.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def vmic_script() -> Path | None:
    for p in (os.environ.get("DIGITD_VMIC_SH"), ROOT.parent / "shared/scripts/vmic.sh", "/work/shared/scripts/vmic.sh"):
        if p and Path(p).is_file():
            return Path(p)
    return None


def skip_reason() -> str | None:
    if not shutil.which("pulseaudio") or not shutil.which("paplay"):
        return "pulseaudio/paplay not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"
    if vmic_script() is None:
        return "vmic.sh not found (../shared/scripts/vmic.sh or $DIGITD_VMIC_SH)"
    return None


class Vmic:
    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        self.env = dict(os.environ, PULSE_RUNTIME_PATH=str(runtime), PULSE_SERVER=f"unix:{runtime}/native")

    def _sh(self, fn: str) -> None:
        # no pipes: the daemons it leaves running would hold them open
        log = self.runtime.parent / f"{self.runtime.name}-vmic.log"
        with open(log, "a") as f:
            r = subprocess.run(["bash", "-c", f"source '{vmic_script()}' && {fn}"], env=self.env,
                               stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"{fn} failed: {log.read_text()[-400:]}")

    def start(self) -> None:
        self._sh("vmic_start")

    def stop(self) -> None:
        self._sh("vmic_stop")

    def play(self, wav: Path) -> None:
        subprocess.run(["paplay", "--device=vmic", str(wav)], env=self.env, check=True, timeout=120)


class Daemon:
    """`digitd run --jsonl` as a process; its stdout lines parsed into a queue."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import sys

        env = dict(env, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
        self.p = subprocess.Popen([sys.executable, "-m", "digitd", "run", "--jsonl", *args], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.q: queue.Queue = queue.Queue()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for line in self.p.stdout:  # type: ignore[union-attr]
            e = json.loads(line)
            self.events.append(e)
            self.q.put(e)

    def wait_for(self, pred, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                e = self.q.get(timeout=0.1)
            except queue.Empty:
                if self.p.poll() is not None:
                    raise RuntimeError(f"daemon exited {self.p.returncode}: {self.p.stderr.read()}")  # type: ignore[union-attr]
                continue
            if pred(e):
                return e
        raise TimeoutError(f"no matching event within {timeout} s; got {self.events}")

    def stop(self) -> tuple[int, str]:
        self.p.terminate()
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self._t.join(5)  # the reader owns stdout: let it take the last lines (summary)
        return self.p.returncode, self.p.stderr.read()  # type: ignore[union-attr]

    def digits(self) -> list[str]:
        return [e["digit"] for e in self.events if e["event"] == "digit"]
