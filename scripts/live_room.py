"""The room bench's streams through the virtual microphone: does the live path hold what the file gives?

  python scripts/live_room.py [--seed 0] [--conditions clean,white_10db,babble_10db] [--model M.npz] [--set K=V ...]

Why: the issue asks that what `--speed max` measures holds on a microphone. Each condition's
stream (the bench's own, `digitd/room.py`) is played with `paplay` into a PulseAudio null sink
(../shared/scripts/vmic.sh, the same helper as tests/test_vmic.py) while a real `digitd run --jsonl`
captures it through PortAudio; its digit events, shifted by where playback began, are scored
against the truth exactly as the bench scores the file run of the same stream. A second of silence
leads each stream, which moves the 30 ms frame grid: expect a few borderline words either way
under babble. Takes the streams' length in real time (~3 minutes per condition).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from digitd import SAMPLE_RATE  # noqa: E402
from digitd.audio import write_wav  # noqa: E402
from digitd.bench import run_once  # noqa: E402
from digitd.config import ConfigError, load as load_config  # noqa: E402
from digitd.model import load_model  # noqa: E402
from digitd.room import conditions, make_room_stream  # noqa: E402
from digitd.scoring import score  # noqa: E402
from vmic import Daemon, Vmic, skip_reason  # noqa: E402

LEAD_S = 1.0


def live_events(vm: Vmic, wav: Path, model: str | None, length_s: float, sets: list[str]) -> tuple[list[dict], float, dict]:
    """(digit events in the WAV's own time, the shift applied, the daemon's summary)."""
    d = Daemon((["--model", model] if model else []) + [a for kv in sets for a in ("--set", kv)], vm.env)
    try:
        d.wait_for(lambda e: e["event"] == "device" and e["state"] == "open", timeout=30)
        opened = time.monotonic()  # stream time 0, give or take the event's way through the pipe
        shift = LEAD_S + (time.monotonic() - opened)  # playback starts now
        subprocess.run(["paplay", "--device=vmic", str(wav)], env=vm.env, check=True, timeout=length_s + 60)
        time.sleep(0.8)  # the last word's hangover and classification
    finally:
        rc, err = d.stop()
    if rc != 0:
        raise SystemExit(f"live_room: digitd run exited {rc}: {err.strip()}")
    digits = [dict(e, start=e["start"] - shift, end=e["end"] - shift) for e in d.events if e["event"] == "digit"]
    return digits, shift, d.events[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--conditions", default="clean,white_10db,babble_10db")
    ap.add_argument("--model", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="K=V", help="a config override for both paths (repeatable)")
    args = ap.parse_args()
    if skip_reason():
        raise SystemExit(f"live_room: {skip_reason()}")
    from rich.console import Console
    from rich.table import Table

    try:
        cfg = load_config(None, args.set)
    except ConfigError as e:
        raise SystemExit(f"live_room: {e}") from None
    b = dataclasses.replace(cfg.bench, seed=args.seed)
    wanted = args.conditions.split(",")
    conds = [c for c in conditions(b) if c.name in wanted]
    if len(conds) != len(wanted):
        raise SystemExit(f"live_room: unknown condition in {args.conditions}")
    model = load_model(args.model)
    t = Table(title=f"room streams, seed {args.seed}: file (--speed max) against the virtual microphone")
    for col in ("condition", "file DER %", "file S/D/I", "live DER %", "live S/D/I", "shift s", "overflows", "dropped ms"):
        t.add_column(col, justify="left" if col == "condition" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        vm = Vmic(Path(tmp) / "pulse")
        vm.start()
        try:
            for c in conds:
                st = make_room_stream(c, b)
                truth = [x.to_dict() for x in st.truth]
                file_run = run_once(cfg, model, st.audio, truth, "max").score
                wav = Path(tmp) / f"{c.name}.wav"
                write_wav(wav, np.concatenate([np.zeros(int(LEAD_S * SAMPLE_RATE), np.int16), st.pcm]))
                digits, shift, summary = live_events(vm, wav, args.model, len(st.pcm) / SAMPLE_RATE + LEAD_S, args.set)
                live = score(digits, truth)
                t.add_row(c.name, f"{100 * file_run.der:.1f}",
                          f"{file_run.substitutions}/{file_run.deletions}/{file_run.insertions}",
                          f"{100 * live.der:.1f}", f"{live.substitutions}/{live.deletions}/{live.insertions}",
                          f"{shift:.3f}", str(summary.get("overflows")), f"{summary.get('dropped_ms', 0):.0f}")
        finally:
            vm.stop()
    Console().print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
