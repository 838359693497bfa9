#!/usr/bin/env python3
"""Soak test: a long stream through `digitd run --input ... --speed max --jsonl`.

Writes a seeded stream of FSDD test-split digits (default 60 minutes) to a WAV piece by
piece, runs a fresh `digitd run` on it, samples the child's RSS every 0.5 s, and checks that
every event is well-formed. Prints RSS at start/end and latency p50/p95 per window of stream
time; exits non-zero if RSS grows beyond --max-growth-mb, latency drifts, or an event is
malformed. CI runs a 5-minute version (`--minutes 5`).

    python scripts/soak.py --minutes 60 --window-min 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

from digitd import SAMPLE_RATE
from digitd.audio import float_to_int16
from digitd.synth import make_stream

REQUIRED = {
    "digit": {"digit", "confidence", "start", "end", "emitted", "latency_ms"},
    "rejected": {"start", "end", "emitted", "best", "confidence"},
    "number": {"digits", "start", "end", "emitted", "confidence", "complete"},
    "overflow": {"dropped_ms"},
    "summary": {"utterances", "digits", "rejected", "audio_s"},
}


def write_stream(path: Path, minutes: float, seed: int) -> int:
    """Append 1-minute seeded segments until `minutes` of audio; returns the truth word count."""
    words = 0
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        total = 0
        i = 0
        while total < minutes * 60 * SAMPLE_RATE:
            audio, truth = make_stream(n_digits=50, seed=seed + i, noise="white" if i % 3 == 2 else "none", snr_db=20.0)
            w.writeframes(float_to_int16(audio).tobytes())
            total += len(audio)
            words += len(truth)
            i += 1
    return words


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="stream length")
    ap.add_argument("--window-min", type=float, default=10.0, help="report latency per this many minutes of stream")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--max-growth-mb", type=float, default=10.0, help="fail if RSS grows more than this after warm-up")
    ap.add_argument("--keep", metavar="DIR", help="keep the stream WAV here")
    args = ap.parse_args()

    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        return soak(args, Path(args.keep) / "soak.wav")
    # The stream is ~1 MB per minute: without --keep it goes when the run does.
    with tempfile.TemporaryDirectory(prefix="digitd-soak-") as tmp:
        return soak(args, Path(tmp) / "soak.wav")


def soak(args: argparse.Namespace, wav: Path) -> int:
    """Write the stream to `wav`, run digitd on it and check it; 0 when every check passes."""
    t = time.time()
    n_words = write_stream(wav, args.minutes, args.seed)
    print(f"stream: {args.minutes:.0f} min, {n_words} digits, written in {time.time() - t:.0f} s -> {wav}"
          f"{'' if args.keep else ' (removed at the end; --keep DIR keeps it)'}", flush=True)

    cmd = [sys.executable, "-m", "digitd", "run", "--input", str(wav), "--speed", "max", "--jsonl"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss: list[tuple[float, float]] = []
    done = threading.Event()
    first_event: list[float] = []  # monotonic time of the first event: the pipeline is running

    def sample() -> None:
        t0 = time.monotonic()
        while not done.is_set():
            r = rss_mb(proc.pid)
            if r is not None:
                rss.append((time.monotonic() - t0, r))
            done.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    bad: list[str] = []
    events: list[dict] = []
    assert proc.stdout is not None
    t_start = time.monotonic()
    for line in proc.stdout:
        if not first_event:
            first_event.append(time.monotonic() - t_start)
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            bad.append(line.strip()[:80])
            continue
        need = REQUIRED.get(ev.get("event"), set())
        if not need <= set(ev):
            bad.append(f"{ev.get('event')}: missing {sorted(need - set(ev))}")
        events.append(ev)
    proc.wait()
    done.set()
    th.join()
    if proc.returncode != 0:
        print(f"digitd run failed ({proc.returncode}): {proc.stderr.read().strip()[-300:]}")
        return 1

    digits = [e for e in events if e["event"] == "digit"]
    summary = [e for e in events if e["event"] == "summary"]
    win = args.window_min * 60
    n_win = int(np.ceil(args.minutes * 60 / win))
    print(f"{'window (stream min)':>20} {'digits':>7} {'total p50 ms':>13} {'total p95 ms':>13} {'eos p50 ms':>11} {'eos p95 ms':>11}")
    p95s = []
    for k in range(n_win):
        sel = [e for e in digits if k * win <= e["end"] < (k + 1) * win]
        if not sel:
            continue
        tot = np.array([e["latency_ms"]["total"] for e in sel])
        eos = np.array([1000 * (e["emitted"] - e["end"]) for e in sel])
        p95s.append(np.percentile(tot, 95))
        print(f"{f'{k * args.window_min:.0f}-{(k + 1) * args.window_min:.0f}':>20} {len(sel):>7} "
              f"{np.percentile(tot, 50):>13.2f} {np.percentile(tot, 95):>13.2f} "
              f"{np.percentile(eos, 50):>11.0f} {np.percentile(eos, 95):>11.0f}")
    # RSS once the pipeline runs (first event out) vs the end
    t_end = rss[-1][0] if rss else 0
    t_warm = first_event[0] if first_event else 0.0
    warm = [r for t_, r in rss if t_ >= t_warm] or [r for _, r in rss]
    rss_start, rss_end, rss_peak = warm[0], warm[-1], max(r for _, r in rss)
    growth = rss_end - rss_start
    print(f"RSS after warm-up {rss_start:.1f} MB, at end {rss_end:.1f} MB (growth {growth:+.1f} MB), peak {rss_peak:.1f} MB; "
          f"{len(rss)} samples over {t_end:.0f} s wall")
    s = summary[-1] if summary else {}
    print(f"events: {len(events)} ({len(digits)} digits, {s.get('rejected', '?')} rejected) of {n_words} spoken; "
          f"malformed: {len(bad)}; audio {s.get('audio_s', 0) / 60:.1f} min in {t_end:.0f} s "
          f"(RTF {t_end / max(1e-9, s.get('audio_s', 1)):.4f})")
    ok = True
    if bad:
        print("FAIL: malformed events:", bad[:5])
        ok = False
    if not summary:
        print("FAIL: no summary event")
        ok = False
    if growth > args.max_growth_mb:
        print(f"FAIL: RSS grew {growth:.1f} MB > {args.max_growth_mb} MB")
        ok = False
    if len(p95s) >= 2 and p95s[-1] > 3 * max(1.0, p95s[0]):
        print(f"FAIL: total latency p95 drifted from {p95s[0]:.2f} to {p95s[-1]:.2f} ms")
        ok = False
    print("soak:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
