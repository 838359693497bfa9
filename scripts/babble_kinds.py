"""Digits under two kinds of background talk at the same SNR: what the heads learn vs the room's.

  python scripts/babble_kinds.py [--model MODEL.npz] [--side dev] [--digits 250] [--snr 5,0]

Why: the room bench's babble costs the most DER, and the members do not read a babble digit much
better even on its own span. The heads' babble copies (train.augment.make_babble) are 1 s word
clips as recorded, silence and all, four talkers summed; the bench's (digitd.room.babble_bed) are
trimmed words back to back and, with espeak-ng, spoken sentences: talk that never pauses. This
reads the same digit clips under each at one SNR (the word's power over the talk's, as the
training copies measure it), through `predict`'s path, so the gap between the rows is what the
kind of talk alone costs. Talk comes from the same side's non-digit words; use the dev slice with
a `--hold-out-dev` model (`--side dev`) so neither the digits nor the talkers were trained on.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402

from digitd.audio import load_wav  # noqa: E402
from digitd.config import load as load_config  # noqa: E402
from digitd.errors import DigitdError  # noqa: E402
from digitd.model import DigitModel, ModelError, load_model  # noqa: E402
from digitd.room import RoomError, babble_bed, pools  # noqa: E402
from train.augment import make_babble, speech_power  # noqa: E402

TALKERS = 4  # the bench's room_babble_talkers
BED_S = 120.0


def beds(side: str) -> dict[str, np.ndarray]:
    """Two minutes of each kind of talk, from the side's non-digit words (fixed seeds)."""
    p = pools(None, side)
    words = [load_wav(c.path) for c in p.words]
    n = int(BED_S * 8000)
    return {"heads' (word clips as recorded)": make_babble(words, BED_S, np.random.default_rng(1), talkers=TALKERS),
            "bench's, words only": babble_bed(n, TALKERS, p, np.random.default_rng(2), False, []),
            "bench's, with espeak-ng sentences": babble_bed(n, TALKERS, p, np.random.default_rng(3), True, [])}


def read(model: DigitModel, clean: list[tuple[str, np.ndarray]], bed: np.ndarray, snr: float, thr: float, seed: int,
         label: str = "") -> tuple[int, int]:
    """(right and accepted, best guess right) over `clean` (label, clip) under slices of `bed` at
    `snr`; the slices depend on the seed alone, so every kind and SNR hears the same positions."""
    draw = np.random.default_rng([seed, 7])
    ok = best = 0
    for d, x in track(clean, description=label, console=Console(stderr=True), transient=True):
        s = int(draw.integers(0, len(bed) - len(x)))
        nz = bed[s : s + len(x)]
        y = x + nz * np.sqrt(speech_power(x) / (np.mean(nz**2) * 10 ** (snr / 10) + 1e-20))
        pred = model.predict_wave(y / max(1e-9, float(np.max(np.abs(y)))) * 0.5)
        best += pred.label == d
        ok += pred.label == d and pred.confidence >= thr
    return ok, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file (default: the shipped model)")
    ap.add_argument("--side", default="dev", choices=("dev", "unseen", "train", "fit"), help="whose digits and talk (bench.room_speakers)")
    ap.add_argument("--digits", type=int, default=250, help="digit clips drawn")
    ap.add_argument("--snr", default="5,0", help="comma list of SNRs, dB")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    err = Console(stderr=True, soft_wrap=True)
    try:
        snrs = [float(v) for v in args.snr.split(",")]
    except ValueError:
        err.print(f"babble_kinds: error: --snr {args.snr!r} is not a comma list of numbers", markup=False)
        return 2
    try:
        cfg = load_config(None, [])
        model = load_model(args.model or cfg.classify.model)
        p = pools(None, args.side)
        digits = [(d, c) for d, cs in p.digits.items() for c in cs]
        if not digits or len(p.words) < TALKERS:
            raise RoomError(f"needs the {args.side} side's digit and word corpora (../shared or $DIGITD_SHARED_DIR)")
        talk = beds(args.side)
    except (DigitdError, ModelError, RoomError) as e:
        err.print(f"babble_kinds: error: {e}", markup=False)
        return 2
    model.warm_up()
    rng = np.random.default_rng(args.seed)
    pick = [digits[i] for i in rng.permutation(len(digits))[: args.digits]]
    thr = cfg.classify.reject_threshold  # the daemon's
    table = Table(title=f"{len(pick)} {args.side}-side digits under {TALKERS} talkers (threshold {thr:.2f})")
    for col in ("talk", "SNR dB", "right and accepted", "best guess right"):
        table.add_column(col, justify="left" if col == "talk" else "right")
    clean = [(d, load_wav(c.path).astype(np.float64)) for d, c in pick]
    for snr in snrs:
        for name, bed in talk.items():
            ok, best = read(model, clean, bed, snr, thr, args.seed, label=f"{name}, {snr:g} dB")
            table.add_row(name, f"{snr:g}", f"{100 * ok / len(clean):.1f}%", f"{100 * best / len(clean):.1f}%")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
