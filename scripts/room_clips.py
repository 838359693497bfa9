"""Isolated unseen clips heard through synthetic rooms: what reverberation alone costs a model.

  python scripts/room_clips.py [--model MODEL.npz] [--digits 300] [--words 200]

Why: `digitd eval --conditions` measures rooms on FSDD test takes, whose six speakers the model
trained on; this measures them on speakers it never heard (the unseen side of digitd/corpora.py),
digits and non-digit words, through `predict`'s path (whole clip -> features -> classify). Rooms:
RT60 0.3 / 0.5 / 0.8 s at a direct-to-reverberant ratio of +6 / 0 / -3 dB (nearer to farther from
the microphone), digitd.synth.room_impulse; each clip's level is kept at its dry peak.
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
from digitd.corpora import side_clips  # noqa: E402
from digitd.errors import DigitdError  # noqa: E402
from digitd.model import ModelError, load_model  # noqa: E402
from digitd.synth import reverberate, room_impulse  # noqa: E402

ROOMS = [("dry", None, None), ("0.3 s, DRR +6 dB", 0.3, 6.0), ("0.5 s, DRR 0 dB", 0.5, 0.0), ("0.8 s, DRR -3 dB", 0.8, -3.0)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file (default: the shipped model)")
    ap.add_argument("--digits", type=int, default=300, help="unseen digit clips drawn")
    ap.add_argument("--words", type=int, default=200, help="unseen non-digit word clips drawn")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    con = Console()
    try:
        cfg = load_config(None, [])
        model = load_model(args.model or cfg.classify.model)
        clips = side_clips(None, "unseen")
    except (DigitdError, ModelError) as e:
        Console(stderr=True, soft_wrap=True).print(f"room_clips: error: {e}", markup=False)
        return 2
    rng = np.random.default_rng(args.seed)
    digits = [c for c in clips if c.kind == "digit"]
    words = [c for c in clips if c.kind == "word"]
    if not digits or not words:
        con.print("room_clips: error: needs the unseen digit and word corpora (../shared or $DIGITD_SHARED_DIR)")
        return 2
    digits = [digits[i] for i in rng.permutation(len(digits))[: args.digits]]
    words = [words[i] for i in rng.permutation(len(words))[: args.words]]
    thr = cfg.classify.reject_threshold  # the daemon's
    table = Table(title=f"unseen clips in synthetic rooms (threshold {thr:.2f})")
    for col in ("room", "digits right + accepted", "wrong", "rejected", "non-digit words emitted"):
        table.add_column(col, justify="right" if col != "room" else "left")
    for name, rt60, drr in ROOMS:
        room_rng = np.random.default_rng([args.seed, 1])
        right = wrong = rej = fa = 0
        for c in track(digits + words, description=name, console=con, transient=True):
            x = load_wav(c.path)
            if rt60 is not None:
                y = reverberate(x, room_impulse(rt60, drr, room_rng))
                x = (y * np.max(np.abs(x)) / max(float(np.max(np.abs(y))), 1e-9)).astype(np.float32)
            p = model.predict_wave(x)
            ok = p.confidence >= thr
            if c.kind == "digit":
                right += ok and p.label == c.label
                wrong += ok and p.label != c.label
                rej += not ok
            else:
                fa += ok
        nd, nw = len(digits), len(words)
        table.add_row(name, f"{right / nd:.1%}", f"{wrong / nd:.1%}", f"{rej / nd:.1%}", f"{fa / nw:.1%}")
    con.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
